"""Evaluation of one (seed, row) of an ablation, through the functions a suite entry uses.

- The held-out images (the embedded val region, or the first ``per_class`` images of every ImageNet
  class of the split) are written once per run folder as ``heldout-<digest>.npz`` (``arr_0``,
  ``labels``): as a file, their Inception features live in the feature cache (keyed by file and
  weights) like every suite entry's, and every row and seed reads them from there.
- Reconstruction: the row's tokenizer encodes and decodes them in batches into
  ``reconstructions.npz`` (removed once measured); rFID, PSNR, SSIM and codebook use come from
  ``evaluate_reconstruction`` (the ``recon`` verb's and a suite recon entry's function).
- A positive-control row's ``decoder_error_scale`` scales the decoder's error, its ``decoder_blur_sigma``
  blurs and its ``decoder_noise_std`` adds Gaussian noise to the reconstructions (not to the samples:
  the generator decodes on its own, so its gFID must not move).
- Generation: the row's AR generator samples as many class-balanced images into ``samples.npz``;
  gFID, KID and precision / recall come from ``evaluate_samples`` (the ``eval`` verb's and a suite
  entry's) against the held-out images as a reference, or gFID against ``ref_stats`` when the preset
  names one (ADM's batch for a paper-comparable gFID).
- The AR model's held-out next-token figures come from its train record.
- ``paper_comparable``: the gFID evaluation's flag (the paper rule and the protocol guards, as for a
  suite entry) and the rFID rule of ``recon`` (50k ImageNet val images at 256 px, official weights),
  with the reasons of both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.config import ConfigError
from harness.core.io import atomic_path
from harness.suites.ablation.planning import EVAL_RECORD, Job
from harness.suites.ablation.suite import EvalConfig

EVAL_FIELDS = tuple(f.name for f in dataclasses.fields(EvalConfig))


@dataclasses.dataclass(frozen=True)
class Heldout:
    """The evaluation's held-out images, read in batches (ImageNet val never sits in memory at once)."""

    n: int
    num_classes: int
    identity: bytes  # what names these images (the file they are written to)
    description: str
    batches: Any  # (batch_size) -> iterator of (uint8 [b,S,S,3], labels [b])


def heldout(ev: dict[str, Any]) -> Heldout:
    """embedded: the natural patches' val region; imagenet: the first ``per_class`` images of every
    class of ``imagenet_root/<split>`` (default val), ADM centre crops at ``image_size``."""
    size, per_class = int(ev["image_size"]), int(ev["per_class"])
    source = ev.get("source", "embedded")
    if source == "embedded":
        from harness.data.embedded import natural_patches

        real, labels = natural_patches("val", size, per_class, seed=0)

        def batches(bs: int):
            for i in range(0, len(real), bs):
                yield real[i : i + bs], labels[i : i + bs]

        return Heldout(
            len(real), int(labels.max()) + 1, real.tobytes(), f"embedded val split, {per_class} per class", batches
        )
    if source != "imagenet":
        raise ConfigError(f"eval.source: {source!r} (known: embedded, imagenet)")
    if not ev.get("imagenet_root"):
        raise ConfigError("eval.source imagenet: the preset names no imagenet_root")
    from harness.data.imagenet import ImageFolderDataset
    from harness.data.imagenet_train import first_per_class, iter_center_crops

    split = str(ev.get("split", "val"))
    ds = ImageFolderDataset(ev["imagenet_root"], split, size)
    idx = first_per_class(ds.labels, per_class)
    labels = ds.labels[idx]
    listing = "\n".join(f"{ds.samples[i][0].relative_to(ds.root)}:{ds.samples[i][0].stat().st_size}" for i in idx)

    def batches(bs: int):
        for start, images in zip(range(0, len(idx), bs), iter_center_crops(ds, idx, bs, int(ev.get("workers", 4)))):
            yield images, labels[start : start + bs]

    return Heldout(
        len(idx),
        len(ds.classes),
        f"imagenet:{size}:{listing}".encode(),
        f"ImageNet {ev['imagenet_root']}/{split}: first {per_class} per class, ADM centre crop {size}",
        batches,
    )


