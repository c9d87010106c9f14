"""The Python API, for notebooks and training loops: the same engine as the CLI, without files in the way.

    from harness import api

    result = api.evaluate(images, "ref.npz", metrics="fid,prec,recall")   # uint8 NHWC array or tensor
    result.metrics["fid"], result.provenance["weights"]["sha256"]

    result = api.evaluate((model_batch(i) for i in range(100)), "ref.npz")  # an iterable of batches

    s = api.sample("alitok-tiny", "demo", num_samples=44)                  # same pixels as `alitok-bench sample`
    s.images.shape, s.labels                                                # (44, 32, 32, 3) uint8, int64

    df = api.summary_frame("results")       # label, model, protocol, N, metrics with spread, paper_comparable
    df = api.load_records("results")        # every nested key of every record (hundreds of columns)

Images are uint8 RGB ``[N, H, W, 3]`` (NHWC) everywhere, as numpy arrays or torch tensors (on any
device). A reference is an ADM-format npz (ours from ``alitok-bench ref-stats build`` or OpenAI's), or
uint8 reference images, from which reference statistics are built in a temporary folder first.
Errors in the input raise ``harness.core.errors.UserError`` subclasses with a one-line message.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import UserError


class APIInputError(UserError, ValueError):
    """Images of the wrong type, dtype or layout handed to the API."""


def as_uint8_nhwc(images: Any, where: str = "images") -> np.ndarray:
    """A numpy uint8 ``[N,H,W,3]`` view of a numpy array or torch tensor (NCHW is refused, not guessed)."""
    if hasattr(images, "detach") and hasattr(images, "cpu"):  # a torch tensor, without importing torch here
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        raise APIInputError(
            f"{where}: expected a uint8 numpy array or torch tensor [N,H,W,3], got {type(images).__name__}"
        )
    if images.ndim == 4 and images.shape[1] == 3 and images.shape[-1] != 3:
        raise APIInputError(f"{where}: shape {list(images.shape)} looks NCHW; pass NHWC (x.permute(0, 2, 3, 1))")
    if images.dtype != np.uint8:
        raise APIInputError(
            f"{where}: expected uint8 pixels 0..255, got {images.dtype} "
            "(convert with the model's quantisation rule, e.g. harness.core.interfaces.to_uint8)"
        )
    if images.ndim != 4 or images.shape[-1] != 3:
        raise APIInputError(f"{where}: expected shape [N,H,W,3], got {list(images.shape)}")
    return images


def _images_source(samples: Any) -> Any:
    """Path stays a path; arrays/tensors become one array; anything else is an iterable of batches."""
    if isinstance(samples, (str, Path)):
        return samples
    if isinstance(samples, np.ndarray) or hasattr(samples, "detach"):
        return as_uint8_nhwc(samples, "samples")
    if not isinstance(samples, Iterable):
        raise APIInputError(
            f"samples: expected a path, an array/tensor or an iterable of batches, got {type(samples).__name__}"
        )
    return (as_uint8_nhwc(b, f"samples batch {i}") for i, b in enumerate(samples))


def evaluate(
    samples: Any,
    reference: Any,
    *,
    metrics: str | Sequence[str] | None = None,
    labels: Any = None,
    inception: Any = "fid-helper",
    device: str = "auto",
    batch_size: int = 50,
    cache: bool | str | Path = False,
    **options: Any,
):
    """Metrics of ``samples`` against ``reference``; returns ``harness.metrics.evaluate.EvalResult``.

    ``samples``: uint8 NHWC array or tensor, an iterable of such batches (a generator works: it is read
    once), or a samples npz / shards folder. ``reference``: a reference npz, or uint8 NHWC reference
    images (statistics are built with the same ``inception`` weights). ``metrics``: names or a comma
    list (``harness.metrics.table``); None = the ADM five, skipping those the reference cannot give.
    ``inception``: official | fid-helper | random:SEED | a weights path, or a built
    ``harness.metrics.inception.InceptionExtractor`` (reuse one across calls in a training loop).
    ``labels`` (int [N]) describe in-memory samples for the class-balance provenance. ``cache``: the
    feature cache is off by default here (in-memory samples of a training loop rarely repeat).
    ``options``: ``fid_method``, ``is_mode``, ``kid_subset_size``, ``kid_subsets``.
    """
    from harness.metrics.evaluate import EvalOptions, evaluate_samples

    source = _images_source(samples)
    opts = EvalOptions(
        metrics=metrics, inception=inception, batch_size=batch_size, device=device, cache=cache, **options
    )
    if labels is not None:
        labels = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
    if isinstance(reference, (str, Path)):
        return evaluate_samples(source, reference, opts, labels=labels)
    ref_images = as_uint8_nhwc(reference, "reference")
    with tempfile.TemporaryDirectory(prefix="alitok-bench-ref-") as tmp:
        ref_path = build_reference(
            ref_images,
            Path(tmp) / "reference.npz",
            inception=inception,
            device=device,
            batch_size=batch_size,
            cache=cache,
        )
        return evaluate_samples(source, ref_path, opts, labels=labels)


def build_reference(
    images: Any,
    out: str | Path,
    *,
    inception: Any = "fid-helper",
    device: str = "auto",
    batch_size: int = 50,
    cache: bool | str | Path = False,
) -> Path:
    """Write reference statistics (ADM keys + metadata sidecar) of uint8 NHWC ``images`` to ``out`` (.npz)."""
    from harness.metrics.refstats import build_reference_from_images

    return build_reference_from_images(
        as_uint8_nhwc(images, "reference"),
        out,
        inception=inception,
        device=device,
        batch_size=batch_size,
        cache=cache,
        source_desc="harness.api images",
    )


@dataclasses.dataclass
class Samples:
    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: np.ndarray  # int64 [N]
    identity_hash: str  # the sampling identity (same hash as `alitok-bench sample` records)
    images_per_s: float | None  # generate() throughput of this call (None when every chunk was reused)
    folder: Path | None  # where the shards are, when ``out`` was given


def sample(
    model: str,
    protocol: str = "demo",
    *,
    num_samples: int | None = None,
    seed: int | None = None,
    sampling: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    checkpoint: str | None = None,
    tokenizer_checkpoint: str | None = None,
    generator: Any = None,
    device: str = "auto",
    dtype: str = "fp32",
    out: str | Path | None = None,
    progress: bool = False,
) -> Samples:
    """Sample ``model`` under ``protocol`` with the engine's chunked, seeded plan: the images equal
    those ``alitok-bench sample --model MODEL --protocol PROTOCOL`` writes (same identity, same seeds).

    ``sampling``/``options``: overrides of the generator's sampling preset / factory options.
    ``generator``: an already built ``harness.core.interfaces.Generator`` (e.g. the model being trained);
    ``model`` then only names it. ``out``: keep the shards there (resumable); default: a temporary folder.
    """
    from harness.runs.specs import build_run_spec
    from harness.sampling.runner import sample as run_sampling

    model_spec: dict[str, Any] = {"name": model}
    for key, value in (
        ("checkpoint", checkpoint),
        ("tokenizer_checkpoint", tokenizer_checkpoint),
        ("sampling", sampling),
        ("options", options),
    ):
        if value:
            model_spec[key] = value
    protocol_spec: dict[str, Any] = {"name": protocol}
    if num_samples is not None:
        protocol_spec["num_samples"] = num_samples
    if seed is not None:
        protocol_spec["seed"] = seed
    spec = build_run_spec({"model": model_spec, "protocol": protocol_spec}, source="harness.api.sample")

    def run(folder: Path) -> Samples:
        result = run_sampling(spec, folder, device=device, dtype=dtype, progress=progress, generator=generator)
        with np.load(result.gathered["path"]) as z:
            images, labels = z["arr_0"], z["labels"]
        return Samples(
            images,
            labels,
            result.resolved.identity_hash,
            result.images_per_s,
            Path(folder) if out is not None else None,
        )

    if out is not None:
        return run(Path(out))
    with tempfile.TemporaryDirectory(prefix="alitok-bench-sample-") as tmp:
        return run(Path(tmp))


def summary_frame(folder: str | Path = "results"):
    """The tidy results table of every record below ``folder``: label, model, kind, protocol, N, each metric
    with its ``_spread``, paper_comparable, status, record_path (``harness.report.collect.summary_frame``)."""
    from harness.report.collect import summary_frame as _summary

    if not Path(folder).is_dir():
        raise UserError(f"{folder}: no such records folder")
    return _summary([folder])


def load_records(folder: str | Path = "results"):
    """Every ``*record*.json`` below ``folder`` as one pandas DataFrame (nested keys flattened with dots,
    e.g. ``metrics.fid``, ``model.name``; column ``record_path`` names the file)."""
    from harness.runs.records import load_records as _load

    if not Path(folder).is_dir():
        raise UserError(f"{folder}: no such records folder")
    return _load(folder)
