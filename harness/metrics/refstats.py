"""Reference statistics in ADM's format (``mu, sigma, mu_s, sigma_s, arr_0``) plus a metadata sidecar.

- ``load_reference`` reads OpenAI's reference batches (e.g. ``VIRTUAL_imagenet256_labeled.npz``) and ours.
- ``build_reference_from_images`` writes ours: float64 stats of pool3 (FID) and the sFID layer, up to
  10k of the images as ``arr_0`` (for recall), and the metadata (extractor, weights sha256, resize, N,
  dtypes, preprocessing, code version) inside the npz and in a readable ``REF.npz.json`` sidecar.
  The sidecar lands first, the npz second, under a per-reference lock (see ``_write_reference``).
- Ours also carry ``stats_sha256`` in that metadata: a digest of the statistics and of the other metadata,
  checked on every load, so an edited mu/sigma (or a hand-edited weights sha256) is refused even when the
  sidecar is gone. Ours made before the digest load only with their sidecar (whose npz_sha256 covers the
  whole file); OpenAI's reference batches have no metadata of ours and load as ADM-format files,
  identified by their file sha256 in every result.
- ``check_compatible`` refuses to compare features with statistics made differently (other weights,
  extractor, resize or image size): such an FID would be a number about two pipelines, not two sets.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import InputFileError, UserError, one_line
from harness.core.io import parse_json, read_json, sha256_file
from harness.data import npz as npz_io

REF_FORMAT = "alitok-bench-ref/1"
MAX_REF_IMAGES = 10_000
MAX_FEATURE_DIM = 1 << 16  # Inception pool3 is 2048, the sFID layer 2023; DINOv2 etc. stay far below
META_KEY = "alitok_bench_meta"  # uint8 JSON bytes: the metadata travels inside the npz
DIGEST_KEY = "stats_sha256"  # in that metadata: see stats_digest
STAT_KEYS = ("mu", "sigma", "mu_s", "sigma_s", "mu_dinov2", "sigma_dinov2")
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
    n_images: int  # images stored in arr_0 (0 if none)
    image_size: tuple[int, int] | None
    metadata: dict[str, Any] | None  # None: a reference without our sidecar (e.g. OpenAI's)
    mu_dinov2: np.ndarray | None = None  # FD-DINOv2 statistics (built with --dinov2; metadata["dinov2"] names it)
    sigma_dinov2: np.ndarray | None = None
    integrity: str = "none"  # what vouched for the statistics on load: "stats digest", "sidecar", "none"

    @property
    def kind(self) -> str:
        if self.metadata is not None:
            return "alitok-bench"
        if self.path.name in ADM_REFERENCE_NAMES:
            return "adm-virtual-imagenet256"
        return "adm-format"

    def describe(self) -> dict:
        meta = self.metadata or {}
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "kind": self.kind,
            "n_images_arr0": self.n_images,
            "image_size": list(self.image_size) if self.image_size else None,
            "n_stats": meta.get("n"),
            "weights_sha256": (meta.get("weights") or {}).get("sha256"),
            "resize": meta.get("resize"),
            "source": meta.get("source"),
        }


def _check_stat_pair(path: Path, mu: np.ndarray, sigma: np.ndarray, names: tuple[str, str]) -> None:
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise InputFileError(
            path, f"{names[0]}/{names[1]} have shapes {list(mu.shape)}/{list(sigma.shape)}, expected [D] and [D,D]"
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise InputFileError(path, f"{names[0]} or {names[1]} contains NaN or inf")


def _check_stat_headers(path: Path, keys: list[str]) -> None:
    """Shapes from the headers before anything is loaded: a sigma header claiming 10^6 x 10^6 is refused."""
    for mu_key, sigma_key in (("mu", "sigma"), ("mu_s", "sigma_s"), ("mu_dinov2", "sigma_dinov2")):
        if mu_key not in keys:
            continue
        mu_shape, _ = npz_io.npz_array_info(path, mu_key)
        sigma_shape, _ = npz_io.npz_array_info(path, sigma_key)
        if len(mu_shape) != 1 or not 1 <= mu_shape[0] <= MAX_FEATURE_DIM:
            raise InputFileError(
                path, f"{mu_key} header has shape {list(mu_shape)}, expected [D] with D <= {MAX_FEATURE_DIM}"
            )
        if tuple(sigma_shape) != (mu_shape[0], mu_shape[0]):
            raise InputFileError(
                path, f"{sigma_key} header has shape {list(sigma_shape)}, expected [{mu_shape[0]}, {mu_shape[0]}]"
            )
    if META_KEY in keys:
        shape, dtype = npz_io.npz_array_info(path, META_KEY)
        if dtype != np.uint8 or len(shape) != 1 or shape[0] > 1 << 20:
            raise InputFileError(path, f"{META_KEY} must be uint8 JSON bytes under 1 MiB, got {dtype} {list(shape)}")


def stats_digest(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """sha256 of the metadata (less this digest) and of every statistic as little-endian float64 in
    STAT_KEYS order, each preceded by its name and shape: equal statistics, equal digest, on any machine."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != DIGEST_KEY}, sort_keys=True).encode())
    for k in STAT_KEYS:
        if k in arrays:
            a = np.ascontiguousarray(arrays[k], dtype="<f8")
            h.update(f"\n{k}{list(a.shape)}\n".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _embedded_metadata(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = bytes(z[META_KEY])
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise InputFileError(
            path, f"unreadable embedded metadata ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    meta = parse_json(raw, f"{path} ({META_KEY})")
    if not isinstance(meta, dict) or meta.get("format") != REF_FORMAT:
        raise InputFileError(path, f"embedded metadata is not {REF_FORMAT}")
    return meta


def load_reference(path: str | Path) -> Reference:
    path = Path(path)
    keys = npz_io.npz_keys(path)  # names the file when missing / not a zip
    missing = [k for k in ("mu", "sigma") if k not in keys]
    if missing:
        raise InputFileError(
            path, f"reference is missing key(s) {', '.join(missing)} (has: {', '.join(keys) or 'none'})"
        )
    for a, b in (("mu_s", "sigma_s"), ("mu_dinov2", "sigma_dinov2")):
        if (a in keys) != (b in keys):
            raise InputFileError(path, f"reference has only one of {a} / {b}")
    _check_stat_headers(path, keys)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], np.float64) for k in STAT_KEYS if k in keys}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputFileError(path, f"cannot read reference statistics ({one_line(e)})") from None
    _check_stat_pair(path, arrays["mu"], arrays["sigma"], ("mu", "sigma"))
    for a, b in (("mu_s", "sigma_s"), ("mu_dinov2", "sigma_dinov2")):
        if a in arrays:
            _check_stat_pair(path, arrays[a], arrays[b], (a, b))
    n_images, size = 0, None
    if "arr_0" in keys:
        shape, dtype = npz_io.npz_array_info(path, "arr_0")
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
            raise InputFileError(path, f"arr_0 must be uint8 [N,H,W,3] images, got {dtype} {list(shape)}")
        n_images, size = int(shape[0]), (int(shape[1]), int(shape[2]))
    sha = sha256_file(path)
    integrity = "none"
    # Ours carry their metadata inside the npz (they cannot lose it); the sidecar is a readable copy,
    # renamed into place *before* the npz, so a sidecar that disagrees means an interrupted build.
    metadata = _embedded_metadata(path) if META_KEY in keys else None
    side = sidecar_path(path)
    if side.is_file():
        side_meta = read_json(side)
        if not isinstance(side_meta, dict) or side_meta.get("format") != REF_FORMAT:
            raise InputFileError(side, f"not an {REF_FORMAT} metadata file")
        if side_meta.get("npz_sha256") != sha:
            raise InputFileError(
                side,
                f"metadata describes a different file (sha256 {str(side_meta.get('npz_sha256'))[:12]}..., "
                f"{path.name} is {sha[:12]}...; an interrupted build?): rebuild the reference",
            )
        if metadata is None:
            metadata = side_meta  # built before metadata was embedded
        integrity = "sidecar"  # its npz_sha256 covers every byte of the file
    if META_KEY in keys:
        if DIGEST_KEY in metadata:
            if stats_digest(arrays, metadata) != metadata[DIGEST_KEY]:
                raise InputFileError(
                    path,
                    "statistics or metadata do not match the digest stored when the reference "
                    "was built (edited or damaged): rebuild it with ref-stats build",
                )
            integrity = "stats digest"
        elif integrity != "sidecar":
            raise InputFileError(
                path,
                f"built without a statistics digest and its sidecar {side.name} is missing, so "
                "nothing vouches for mu/sigma: rebuild it with ref-stats build",
            )
    if metadata is not None and size is None and metadata.get("image_size"):
        size = tuple(metadata["image_size"])
    if "mu_dinov2" in arrays and not (metadata or {}).get("dinov2"):
        raise InputFileError(
            path,
            "reference holds mu_dinov2/sigma_dinov2 but no record of the DINOv2 extractor "
            "that made them (metadata 'dinov2'): rebuild it with --dinov2",
        )
    return Reference(
        path,
        sha,
        arrays["mu"],
        arrays["sigma"],
        arrays.get("mu_s"),
        arrays.get("sigma_s"),
        n_images,
        size,
        metadata,
        arrays.get("mu_dinov2"),
        arrays.get("sigma_dinov2"),
        integrity,
    )


