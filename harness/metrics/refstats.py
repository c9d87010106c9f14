"""Reference statistics in ADM's format (``mu, sigma, mu_s, sigma_s, arr_0``) plus a metadata sidecar.

- ``load_reference`` reads OpenAI's reference batches (e.g. ``VIRTUAL_imagenet256_labeled.npz``) and ours.
- ``build_reference_from_images`` writes ours: float64 stats of pool3 (FID) and the sFID layer, up to
  10k of the images as ``arr_0`` (for recall), and ``REF.npz.json`` with extractor, weights sha256,
  resize, N, dtypes, preprocessing and code version. Both files are written to temp names first.
- ``check_compatible`` refuses to compare features with statistics made differently (other weights,
  extractor, resize or image size): such an FID would be a number about two pipelines, not two sets.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from harness.data import npz as npz_io
from harness.errors import InputFileError, UserError, one_line
from harness.metrics.fid import feature_statistics
from harness.metrics.weights import sha256_file

REF_FORMAT = "alitok-bench-ref/1"
MAX_REF_IMAGES = 10_000
STAT_KEYS = ("mu", "sigma", "mu_s", "sigma_s")
ADM_REFERENCE_NAMES = ("VIRTUAL_imagenet256_labeled.npz",)
# ADM's stats come from the TF graph 2015-12-05; these weight kinds are conversions of that same graph.
ADM_COMPATIBLE_WEIGHTS = ("official", "fid-helper")


class ReferenceMismatch(UserError):
    """Sample features and reference statistics were produced by different pipelines."""


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


@dataclasses.dataclass
class Reference:
    path: Path
    sha256: str
    mu: np.ndarray
    sigma: np.ndarray
    mu_s: np.ndarray | None
    sigma_s: np.ndarray | None
    n_images: int              # images stored in arr_0 (0 if none)
    image_size: tuple[int, int] | None
    metadata: dict[str, Any] | None  # None: a reference without our sidecar (e.g. OpenAI's)

    @property
    def kind(self) -> str:
        if self.metadata is not None:
            return "alitok-bench"
        if self.path.name in ADM_REFERENCE_NAMES:
            return "adm-virtual-imagenet256"
        return "adm-format"

    def describe(self) -> dict:
        meta = self.metadata or {}
        return {"path": str(self.path), "sha256": self.sha256, "kind": self.kind, "n_images_arr0": self.n_images,
                "image_size": list(self.image_size) if self.image_size else None,
                "n_stats": meta.get("n"), "weights_sha256": (meta.get("weights") or {}).get("sha256"),
                "resize": meta.get("resize"), "source": meta.get("source")}


def _check_stat_pair(path: Path, mu: np.ndarray, sigma: np.ndarray, names: tuple[str, str]) -> None:
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise InputFileError(path, f"{names[0]}/{names[1]} have shapes {list(mu.shape)}/{list(sigma.shape)}, expected [D] and [D,D]")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise InputFileError(path, f"{names[0]} or {names[1]} contains NaN or inf")


def load_reference(path: str | Path) -> Reference:
    path = Path(path)
    keys = npz_io.npz_keys(path)  # names the file when missing / not a zip
    missing = [k for k in ("mu", "sigma") if k not in keys]
    if missing:
        raise InputFileError(path, f"reference is missing key(s) {', '.join(missing)} (has: {', '.join(keys) or 'none'})")
    if ("mu_s" in keys) != ("sigma_s" in keys):
        raise InputFileError(path, "reference has only one of mu_s / sigma_s")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], np.float64) for k in STAT_KEYS if k in keys}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise InputFileError(path, f"cannot read reference statistics ({one_line(e)})") from None
    _check_stat_pair(path, arrays["mu"], arrays["sigma"], ("mu", "sigma"))
    if "mu_s" in arrays:
        _check_stat_pair(path, arrays["mu_s"], arrays["sigma_s"], ("mu_s", "sigma_s"))
    n_images, size = 0, None
    if "arr_0" in keys:
        shape, dtype = npz_io.npz_array_info(path, "arr_0")
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
            raise InputFileError(path, f"arr_0 must be uint8 [N,H,W,3] images, got {dtype} {list(shape)}")
        n_images, size = int(shape[0]), (int(shape[1]), int(shape[2]))
    sha = sha256_file(path)
    metadata = None
    side = sidecar_path(path)
    if side.is_file():
        try:
            metadata = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputFileError(side, f"unreadable metadata sidecar ({e})") from None
        if not isinstance(metadata, dict) or metadata.get("format") != REF_FORMAT:
            raise InputFileError(side, f"not an {REF_FORMAT} metadata file")
        if metadata.get("npz_sha256") != sha:
            raise InputFileError(side, f"metadata describes a different file (sha256 {str(metadata.get('npz_sha256'))[:12]}..., "
                                 f"{path.name} is {sha[:12]}...): rebuild the reference")
        if size is None and metadata.get("image_size"):
            size = tuple(metadata["image_size"])
    return Reference(path, sha, arrays["mu"], arrays["sigma"], arrays.get("mu_s"), arrays.get("sigma_s"),
                     n_images, size, metadata)


def check_compatible(ref: Reference, extractor_info: dict, image_size: tuple[int, int] | None) -> list[str]:
    """Raise ReferenceMismatch when the reference was made by another pipeline; return warnings."""
    warnings: list[str] = []
    weights = extractor_info["weights"]
    where = ref.path
    if ref.metadata is not None:
        meta = ref.metadata
        ref_w = meta.get("weights") or {}
        if ref_w.get("sha256") != weights["sha256"]:
            raise ReferenceMismatch(f"{where}: reference statistics were computed with Inception weights "
                                    f"{ref_w.get('kind')} sha256 {str(ref_w.get('sha256'))[:12]}..., the samples with "
                                    f"{weights['kind']} sha256 {weights['sha256'][:12]}...; use --inception "
                                    f"{ref_w.get('spec', 'SAME')} or rebuild the reference")
        for field in ("extractor", "resize", "sfid_layer"):
            if meta.get(field) != extractor_info.get(field):
                raise ReferenceMismatch(f"{where}: reference {field} is {meta.get(field)!r}, samples use "
                                        f"{extractor_info.get(field)!r}; rebuild the reference")
    else:
        if weights["kind"] not in ADM_COMPATIBLE_WEIGHTS:
            raise ReferenceMismatch(f"{where}: an ADM-format reference holds statistics of the TF Inception graph; "
                                    f"{weights['kind']} weights (sha256 {weights['sha256'][:12]}...) are a different "
                                    f"network; use --inception official or fid-helper")
        if weights["kind"] == "fid-helper":
            warnings.append("ADM reference statistics compared with fid-helper weights (a conversion of the same TF "
                            "graph, not bit-identical): FID is close to, not equal to, the ADM evaluator's")
    if image_size is not None and ref.image_size is not None and tuple(ref.image_size) != tuple(image_size):
        raise ReferenceMismatch(f"{where}: reference images are {ref.image_size[0]}x{ref.image_size[1]}, samples are "
                                f"{image_size[0]}x{image_size[1]}; statistics at different resolutions are not comparable")
    return warnings


def _spaced_indices(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over [0, n) (so a class-sorted source still gives every class)."""
    return np.arange(n) if n <= k else (np.arange(k, dtype=np.int64) * n) // k