def ar_metrics(ar_record: dict[str, Any]) -> dict[str, float]:
    """Held-out next-token metrics from the AR train record, with the gains over the baselines
    (baseline CE minus model CE, nats per token: > 0 means the model beats the code frequencies)."""
    prov = ar_record["metric_provenance"]
    held, base = prov["heldout"], prov["baselines"]
    out = {
        "ar_acc": held["overall"]["acc"],
        "ar_ce": held["overall"]["ce"],
        "ar_ce_gain_unigram": base["unigram"]["ce"] - held["overall"]["ce"],
        "ar_ce_gain_positional": base["positional_unigram"]["ce"] - held["overall"]["ce"],
        "unigram_ce": base["unigram"]["ce"],
        "positional_unigram_ce": base["positional_unigram"]["ce"],
        "unigram_acc": base["unigram"]["acc"],
        "positional_unigram_acc": base["positional_unigram"]["acc"],
    }
    for group in ("prefix", "first_row", "rest"):
        if group in held:
            out[f"ar_acc_{group}"] = held[group]["acc"]
            out[f"ar_ce_{group}"] = held[group]["ce"]
            by = base.get("positional_unigram_by_group", {}).get(group)
            if by:
                out[f"ar_ce_gain_positional_{group}"] = by["ce"] - held[group]["ce"]
                out[f"positional_unigram_acc_{group}"] = by["acc"]
    stats = prov.get("code_stats") or {}
    if stats:
        out["train_code_perplexity"] = stats["perplexity"]
    return out


# ----------------------------------------------------------------------------------------------
# Image files: held-out images, reconstructions, samples (ADM npz: arr_0 uint8 NHWC, labels)
# ----------------------------------------------------------------------------------------------
def _write_npz(path: Path, n: int, size: int, batches) -> Path:
    """``batches`` (uint8 [b,S,S,3], labels [b]) streamed into ``path``, renamed into place when complete."""
    from harness.data.npz import NpzWriter

    labels = []
    with atomic_path(path, "wb") as f, NpzWriter(f) as w:
        w.begin_array("arr_0", (n, size, size, 3), np.uint8)
        for images, lab in batches:
            w.write_rows(np.ascontiguousarray(images, dtype=np.uint8))
            labels.append(np.asarray(lab, np.int64))
        w.end_array()
        w.add("labels", np.concatenate(labels))
        w.close()
    return path


def heldout_file(held: Heldout, size: int, root: Path, batch_size: int) -> Path:
    """The held-out images as ``root/heldout-<digest>.npz``, written once per run folder."""
    path = root / f"heldout-{hashlib.sha256(held.identity).hexdigest()[:16]}.npz"
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        _write_npz(path, held.n, size, held.batches(batch_size))
    return path


def add_pixel_noise(images: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 images + N(0, std^2) per channel value (uint8 units), rounded and clipped to [0, 255].
    Away from the clip the added squared error is std^2 + 1/12 (rounding) on average: the PSNR of
    a decoder with MSE m falls to 10 log10(255^2 / (m + std^2 + 1/12))."""
    noisy = images.astype(np.float64) + rng.normal(0.0, std, images.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def scale_error(decoded: np.ndarray, real: np.ndarray, scale: float) -> np.ndarray:
    """uint8 ``real + scale * (decoded - real)``, rounded and clipped: the decoder's error scaled. A convex
    mix for scale <= 1 (never clipped), so the squared error scales by scale^2 up to rounding and the
    PSNR rises by 20 log10(1 / scale) (6.02 dB at 0.5); at 0 the reconstructions are the held-out images
    and rFID is 0."""
    mixed = real.astype(np.float64) + scale * (decoded.astype(np.float64) - real)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def blur_images(images: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 NHWC images, each channel blurred by a Gaussian of sd ``sigma`` pixels (scipy's
    ``gaussian_filter`` over H and W, edges reflected), rounded and clipped: a sinusoid of f cycles per
    pixel keeps exp(-2 pi^2 sigma^2 f^2) of its amplitude."""
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="reflect")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def reconstruct(
    tok,
    heldout_npz: Path,
    out: Path,
    n: int,
    size: int,
    batch_size: int,
    device,
    noise_std: float = 0.0,
    seed: int = 0,
    blur_sigma: float = 0.0,
    error_scale: float = 1.0,
):
    """``decode(encode(x))`` of the held-out images into ``out/reconstructions.npz``; returns (path, codes).
    A positive control changes the decoded images: ``error_scale`` != 1 scales their error
    (``scale_error``), ``blur_sigma`` > 0 blurs them (``blur_images``), then ``noise_std`` > 0 adds
    Gaussian noise (``add_pixel_noise``)."""
    import torch

    from harness.data.npz import iter_npz_batches, load_labels_npz

    codes = []
    labels = load_labels_npz(heldout_npz)
    rng = np.random.default_rng([int(seed), 7])

    def batches():
        at = 0
        with torch.inference_mode():
            for real in iter_npz_batches(heldout_npz, batch_size):
                c = tok.encode(torch.from_numpy(np.array(real)).to(device))
                codes.append(c.cpu())
                images = tok.decode(c).cpu().numpy()
                images = scale_error(images, np.asarray(real), error_scale) if error_scale != 1.0 else images
                images = blur_images(images, blur_sigma) if blur_sigma else images
                yield add_pixel_noise(images, noise_std, rng) if noise_std else images, labels[at : at + len(real)]
                at += len(real)

    path = _write_npz(out / "reconstructions.npz", n, size, batches())
    return path, torch.cat(codes)