def check_compatible(ref: Reference, extractor_info: dict, image_size: tuple[int, int] | None) -> list[str]:
    """Raise ReferenceMismatch when the reference was made by another pipeline; return warnings."""
    warnings: list[str] = []
    weights = extractor_info["weights"]
    where = ref.path
    if ref.metadata is not None:
        meta = ref.metadata
        ref_w = meta.get("weights") or {}
        # a reference from before weights were identified by their tensors names the file's sha256
        if ref_w.get("sha256") not in (weights["sha256"], weights.get("file_sha256")):
            raise ReferenceMismatch(
                f"{where}: reference statistics were computed with Inception weights "
                f"{ref_w.get('kind')} sha256 {str(ref_w.get('sha256'))[:12]}..., the samples with "
                f"{weights['kind']} sha256 {weights['sha256'][:12]}...; use --inception "
                f"{ref_w.get('spec', 'SAME')} or rebuild the reference"
            )
        for field in ("extractor", "resize", "sfid_layer"):
            if meta.get(field) != extractor_info.get(field):
                raise ReferenceMismatch(
                    f"{where}: reference {field} is {meta.get(field)!r}, samples use "
                    f"{extractor_info.get(field)!r}; rebuild the reference"
                )
    else:
        if weights["kind"] not in ADM_COMPATIBLE_WEIGHTS:
            raise ReferenceMismatch(
                f"{where}: an ADM-format reference holds statistics of the TF Inception graph; "
                f"{weights['kind']} weights (sha256 {weights['sha256'][:12]}...) are a different "
                f"network; use --inception official or fid-helper"
            )
        if weights["kind"] == "fid-helper":
            warnings.append(
                "ADM reference statistics compared with fid-helper weights (a conversion of the same TF "
                "graph, not bit-identical): FID is close to, not equal to, the ADM evaluator's"
            )
    if image_size is not None and ref.image_size is not None and tuple(ref.image_size) != tuple(image_size):
        raise ReferenceMismatch(
            f"{where}: reference images are {ref.image_size[0]}x{ref.image_size[1]}, samples are "
            f"{image_size[0]}x{image_size[1]}; statistics at different resolutions are not comparable "
            "(eval --resize clean|center-crop resizes both explicitly)"
        )
    return warnings


