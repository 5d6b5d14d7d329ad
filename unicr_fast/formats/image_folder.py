"""Image folders (``imagenet:ROOT``, ``folder:ROOT``) read with PIL, without torchvision.

Layout as torchvision's ImageFolder: one subfolder per class, classes numbered in sorted order of
their names, the images of a class in sorted order of their file names (subfolders included).
Preprocessing is Cohen et al.'s for ImageNet: resize so the shorter side is 256 (bilinear),
center crop 224 x 224, RGB, pixels / 255 in channel planes (3, 224, 224). Images are decoded
when an input is asked for, so a 50,000-image folder costs a file list, not 30 GB of memory.
"""
from __future__ import annotations

import hashlib
import os
from typing import List, Tuple

import numpy as np
import torch

#: File endings counted as images (torchvision's list).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
RESIZE, CROP = 256, 224


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("image folders need Pillow: pip install pillow") from None
    return Image


def list_images(root: str) -> Tuple[List[str], List[Tuple[str, int]]]:
    """(class names, [(path, class index)]) in ImageFolder's order."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder '{root}' is not a directory")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise ValueError(f"image folder '{root}' has no class subfolders (expected ROOT/<class>/"
                         f"<image>, one subfolder per class)")
    samples = []
    for index, name in enumerate(classes):
        for folder, _, files in sorted(os.walk(os.path.join(root, name), followlinks=True)):
            samples += [(os.path.join(folder, f), index) for f in sorted(files)
                        if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not samples:
        raise ValueError(f"image folder '{root}' has class subfolders but no images "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    return classes, samples


def cohen_imagenet_preprocess(image) -> torch.Tensor:
    """A PIL image as Cohen et al. feed ImageNet: shorter side 256, center 224 crop, [0, 1]."""
    Image = _pil()
    image = image.convert("RGB")
    w, h = image.size
    if w <= h:
        size = (RESIZE, int(RESIZE * h / w))
    else:
        size = (int(RESIZE * w / h), RESIZE)
    image = image.resize(size, Image.BILINEAR)
    w, h = image.size
    top, left = int(round((h - CROP) / 2.0)), int(round((w - CROP) / 2.0))
    image = image.crop((left, top, left + CROP, top + CROP))
    pixels = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy()).to(torch.float32).div_(255.0)


class ImageFolderInputs:
    """The inputs of an image folder as a lazy sequence: ``len``, ``[i]`` -> (3, 224, 224)
    float32 tensor, ``shape`` as a stacked tensor would have; ``labels`` is an int64 tensor."""

    def __init__(self, root: str):
        self.root = os.fspath(root)
        self.classes, self.samples = list_images(self.root)
        self.labels = torch.tensor([c for _, c in self.samples], dtype=torch.int64)
        self.shape = (len(self.samples), 3, CROP, CROP)
        self.dtype = torch.float32

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> torch.Tensor:
        if isinstance(i, slice):
            return torch.stack([self[j] for j in range(*i.indices(len(self)))])
        path = self.samples[i][0]
        Image = _pil()
        try:
            with Image.open(path) as image:
                return cohen_imagenet_preprocess(image)
        except OSError as exc:
            raise ValueError(f"cannot read image '{path}': {exc}") from None

    def fingerprint(self) -> str:
        """A sha256 of the file list with sizes and labels: what a resumed run compares (the
        pixels are not hashed, which would mean decoding every image)."""
        h = hashlib.sha256()
        for path, label in self.samples:
            h.update(f"{os.path.relpath(path, self.root)}\t{os.path.getsize(path)}\t{label}\n"
                     .encode())
        return h.hexdigest()


def read_image_folder(root: str, imagenet_layout: bool = False) -> ImageFolderInputs:
    """``folder:ROOT`` reads ROOT; ``imagenet:ROOT`` reads ROOT/val when it exists (Cohen et
    al.'s IMAGENET_DIR layout, whose test split is val/), else ROOT."""
    root = os.fspath(root)
    if imagenet_layout:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"ImageNet root '{root}' is not a directory")
        val = os.path.join(root, "val")
        root = val if os.path.isdir(val) else root
    return ImageFolderInputs(root)