def generate(gen, n: int, num_classes: int, seed: int, out: Path, size: int, batch_size: int) -> Path:
    """n class-balanced samples (label i % classes, as upstream's range(1000) x 50) into ``out/samples.npz``."""
    import torch

    labels = torch.arange(n) % num_classes
    rng = torch.Generator().manual_seed(int(seed))

    def batches():
        with torch.inference_mode():
            for i in range(0, n, batch_size):
                yield gen.generate(labels[i : i + batch_size], rng).cpu().numpy(), labels[i : i + batch_size].numpy()

    return _write_npz(out / "samples.npz", n, size, batches())


# ----------------------------------------------------------------------------------------------
# Measuring and the record
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Measured:
    """What the pipeline measured for one (seed, row)."""

    recon: dict[str, Any]  # evaluate_reconstruction's result
    gfid: Any  # EvalResult of the samples' gFID (its reference decides comparability)
    heldout_eval: Any  # EvalResult of KID / precision / recall against the held-out images
    heldout_description: str
    gfid_reference: str  # in words


def measure(
    ev: dict[str, Any],
    extractor,
    heldout_npz: Path,
    recon_npz: Path,
    codes,
    codebook_size: int,
    samples_npz: Path,
    n: int,
    heldout_description: str,
) -> Measured:
    """rFID / PSNR / SSIM / codebook use, then gFID / KID / precision / recall: the suite pipeline's functions,
    one extractor, the feature cache."""
    from harness.metrics.evaluate import EvalOptions, evaluate_samples
    from harness.metrics.recon import evaluate_reconstruction
    from harness.metrics.refstats import reference_from_source

    bs = int(ev["batch_size"])
    recon = evaluate_reconstruction(
        heldout_npz, recon_npz, inception=extractor, codes=codes, codebook_size=codebook_size, batch_size=bs, cache=True
    )
    held_ref = reference_from_source(heldout_npz, extractor, bs, cache=True, progress=False)
    opts = EvalOptions(
        inception=extractor,
        batch_size=bs,
        cache=True,
        progress=False,
        kid_subset_size=min(int(ev["kid_subset_size"]), n),
    )
    if ev.get("ref_stats"):
        gfid = evaluate_samples(samples_npz, ev["ref_stats"], dataclasses.replace(opts, metrics=("fid",)))
        held_eval = evaluate_samples(
            samples_npz, held_ref, dataclasses.replace(opts, metrics=("kid", "prec", "recall"))
        )
        gfid_reference = f"reference statistics {ev['ref_stats']}"
    else:
        gfid = held_eval = evaluate_samples(
            samples_npz, held_ref, dataclasses.replace(opts, metrics=("fid", "kid", "prec", "recall"))
        )
        gfid_reference = f"Inception statistics of the held-out images ({heldout_description}), not the training crops"
    return Measured(recon, gfid, held_eval, heldout_description, gfid_reference)


