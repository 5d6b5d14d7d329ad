"""Readers of other projects' formats (unicr_fast.formats), on small files written here in those
formats: CIFAR-10's python pickles, an ImageFolder of PNGs, Cohen et al.'s checkpoints."""
import pickle

import numpy as np
import pytest
import torch

from unicr_fast.formats import cifar10, cohen, image_folder

PIL = pytest.importorskip("PIL.Image")


def write_cifar(root, n_test=7, n_train=3, protocol=2, seed=0):
    """torchvision's download layout; labels a list, data uint8 (N, 3072), byte-string keys
    as the original (python 2) pickles have."""
    rng = np.random.default_rng(seed)
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    batches = {"test_batch": n_test, **{f"data_batch_{i}": n_train for i in range(1, 6)}}
    made = {}
    for name, n in batches.items():
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n}, f, protocol=protocol)
        made[name] = (data, labels)
    return made


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_test_split_matches_the_pickles(tmp_path, protocol):
    made = write_cifar(tmp_path, protocol=protocol)
    x, y = cifar10.read_cifar10(tmp_path, "test")
    data, labels = made["test_batch"]
    assert x.shape == (7, 3, 32, 32) and x.dtype == torch.float32
    assert y.tolist() == labels
    # Red plane first, row-major: pixel (row 1, col 2) of channel c is data[:, c*1024 + 32 + 2].
    for c in range(3):
        assert torch.equal(x[:, c, 1, 2], torch.from_numpy(data[:, c * 1024 + 34]).float() / 255)
    x_inner, _ = cifar10.read_cifar10(tmp_path / cifar10.FOLDER, "test")   # the folder itself
    assert torch.equal(x, x_inner)


def test_cifar10_train_split_concatenates_five_batches(tmp_path):
    write_cifar(tmp_path)
    x, y = cifar10.read_cifar10(tmp_path, "train")
    assert x.shape[0] == 15 and y.shape == (15,)


def test_cifar10_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        cifar10.read_cifar10(tmp_path / "nowhere")
    (tmp_path / cifar10.FOLDER).mkdir()
    with pytest.raises(FileNotFoundError, match="test_batch"):
        cifar10.read_cifar10(tmp_path)
    (tmp_path / cifar10.FOLDER / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        cifar10.read_cifar10(tmp_path)
    with pytest.raises(ValueError, match="split"):
        cifar10.read_cifar10(tmp_path, "val")


def test_cifar10_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))
    (tmp_path / cifar10.FOLDER).mkdir()
    with open(tmp_path / cifar10.FOLDER / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        cifar10.read_cifar10(tmp_path)


def write_folder(root, sizes=((300, 260), (260, 400), (256, 256)), classes=("cat", "ant")):
    rng = np.random.default_rng(1)
    paths = {}
    for name in classes:
        (root / name).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            path = root / name / f"img{i}.png"
            PIL.fromarray(pixels).save(path)
            paths[path] = pixels
    (root / classes[-1] / "notes.txt").write_text("not an image")
    return paths


def test_image_folder_order_labels_and_preprocessing(tmp_path):
    write_folder(tmp_path)
    inputs = image_folder.read_image_folder(tmp_path)
    assert inputs.classes == ["ant", "cat"]                     # sorted names
    assert len(inputs) == 6 and inputs.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert inputs.shape == (6, 3, 224, 224)
    x = inputs[0]                                               # ant/img0.png, 300 x 260
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # The same steps by hand: shorter side (260) -> 256, so 300 -> int(256 * 300 / 260) = 295.
    with PIL.open(inputs.samples[0][0]) as im:
        resized = im.convert("RGB").resize((295, 256), PIL.BILINEAR)
    left, top = int(round((295 - 224) / 2)), int(round((256 - 224) / 2))
    ref = np.asarray(resized)[top:top + 224, left:left + 224].transpose(2, 0, 1) / 255.0
    assert np.allclose(x.numpy(), ref, atol=1e-7)
    assert inputs[1:3].shape == (2, 3, 224, 224)


def test_imagenet_layout_reads_val(tmp_path):
    write_folder(tmp_path / "val", classes=("n01", "n02"))
    inputs = image_folder.read_image_folder(tmp_path, imagenet_layout=True)
    assert inputs.classes == ["n01", "n02"] and len(inputs) == 6


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        image_folder.read_image_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no class subfolders"):
        image_folder.read_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no images"):
        image_folder.read_image_folder(tmp_path)
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="cannot read image"):
        image_folder.read_image_folder(tmp_path)[0]


def test_fingerprint_follows_the_files(tmp_path):
    write_folder(tmp_path)
    before = image_folder.read_image_folder(tmp_path).fingerprint()
    assert image_folder.read_image_folder(tmp_path).fingerprint() == before
    (tmp_path / "cat" / "img0.png").write_bytes(b"changed")
    assert image_folder.read_image_folder(tmp_path).fingerprint() != before


@pytest.mark.parametrize("arch,params", [("cifar_resnet20", 272_474),
                                         ("cifar_resnet110", 1_730_714),
                                         ("resnet50", 25_557_032)])
def test_architectures_have_the_published_sizes(arch, params):
    """0.27M / 1.7M parameters (He et al.'s CIFAR ResNets) and torchvision's ResNet-50 count."""
    model = cohen.build_cohen_model(arch)
    assert sum(p.numel() for p in model.parameters()) == params


def save_cohen(path, arch, data_parallel=False, seed=0):
    torch.manual_seed(seed)
    model = cohen.build_cohen_model(arch).eval()
    state = model.state_dict()
    if data_parallel:
        state = {k.replace("1.", "1.module.", 1): v for k, v in state.items()}
    torch.save({"epoch": 90, "arch": arch, "state_dict": state,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}}, path)
    return model


@pytest.mark.parametrize("arch,dp", [("cifar_resnet20", False),
                                     pytest.param("resnet50", True, marks=pytest.mark.slow)])
def test_cohen_checkpoint_loads_with_weights_only(tmp_path, arch, dp):
    ref = save_cohen(tmp_path / "ckpt.pth.tar", arch, data_parallel=dp)
    obj = torch.load(tmp_path / "ckpt.pth.tar", map_location="cpu", weights_only=True)
    assert cohen.is_cohen_checkpoint(obj)
    model, info = cohen.load_cohen_state(obj, "ckpt")
    shape = info["input_shape"]
    x = torch.rand(2, *shape)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert info["num_classes"] == (10 if arch.startswith("cifar") else 1000)


def test_cohen_normalisation_is_in_pixel_space():
    model = cohen.build_cohen_model("cifar_resnet20")
    norm = model[0]
    x = torch.full((1, 3, 2, 2), 0.5)
    expected = (0.5 - torch.tensor(cohen.NORMALISATION["cifar10"][0])) / torch.tensor(
        cohen.NORMALISATION["cifar10"][1])
    assert torch.allclose(norm(x)[0, :, 0, 0], expected)
    assert not any(k.startswith("0.") for k in model.state_dict())   # no saved state


def test_cohen_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        cohen.load_cohen_state({"arch": "vgg", "state_dict": {}}, "x")
    state = cohen.build_cohen_model("cifar_resnet20").state_dict()
    with pytest.raises(ValueError, match="does not fit cifar_resnet110"):
        cohen.load_cohen_state({"arch": "cifar_resnet110", "state_dict": state}, "x")
