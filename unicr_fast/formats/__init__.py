"""Other projects' file formats: CIFAR-10's python pickles (``cifar10``), image folders with Cohen
et al.'s ImageNet preprocessing (``image_folder``) and Cohen et al.'s checkpoints (``cohen``),
read with numpy, PIL and torch alone (no torchvision)."""
