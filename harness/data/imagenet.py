"""ImageNet-style image folders and ADM's centre-crop preprocessing.

Layouts: ``root/<split>/<synset>/*`` (train or val sorted into synset folders; synsets sorted ->
class ids 0..C-1), or a flat ``root/<split>/`` folder plus a label file of ``filename label`` lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness.core.errors import InputFileError
from harness.data.images import open_rgb

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


def center_crop_arr(pil_image: Image.Image, image_size: int) -> np.ndarray:
    """ADM's preprocessing: halve with BOX while the short side is >= 2*size, then BICUBIC so the
    short side equals ``image_size``, then a centre square crop. Returns uint8 [S, S, 3]."""
    img = pil_image
    while min(img.size) >= 2 * image_size:
        img = img.resize(tuple(s // 2 for s in img.size), resample=Image.BOX)
    scale = image_size / min(img.size)
    img = img.resize(tuple(round(s * scale) for s in img.size), resample=Image.BICUBIC)
    arr = np.asarray(img.convert("RGB"))
    top = (arr.shape[0] - image_size) // 2
    left = (arr.shape[1] - image_size) // 2
    return np.ascontiguousarray(arr[top : top + image_size, left : left + image_size])


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES


def read_label_file(path: Path) -> dict[str, int]:
    labels: dict[str, int] = {}
    if not path.is_file():
        raise InputFileError(path, "label file not found")
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise InputFileError(path, f"line {n}: expected 'filename label', got {line.strip()!r}")
        labels[parts[0]] = int(parts[1])
    if not labels:
        raise InputFileError(path, "label file has no entries")
    return labels


class ImageFolderDataset:
    """``dataset[i] -> (uint8 [S,S,3] after center_crop_arr, label)``; lists files without decoding them."""

    def __init__(
        self, root: str | Path, split: str = "val", image_size: int = 256, label_file: str | Path | None = None
    ):
        self.root = Path(root)
        self.split = split
        self.image_size = image_size
        folder = self.root / split
        if not self.root.is_dir():
            raise InputFileError(self.root, "dataset folder not found")
        if not folder.is_dir():
            raise InputFileError(folder, f"no {split!r} folder in the dataset root")
        if label_file is not None:
            table = read_label_file(Path(label_file))
            files = sorted(p for p in folder.iterdir() if _is_image(p))
            missing = [p.name for p in files if p.name not in table]
            if missing:
                raise InputFileError(label_file, f"no label for {missing[0]} ({len(missing)} files unlabelled)")
            self.samples = [(p, table[p.name]) for p in files]
            self.classes = [str(c) for c in sorted(set(table[p.name] for p in files))]
        else:
            synsets = sorted(d.name for d in folder.iterdir() if d.is_dir())
            if not synsets:
                raise InputFileError(folder, "no class sub-folders (and no label file given)")
            self.classes = synsets
            self.samples = [
                (p, c) for c, s in enumerate(synsets) for p in sorted((folder / s).iterdir()) if _is_image(p)
            ]
        if not self.samples:
            raise InputFileError(folder, "no images found")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        return np.fromiter((c for _, c in self.samples), dtype=np.int64, count=len(self.samples))

    def load(self, index: int) -> np.ndarray:
        path = self.samples[index][0]
        return center_crop_arr(open_rgb(path), self.image_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.load(index), self.samples[index][1]
