"""Sample grid PNG for the tiny AR generator, and a simple class-consistency check.

Grid: one row per class; each row holds the generated samples, a gap, then real held-out val
images of the same class, so a reader can compare at a glance.
Class consistency: each generated image is labelled by its nearest train image (1-NN, pixel L2)
and compared with the class it was asked for; the same 1-NN accuracy of real val images is the
ceiling that says how separable the classes are by this crude measure. Chance = 1/num_classes.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from harness.core.interfaces import ARSampling, Tokenizer
from harness.core.io import atomic_path
from harness.nn.models.ar_generator import ARGenerator

SCALE = 2  # nearest-neighbour upscaling of the 32 px tiles for visibility
GAP = 6


def generate_images(
    model, tokenizer: Tokenizer, params: ARSampling, labels: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    return ARGenerator(model, tokenizer, name="alitok-grid", sampling=params).generate(labels, generator).cpu()


def sample_grid(
    model,
    tokenizer: Tokenizer,
    params: ARSampling,
    num_classes: int,
    per_class: int,
    real_per_class: int,
    data_cfg,
    seed: int,
    path: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Write the grid PNG atomically; return the generated images [C*per_class,H,W,3] and labels."""
    from PIL import Image

    from harness.data.embedded import natural_patches

    labels = torch.arange(num_classes).repeat_interleave(per_class)
    device = model.embeddings.weight.device
    gen = torch.Generator(device=device).manual_seed(seed)
    images = generate_images(model, tokenizer, params, labels, gen).numpy()
    real, real_labels = natural_patches("val", data_cfg.image_size, real_per_class, data_cfg.seed)
    s = data_cfg.image_size
    width = (per_class + real_per_class) * s + GAP
    canvas = np.full((num_classes * s, width, 3), 255, dtype=np.uint8)
    for c in range(num_classes):
        row = slice(c * s, (c + 1) * s)
        for j, img in enumerate(images[labels.numpy() == c]):
            canvas[row, j * s : (j + 1) * s] = img
        for j, img in enumerate(real[real_labels == c]):
            x0 = per_class * s + GAP + j * s
            canvas[row, x0 : x0 + s] = img
    canvas = canvas.repeat(SCALE, 0).repeat(SCALE, 1)
    with atomic_path(path) as f:
        Image.fromarray(canvas).save(f, format="PNG")
    return images, labels.numpy()


def _nn_labels(queries: np.ndarray, refs: np.ndarray, ref_labels: np.ndarray) -> np.ndarray:
    q = torch.from_numpy(queries.reshape(len(queries), -1)).double()
    r = torch.from_numpy(refs.reshape(len(refs), -1)).double()
    return ref_labels[torch.cdist(q, r).argmin(1).numpy()]


def class_consistency(images: np.ndarray, labels: np.ndarray, data_cfg, real_per_class: int = 32) -> dict[str, float]:
    from harness.data.embedded import NUM_CLASSES, natural_patches

    train, train_labels = natural_patches("train", data_cfg.image_size, data_cfg.per_class_train, data_cfg.seed)
    val, val_labels = natural_patches("val", data_cfg.image_size, real_per_class, data_cfg.seed)
    return {
        "generated_1nn_acc": float((_nn_labels(images, train, train_labels) == labels).mean()),
        "real_val_1nn_acc": float((_nn_labels(val, train, train_labels) == val_labels).mean()),
        "chance": 1.0 / NUM_CLASSES,
        "num_generated": int(len(images)),
    }
