"""Feature extraction speed: our pipeline vs torch_fidelity.calculate_metrics on the same 200 images.

Both use the same (converted fid-helper) Inception weights on the same device; ours differs by
channels_last and by computing pool3 + sFID in one pass. Run with `make bench`.
"""

import platform
import time

import numpy as np
import pytest
import torch
import torch_fidelity

from harness.data.embedded import natural_patches
from harness.metrics.features import extract_features
from harness.metrics.inception import InceptionExtractor
from harness.metrics.weights import resolve_weights

pytestmark = pytest.mark.bench

N_IMAGES, BATCH = 200, 50


def test_bench_feature_extraction_vs_torch_fidelity(benchmark, nchw_dataset):
    images, _ = natural_patches("val", 32, per_class=19, seed=0)
    images = images[:N_IMAGES]
    weights = resolve_weights("fid-helper")
    ex = InceptionExtractor(weights, "cpu")
    ex(images[:2])  # warm-up (oneDNN primitive creation)

    def torch_fidelity_run():
        torch_fidelity.calculate_metrics(
            input1=nchw_dataset(images),
            isc=True,
            cuda=False,
            batch_size=BATCH,
            feature_extractor_weights_path=str(weights.path),
            cache=False,
            save_cpu_ram=True,
            verbose=False,
            samples_shuffle=False,
        )

    t0 = time.perf_counter()
    torch_fidelity_run()
    tf_s = time.perf_counter() - t0

    feats = benchmark.pedantic(lambda: extract_features(images, ex, BATCH, cache=False), rounds=1, iterations=1)
    ours_s = benchmark.stats.stats.median
    ours_ips, tf_ips = N_IMAGES / ours_s, N_IMAGES / tf_s
    benchmark.extra_info.update(
        {
            "images": N_IMAGES,
            "image_size": 32,
            "batch": BATCH,
            "weights": "fid-helper (converted)",
            "ours_images_per_s": round(ours_ips, 3),
            "torch_fidelity_images_per_s": round(tf_ips, 3),
            "speedup": round(ours_ips / tf_ips, 3),
            "threads": torch.get_num_threads(),
            "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads".strip(),
            "torch": torch.__version__,
        }
    )
    assert feats.pool.shape == (N_IMAGES, 2048) and np.isfinite(feats.pool).all()
    assert ours_ips >= tf_ips, f"ours {ours_ips:.2f} img/s slower than torch-fidelity {tf_ips:.2f} img/s"
