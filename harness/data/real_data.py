"""``real-data``: a "generator" that returns held-out real images of the requested classes.

It is the floor row of every FID table (real vs real) and lets the whole sampling/eval flow run
before any model exists. Images come from the embedded natural patches (default: val split, crop
seed 1 so they are not the very crops of the seed-0 demo reference) or from an ImageNet folder
(``root=``). Each sample picks one image of its class with ``torch.randint`` on the passed
generator, so a chunk is a pure function of (labels, generator state).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.core.interfaces import Generator, NoSampling, SamplingParams


class RealDataGenerator(Generator):
    name = "real-data"
    sampling_cls = NoSampling
    quantization = "truncate"  # images are stored uint8 already; no conversion happens

    def __init__(
        self,
        *,
        device: torch.device | str = "cpu",
        checkpoint: str | None = None,
        tokenizer_checkpoint: str | None = None,
        split: str = "val",
        image_size: int = 32,
        per_class: int = 200,
        seed: int = 1,
        root: str | None = None,
    ):
        if checkpoint or tokenizer_checkpoint:
            raise ValueError("real-data takes no checkpoint")
        self.device = torch.device(device)
        self.split, self.image_size, self.per_class, self.seed, self.root = split, image_size, per_class, seed, root
        if root is None:
            from harness.data.embedded import natural_patches

            images, labels = natural_patches(split, image_size, per_class, seed)
            self._images = torch.from_numpy(images)
            self._source = (
                f"embedded natural_patches(split={split}, size={image_size}, per_class={per_class}, seed={seed})"
            )
        else:
            from harness.data.imagenet import ImageFolderDataset

            self._folder = ImageFolderDataset(root, split, image_size)
            labels = self._folder.labels
            self._images = None
            self._source = f"image folder {root}/{split} ({len(labels)} images)"
        self.num_classes = int(labels.max()) + 1
        # per class: the dataset indices of its images
        self._pools = [torch.from_numpy(np.flatnonzero(labels == c)) for c in range(self.num_classes)]
        empty = [c for c, p in enumerate(self._pools) if len(p) == 0]
        if empty:
            raise ValueError(f"real-data: class {empty[0]} has no images in {self._source}")

    def info(self) -> dict[str, Any]:
        # reference: real images, the floor a report draws as a line, not a system among the others
        return {**super().info(), "source": self._source, "params": 0, "reference": True}

    def generate(
        self, labels: torch.Tensor, generator: torch.Generator, params: SamplingParams | None = None
    ) -> torch.Tensor:
        labels = self.check_labels(labels).cpu()
        draws = torch.randint(0, 2**62, (labels.numel(),), generator=generator, device=generator.device).cpu()
        picks = [int(self._pools[int(c)][int(u) % len(self._pools[int(c)])]) for c, u in zip(labels, draws)]
        if self._images is not None:
            out = self._images[picks] if picks else self._images[:0]
        else:
            out = torch.from_numpy(np.stack([self._folder.load(i) for i in picks]))
        return out.to(self.device)