def build_reference_from_images(images: np.ndarray | Iterable[np.ndarray] | str | Path, out_path: str | Path,
                                inception: Any = "fid-helper", batch_size: int = 50, device: str = "auto",
                                source_desc: str = "", cache: bool | str | Path = True,
                                max_images: int = MAX_REF_IMAGES) -> Path:
    """Extract features of ``images`` and write ``out_path`` (ADM keys) + its metadata sidecar; returns the path.

    ``images``: uint8 [N,H,W,3] array, an iterator of such batches, or an npz/shards path.
    ``inception``: a weights spec string or an ``InceptionExtractor``.
    """
    from harness.metrics.features import extract_features, seed_cache
    from harness.metrics.inception import InceptionExtractor

    out_path = Path(out_path)
    if out_path.suffix != ".npz":
        raise ValueError(f"{out_path}: the reference file name must end in .npz")
    extractor = inception if isinstance(inception, InceptionExtractor) else InceptionExtractor(inception, device)
    kept: list[np.ndarray] = []
    arr0_rule = "all"
    if isinstance(images, np.ndarray):
        npz_io.check_images_array(images, source_desc or "images")
        source = images
    elif isinstance(images, (str, Path)):
        source = images
    else:  # an iterator: keep its first max_images images while streaming
        arr0_rule = f"first {max_images}"

        def tee(it):
            have = 0
            for b in it:
                b = np.asarray(b)
                if have < max_images:
                    kept.append(np.array(b[: max_images - have]))
                    have += len(kept[-1])
                yield b

        source = tee(images)
    feats = extract_features(source, extractor, batch_size, cache=cache, name="reference images")
    if feats.n < 2:
        raise UserError(f"{source_desc or 'reference images'}: need at least 2 images for a covariance, got {feats.n}")
    mu, sigma = feature_statistics(feats.pool, "reference pool3 features")
    mu_s, sigma_s = feature_statistics(feats.spatial, "reference sFID features")
    if isinstance(source, np.ndarray):
        idx = _spaced_indices(feats.n, max_images)
        arr0 = source[idx]
        arr0_rule = "all" if feats.n <= max_images else f"{max_images} evenly spaced"
    elif isinstance(source, (str, Path)):
        idx = set(_spaced_indices(feats.n, max_images).tolist())
        rows, i = [], 0
        for b in npz_io.iter_npz_batches(source, 1000) if Path(source).is_file() else npz_io.iter_shard_batches(source, 1000):
            rows.extend(b[j] for j in range(len(b)) if i + j in idx)
            i += len(b)
        arr0 = np.stack(rows)
        arr0_rule = "all" if feats.n <= max_images else f"{max_images} evenly spaced"
    else:
        arr0 = np.concatenate(kept)
        arr0_rule = "all" if feats.n <= max_images else arr0_rule
    info = extractor.describe()
    from harness.records import code_info

    meta = {"format": REF_FORMAT, "extractor": info["extractor"], "resize": info["resize"],
            "sfid_layer": info["sfid_layer"], "weights": {k: info["weights"][k] for k in ("spec", "kind", "sha256")},
            "n": feats.n, "image_size": list(feats.image_size), "dtype": "uint8", "feature_dtype": "float32",
            "stats_dtype": "float64", "arr_0": {"n": int(arr0.shape[0]), "rule": arr0_rule},
            "source": source_desc or (str(images) if isinstance(images, (str, Path)) else "in-memory images"),
            "preprocessing": "images as given (uint8 NHWC, native size); Inception resizes with TF1 bilinear to 299",
            "code": code_info(), "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_npz = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    side = sidecar_path(out_path)
    tmp_side = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    try:
        with open(tmp_npz, "wb") as f:
            npz_io.npz_bytes_to(f, {"mu": mu, "sigma": sigma, "mu_s": mu_s, "sigma_s": sigma_s, "arr_0": arr0})
        meta["npz_sha256"] = sha256_file(tmp_npz)
        tmp_side.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        os.replace(tmp_npz, out_path)
        os.replace(tmp_side, side)
    finally:
        for t in (tmp_npz, tmp_side):
            if t.exists():
                t.unlink()
    if arr0.shape[0] == feats.n:
        # arr_0 holds exactly these images in this order: evaluate's P/R then needs no second extraction
        seed_cache(out_path, extractor.weights.sha256, feats, cache)
    return out_path


def verify_reference(path: str | Path) -> dict[str, Any]:
    """Check a reference file (keys, shapes, finiteness, symmetric PSD covariances, sidecar); return a summary."""
    ref = load_reference(path)
    report: dict[str, Any] = {"path": str(ref.path), "sha256": ref.sha256, "kind": ref.kind, "dim": int(ref.mu.shape[0]),
                              "has_sfid": ref.mu_s is not None, "n_images_arr0": ref.n_images,
                              "image_size": list(ref.image_size) if ref.image_size else None,
                              "metadata": ref.metadata is not None}
    for name, s in (("sigma", ref.sigma), ("sigma_s", ref.sigma_s)):
        if s is None:
            continue
        scale = max(float(np.abs(s).max()), 1e-30)
        if float(np.abs(s - s.T).max()) > 1e-9 * scale:
            raise InputFileError(ref.path, f"{name} is not symmetric")
        try:  # PSD up to round-off <=> Cholesky of s + tol*I succeeds (much cheaper than eigenvalues)
            np.linalg.cholesky(s + np.eye(s.shape[0]) * 1e-6 * scale)
        except np.linalg.LinAlgError:
            raise InputFileError(ref.path, f"{name} is not positive semi-definite") from None
    if ref.metadata is not None:
        meta = ref.metadata
        report.update(n=meta.get("n"), weights=meta.get("weights"), resize=meta.get("resize"), source=meta.get("source"))
        if meta.get("arr_0", {}).get("n") != ref.n_images:
            raise InputFileError(ref.path, f"arr_0 holds {ref.n_images} images, metadata says {meta.get('arr_0', {}).get('n')}")
    return report