def eval_record(
    job: Job,
    m: Measured,
    ar_rec: dict[str, Any],
    *,
    n_heldout: int,
    num_classes: int,
    sampling: Any,
    timings: dict[str, float],
    device: Any = None,
):
    """The row's eval record: metrics of the three measurements, the gFID evaluation's provenance,
    findings and uncertainty, and ``paper_comparable`` as a suite entry computes it."""
    from harness.metrics.recon import paper_comparable as rfid_comparable
    from harness.runs.records import RunRecord, code_info, env_info

    ev = job.config
    size = int(ev["image_size"])
    rec = m.recon
    r_ok, r_why = rfid_comparable(rec["weights"], int(rec["n"]), m.heldout_description.lower(), (size, size))
    g_why = list(m.gfid.provenance.get("not_comparable_because") or [])
    if not m.gfid.paper_comparable and not g_why:
        g_why = ["a fatal protocol finding (protocol_findings)"]
    metrics = {
        "fid": m.gfid.metrics["fid"],
        "kid": m.heldout_eval.metrics["kid"],
        "kid_std": m.heldout_eval.provenance.get("kid_std"),
        "prec": m.heldout_eval.metrics["prec"],
        "recall": m.heldout_eval.metrics["recall"],
        **{k: rec[k] for k in ("rfid", "psnr", "ssim", "codebook_usage", "codebook_perplexity")},
        **ar_metrics(ar_rec),
    }
    s = m.gfid.provenance["samples"]
    prov = {
        **m.gfid.provenance,
        "n_heldout": int(n_heldout),
        "n_samples": int(s["n"]),
        "rfid_reference": "Inception statistics of the same held-out images",
        "gfid_reference": m.gfid_reference,
        "kid_prc_reference": "the held-out images' Inception features",
        "heldout_evaluation": None if m.heldout_eval is m.gfid else m.heldout_eval.provenance,
        "recon": {"n": int(rec["n"]), "weights": rec["weights"], "not_comparable_because": r_why},
        "sampling": sampling,
        "ar_heldout": ar_rec["metric_provenance"]["heldout"],
        "ar_baselines": ar_rec["metric_provenance"]["baselines"],
        "not_comparable_because": [f"gFID: {w}" for w in g_why] + [f"rFID: {w}" for w in r_why],
    }
    imagenet = ev.get("source") == "imagenet"
    notes = [
        f"held-out: {m.heldout_description}"
        if imagenet
        else "tiny scale, embedded natural patches: not paper-comparable; compare rows, not to the paper"
    ]
    return RunRecord(
        kind="eval",
        model={
            "name": f"ablation-{job.row}",
            "variant": job.row,
            "label": ev["label"],
            "tokenizer_checkpoint": ev["tokenizer_checkpoint"],
            "ar_checkpoint": ev["ar_checkpoint"],
        },
        # protocol "ablation-<preset>": the claims tell tiny rows from full-scale rows of the same name
        spec={
            "variant": job.row,
            "label": ev["label"],
            "protocol": {"name": ev["protocol"]},
            "eval": {k: ev[k] for k in EVAL_FIELDS if k in ev},
            "ar_record": ev["ar_record"],
            "stage1_record": ev["stage1_record"],
            "heldout": {"description": m.heldout_description, "images": int(n_heldout), "classes": int(num_classes)},
        },
        seeds={"seed": int(ev["seed"])},
        code=code_info(),
        env=env_info(device),
        samples={k: s.get(k) for k in ("path", "sha256", "n", "image_size", "labels", "balanced", "num_classes")},
        metrics={k: (None if v is None else float(v)) for k, v in metrics.items()},
        metric_provenance=prov,
        paper_comparable=bool(m.gfid.paper_comparable and r_ok),
        protocol_findings=list(m.gfid.findings),
        uncertainty=dict(m.gfid.uncertainty),
        timings=timings,
        notes=notes + list(m.gfid.warnings),
    )


def evaluate_job(job: Job, device_name: str) -> None:
    """Reconstruction of the held-out images, samples of the generator, the AR model's held-out
    next-token figures; one eval record (``eval_record.json``) in the job's folder."""
    from harness.core.devices import resolve_device
    from harness.core.registry import generators, load_plugins, tokenizers
    from harness.metrics.inception import InceptionExtractor
    from harness.runs.records import read_record, write_record

    load_plugins()
    ev, device = job.config, resolve_device(device_name)
    bs, size = int(ev["batch_size"]), int(ev["image_size"])
    extractor = InceptionExtractor(ev["inception"], str(device))
    if ev.get("ref_stats"):  # checked before any image is read
        from harness.metrics.refstats import check_compatible, load_reference

        check_compatible(load_reference(ev["ref_stats"]), extractor.describe(), (size, size))
    t0 = time.perf_counter()
    held = heldout(ev)
    heldout_npz = heldout_file(held, size, job.out.parent.parent.parent, bs)
    job.out.mkdir(parents=True, exist_ok=True)
    tok = tokenizers.get(ev["tokenizer_plugin"])(device=device, checkpoint=ev["tokenizer_checkpoint"])
    noise, blur = float(ev.get("decoder_noise_std") or 0.0), float(ev.get("decoder_blur_sigma") or 0.0)
    scale = float(ev.get("decoder_error_scale", 1.0))
    recon_npz, codes = reconstruct(
        tok,
        heldout_npz,
        job.out,
        held.n,
        size,
        bs,
        device,
        noise_std=noise,
        seed=int(ev["seed"]),
        blur_sigma=blur,
        error_scale=scale,
    )
    t_recon = time.perf_counter()
    gen = generators.get(ev["generator_plugin"])(
        device=device, checkpoint=ev["ar_checkpoint"], tokenizer_checkpoint=ev["tokenizer_checkpoint"]
    )
    samples_npz = generate(gen, held.n, held.num_classes, ev["seed"], job.out, size, bs)
    t_gen = time.perf_counter()
    measured = measure(
        ev, extractor, heldout_npz, recon_npz, codes, tok.codebook_size, samples_npz, held.n, held.description
    )
    recon_npz.unlink()  # measured; at the imagenet preset 10 GB per row and seed (the samples stay, as a suite's)
    t_end = time.perf_counter()
    record = eval_record(
        job,
        measured,
        read_record(ev["ar_record"]),
        n_heldout=held.n,
        num_classes=held.num_classes,
        sampling=gen.info().get("sampling"),
        device=device,
        timings={
            "recon_s": round(t_recon - t0, 2),
            "generate_s": round(t_gen - t_recon, 2),
            "metrics_s": round(t_end - t_gen, 2),
        },
    )
    write_record(record, job.out, EVAL_RECORD)