def _spaced_indices(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over [0, n) (so a class-sorted source still gives every class)."""
    return np.arange(n) if n <= k else (np.arange(k, dtype=np.int64) * n) // k


def _metadata(extractor, feats, arr0_n: int, arr0_rule: str, source: str) -> dict[str, Any]:
    from harness.runs.records import code_info

    info = extractor.describe()
    return {
        "format": REF_FORMAT,
        "extractor": info["extractor"],
        "resize": info["resize"],
        "sfid_layer": info["sfid_layer"],
        "weights": {k: info["weights"][k] for k in ("spec", "kind", "sha256")},
        "n": feats.n,
        "image_size": list(feats.image_size),
        "dtype": "uint8",
        "feature_dtype": "float32",
        "stats_dtype": "float64",
        "arr_0": {"n": int(arr0_n), "rule": arr0_rule},
        "source": source,
        "preprocessing": "images as given (uint8 NHWC, native size); Inception resizes with TF1 bilinear to 299",
        "code": code_info(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def reference_from_source(
    source,
    extractor,
    batch_size: int = 50,
    cache: bool | str | Path = True,
    progress: bool | None = None,
    description: str | None = None,
) -> Reference:
    """An in-memory reference of an image folder or npz of images (``eval A B`` with B a folder), or of a uint8
    array (``eval --resize``: ``description`` then names where it came from)."""
    from harness.metrics.features import extract_features

    name = description or str(source)
    feats = extract_features(source, extractor, batch_size, cache=cache, name="reference images", progress=progress)
    (mu, sigma), (mu_s, sigma_s) = feats.statistics("pool"), feats.statistics("spatial")
    meta = _metadata(extractor, feats, feats.n, "all", f"{name} (statistics computed in memory)")
    return Reference(Path(name), feats.input_sha256 or "", mu, sigma, mu_s, sigma_s, feats.n, feats.image_size, meta)


def check_reference_out(out_path: str | Path) -> Path:
    """``--out`` of a reference: an .npz file name in a writable folder (checked before any extraction)."""
    from harness.core.io import check_output_file

    out_path = Path(out_path)
    check_output_file(out_path)
    if out_path.suffix != ".npz":
        raise UserError(f"--out {out_path}: the reference file name must end in .npz")
    if sidecar_path(out_path).is_dir():
        raise UserError(f"--out {out_path}: its metadata path {sidecar_path(out_path)} is a folder")
    return out_path


def build_reference_from_images(
    images: np.ndarray | Iterable[np.ndarray] | str | Path,
    out_path: str | Path,
    inception: Any = "fid-helper",
    batch_size: int = 50,
    device: str = "auto",
    source_desc: str = "",
    cache: bool | str | Path = True,
    max_images: int = MAX_REF_IMAGES,
    progress: bool | None = None,
    wait: bool = False,
    dinov2: Any = None,
) -> Path:
    """Extract features of ``images`` and write ``out_path`` (ADM keys + embedded metadata) and its sidecar.

    ``images``: uint8 [N,H,W,3] array, an iterator of such batches, or an npz/shards/image-folder path.
    ``inception``: a weights spec string or an ``InceptionExtractor``. ``wait``: wait for another build of
    the same reference instead of failing with "in use by PID ...". ``dinov2``: a ``--dinov2`` spec
    (PATH or random:SEED) or a ``dinov2.DinoV2Features``: also store mu_dinov2/sigma_dinov2 and the
    extractor's identity in the metadata.
    """
    from harness.core.locks import acquire, remove_stale_temps
    from harness.metrics.features import extract_features, seed_cache
    from harness.metrics.inception import InceptionExtractor

    out_path = check_reference_out(out_path)
    lock = acquire(out_path.parent, wait=wait, what=f"reference {out_path.name}", name=f".{out_path.name}.lock")
    try:
        remove_stale_temps(lock, out_path.parent, prefixes=(f".{out_path.name}.",))  # left by killed builds
        extractor = inception if isinstance(inception, InceptionExtractor) else InceptionExtractor(inception, device)
        dino = _dinov2_features(dinov2, extractor.device)
        if dino is not None and not isinstance(images, (np.ndarray, str, Path)):
            images = np.concatenate([np.asarray(b) for b in images])  # two networks read it: an iterator reads once
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
        feats = extract_features(source, extractor, batch_size, cache=cache, name="reference images", progress=progress)
        if feats.n < 2:
            raise UserError(
                f"{source_desc or 'reference images'}: need at least 2 images for a covariance, got {feats.n}"
            )
        (mu, sigma), (mu_s, sigma_s) = feats.statistics("pool"), feats.statistics("spatial")
        if isinstance(source, np.ndarray):
            arr0 = source[_spaced_indices(feats.n, max_images)]
        elif isinstance(source, (str, Path)):
            from harness.metrics.features import iter_batches

            idx = set(_spaced_indices(feats.n, max_images).tolist())
            rows, i = [], 0
            for b in iter_batches(source, 1000):
                rows.extend(b[j] for j in range(len(b)) if i + j in idx)
                i += len(b)
            arr0 = np.stack(rows)
        else:
            arr0 = np.concatenate(kept)
        if feats.n <= max_images:
            arr0_rule = "all"
        elif not kept:
            arr0_rule = f"{max_images} evenly spaced"
        meta = _metadata(
            extractor,
            feats,
            arr0.shape[0],
            arr0_rule,
            source_desc or (str(images) if isinstance(images, (str, Path)) else "in-memory images"),
        )
        arrays = {"mu": mu, "sigma": sigma, "mu_s": mu_s, "sigma_s": sigma_s, "arr_0": arr0}
        if dino is not None:
            # the same entries as dinov2.reference_entries, from the streamed float64 moments
            dfeats = extract_features(
                source,
                dino,
                batch_size,
                cache=cache,
                name="reference images (DINOv2)",
                keep_pool=False,
                progress=progress,
            )
            arrays["mu_dinov2"], arrays["sigma_dinov2"] = dfeats.statistics("pool")
            meta.update(dinov2=dino.describe(), dinov2_n=int(dfeats.n))
        _write_reference(out_path, arrays, meta)
    finally:
        lock.release()
    if arr0.shape[0] == feats.n:
        # arr_0 holds exactly these images in this order: evaluate's P/R then needs no second extraction
        seed_cache(out_path, extractor.weights.sha256, feats, cache)
    return out_path


def _dinov2_features(dinov2: Any, device: Any):
    """A ``--dinov2`` spec through the metric table's extractor entry (dinov2.py imports this module)."""
    if dinov2 is None or not isinstance(dinov2, (str, Path)):
        return dinov2  # None, or an already-built dinov2.DinoV2Features
    from harness.metrics import table

    return table.build_extractor("dinov2", device, weights=dinov2)


def _write_reference(out_path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """npz (metadata embedded) and sidecar appear together or not at all: the sidecar, naming the npz's
    sha256, is renamed first; a kill in between leaves a sidecar that names another file, which
    ``load_reference`` refuses, never an npz whose metadata is missing."""
    from harness.core.io import atomic_path, atomic_target

    meta = {**meta, DIGEST_KEY: stats_digest(arrays, meta)}
    payload = json.dumps(meta, sort_keys=True).encode("utf-8")
    with atomic_target(out_path, ".npz") as tmp_npz:
        with open(tmp_npz, "wb") as f:
            npz_io.npz_bytes_to(f, {**arrays, META_KEY: np.frombuffer(payload, np.uint8)})
        side_meta = {**meta, "npz_sha256": sha256_file(tmp_npz)}
        with atomic_path(sidecar_path(out_path), "w") as f:
            f.write(json.dumps(side_meta, indent=1, sort_keys=True) + "\n")
        # the npz is renamed over out_path when this block ends


def verify_reference(path: str | Path) -> dict[str, Any]:
    """Check a reference file (keys, shapes, finiteness, symmetric PSD covariances, sidecar); return a summary."""
    ref = load_reference(path)
    report: dict[str, Any] = {
        "path": str(ref.path),
        "sha256": ref.sha256,
        "kind": ref.kind,
        "dim": int(ref.mu.shape[0]),
        "has_sfid": ref.mu_s is not None,
        "has_dinov2": ref.mu_dinov2 is not None,
        "n_images_arr0": ref.n_images,
        "image_size": list(ref.image_size) if ref.image_size else None,
        "metadata": ref.metadata is not None,
        "integrity": ref.integrity,
    }
    for name, s in (("sigma", ref.sigma), ("sigma_s", ref.sigma_s), ("sigma_dinov2", ref.sigma_dinov2)):
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
        report.update(
            n=meta.get("n"), weights=meta.get("weights"), resize=meta.get("resize"), source=meta.get("source")
        )
        if meta.get("arr_0", {}).get("n") != ref.n_images:
            raise InputFileError(
                ref.path, f"arr_0 holds {ref.n_images} images, metadata says {meta.get('arr_0', {}).get('n')}"
            )
    return report
