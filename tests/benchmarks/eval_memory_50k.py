"""Peak resident memory of ``evaluate_samples`` on 50,000 samples, with a stub feature extractor.

The stub returns features of the real widths (pool3 2048, sFID layer 2023, logits 1008) from a fixed
projection of each image's first 48 bytes, so the figure measures the harness (streaming, float64
moments, what is kept for precision/recall), not the Inception network. Two processes: ``prepare``
writes the samples npz and a 10k-image reference; ``measure`` (fresh) evaluates and reports ru_maxrss.

    OMP_NUM_THREADS=1 PYTHONPATH=. python tests/benchmarks/eval_memory_50k.py DIR [--metrics fid,is,sfid,prec]
        [--ref-images 10000]

Recall at 50k needs the 50k x 50k neighbour search (~10^13 flops): hours on 2 shared cores. Its tiles
are the same size as precision's, so ``--metrics fid,is,sfid,prec`` measures the same peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from harness.metrics.inception import InceptionExtractor
from harness.metrics.weights import WeightsInfo

N_SAMPLES, SIZE = 50_000, 8


class StubExtractor(InceptionExtractor):
    def __init__(self):  # no network: a fixed random projection per layer
        self.weights = WeightsInfo("stub:0", "random", Path("stub"), "5" * 64, has_logits=True)
        self.device, self.channels_last = torch.device("cpu"), False
        rng = np.random.default_rng(0)
        self.proj = {
            k: rng.standard_normal((48, d)).astype(np.float32) / 7
            for k, d in (("pool", 2048), ("spatial", 2023), ("logits", 1008))
        }

    def __call__(self, images):
        x = np.asarray(images).reshape(len(images), -1)[:, :48].astype(np.float32) / 255.0
        return {k: np.maximum(x @ w, 0) if k != "logits" else x @ w for k, w in self.proj.items()}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def prepare(d: Path, n_ref: int) -> None:
    from harness.data.npz import save_samples_npz
    from harness.metrics.refstats import build_reference_from_images

    rng = np.random.default_rng(1)
    labels = np.arange(N_SAMPLES) % 1000
    save_samples_npz(d / "samples.npz", rng.integers(0, 256, (N_SAMPLES, SIZE, SIZE, 3), dtype=np.uint8), labels)
    ref_images = rng.integers(0, 256, (n_ref, SIZE, SIZE, 3), dtype=np.uint8)
    build_reference_from_images(
        ref_images, d / "ref.npz", inception=StubExtractor(), batch_size=250, cache=False, progress=False
    )


def measure(d: Path, metrics: str) -> dict:
    from harness.metrics.evaluate import EvalOptions, evaluate_samples

    base = rss_mb()
    t0 = time.perf_counter()
    res = evaluate_samples(
        d / "samples.npz",
        d / "ref.npz",
        EvalOptions(metrics=metrics, inception=StubExtractor(), batch_size=250, cache=False, progress=False),
    )
    from harness.data.npz import npz_array_info

    return {
        "n_samples": N_SAMPLES,
        "n_reference_arr0": npz_array_info(d / "ref.npz")[0][0],
        "metrics": metrics.split(","),
        "peak_rss_mb": round(rss_mb(), 1),
        "rss_after_imports_mb": round(base, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "values": res.metrics,
        "feature_widths": {"pool": 2048, "spatial": 2023, "logits": 1008},
        "extractor": "stub (no network)",
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--metrics", default="fid,is,sfid,prec")
    ap.add_argument("--ref-images", type=int, default=10_000, help="reference arr_0 size (ADM: 10,000)")
    ap.add_argument("--step", choices=("all", "prepare", "measure"), default="all")
    a = ap.parse_args()
    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    if a.step == "prepare":
        prepare(d, a.ref_images)
    elif a.step == "measure":
        print(json.dumps(measure(d, a.metrics)))
    else:
        subprocess.run(
            [sys.executable, __file__, str(d), "--step", "prepare", "--ref-images", str(a.ref_images)], check=True
        )
        out = subprocess.run(
            [sys.executable, __file__, str(d), "--step", "measure", "--metrics", a.metrics],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        print(out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
