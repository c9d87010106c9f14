"""Shared by the per-family fixture scripts: import an upstream checkout, give its modules seeded
random weights, and write inputs/outputs as safetensors with a manifest saying what produced them.

Each family script runs in its own process (`python -m scripts.upstream_fixtures.make_<family>`),
because upstream repositories reuse top-level module names (`models`, `transport`, `modeling`).
Nothing here is imported by the project or its tests: tests read only the written files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "upstream"
# Torch threads the fixtures are written at (the committed ones were made at 2, on 2 cores): a conv or GEMM
# splits its reductions by thread, so the tests compare at the same count (tests/upstream_fixture_io.py
# FIXTURE_THREADS). Written in every manifest entry.
THREADS = 2
torch.set_num_threads(THREADS)


def parse_args(family: str, default_checkout: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"write the {family} fixtures from its official code")
    p.add_argument(
        "--upstream",
        type=Path,
        required=True,
        help=f"folder of upstream checkouts (this script reads UPSTREAM/{default_checkout})",
    )
    p.add_argument("--out", type=Path, default=FIXTURES / family)
    args = p.parse_args()
    args.checkout = (args.upstream / default_checkout).resolve()
    if not args.checkout.is_dir():
        sys.exit(f"error: {args.checkout}: no upstream checkout there")
    return args


def open_checkout(family: str, checkout: str, upstream: str, *, shim: bool = False) -> tuple[argparse.Namespace, dict]:
    """The start of every ``make_<family>.py``: its arguments, the torchvision shim when the checkout imports
    timm / torchvision (``shim``), the checkout first on sys.path; returns the arguments and the manifest's
    provenance (``upstream``, ``commit``, ``script``) for ``write_fixture``."""
    args = parse_args(family, checkout)
    if shim:
        install_torchvision_shim()
    commit = import_upstream(args.checkout)
    return args, dict(upstream=upstream, commit=commit, script=f"scripts/upstream_fixtures/make_{family}.py")


def import_upstream(checkout: Path) -> str:
    """Put the checkout first on sys.path; returns its commit (refuses a dirty tree's tracked changes)."""
    sys.path.insert(0, str(checkout))
    return git_commit(checkout)


def git_commit(checkout: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@torch.no_grad()
def seed_weights_(module: torch.nn.Module, seed: int, std: float = 0.02) -> torch.nn.Module:
    """Every floating parameter and buffer drawn from N(0, std) in state_dict order from one seed
    (norm scales around 1, so activations stay in range); integer buffers are left as built."""
    g = torch.Generator().manual_seed(seed)
    for name, t in module.state_dict(keep_vars=True).items():
        if not t.is_floating_point():
            continue
        leaf = name.rsplit(".", 1)[-1]
        noise = torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)
        is_norm_scale = t.dim() == 1 and leaf == "weight" and any(k in name.lower() for k in ("norm", "ln", "bn"))
        t.copy_(1.0 + std * noise if is_norm_scale else std * noise)
    return module


def write_fixture(
    out_dir: Path,
    name: str,
    tensors: dict[str, torch.Tensor],
    *,
    upstream: str,
    commit: str,
    script: str,
    notes: dict | None = None,
) -> Path:
    """`<out_dir>/<name>.safetensors` plus an entry in `<out_dir>/manifest.json` (one per fixture)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    path.chmod(0o644)
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[name] = {
        "upstream": upstream,
        "commit": commit,
        "script": script,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "tensors": sorted(tensors),
        **({"notes": notes} if notes else {}),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def install_torchvision_shim() -> None:
    """Upstream modules import timm/torchvision; on the CPU torch wheel that import needs the project's shim."""
    sys.path.insert(0, str(REPO_ROOT))
    from harness.core import _tv_shim

    _tv_shim.install()


@contextlib.contextmanager
def sized(cls: type, **sizes: int):
    """Build an official class whose sizes are hard-coded in ``__init__`` (``self.width = 768``) at
    smaller sizes: while active, assigning one of the named int attributes stores the given value
    instead. The class's own code builds the modules and runs forward unchanged."""
    had_own = "__setattr__" in cls.__dict__
    parent = next(c.__dict__["__setattr__"] for c in cls.__mro__ if "__setattr__" in c.__dict__)

    def setattr_(self, name, value):
        if name in sizes and isinstance(value, int) and not isinstance(value, bool):
            value = sizes[name]
        parent(self, name, value)

    cls.__setattr__ = setattr_
    try:
        yield
    finally:
        if had_own:
            cls.__setattr__ = parent
        else:
            del cls.__setattr__


def write_key_list(out_dir: Path, name: str, build_on_meta) -> dict:
    """Key names, shapes and parameter count of a full-size released configuration, built on the
    meta device (no memory): ``<out_dir>/<name>.keys.json``."""
    with torch.device("meta"):
        module = build_on_meta()
    sd = module.state_dict()
    entry = {
        "keys": {k: list(v.shape) for k, v in sd.items()},
        "num_params": sum(p.numel() for p in module.parameters()),
        "num_state_dict_elements": sum(v.numel() for v in sd.values()),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.keys.json").write_text(json.dumps(entry, indent=0, sort_keys=True) + "\n")
    return entry


def save_released(path: Path, obj) -> Path:
    """A ``torch.save`` file as the official release ships it (``.pt`` / ``.pth`` / ``.bin``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, str(path))
    return path


def write_full_size(out_dir: Path, model: str, build, meta: dict) -> None:
    """``full_size.json``: a released diffusion model's keys, shapes and parameter count (built on the meta
    device) with the provenance."""
    with torch.device("meta"):
        module = build()
    full = {
        "model": model,
        "num_params": sum(p.numel() for p in module.parameters()),
        "state_dict": {k: list(v.shape) for k, v in module.state_dict().items()},
        "upstream": meta,
    }
    (out_dir / "full_size.json").write_text(json.dumps(full, indent=0, sort_keys=True) + "\n")


def write_class_network(out_dir: Path, model, weights: str, config: dict, t: torch.Tensor, labels, cfg_scale, meta):
    """DiT's and SiT's network fixture: ``model`` saved as the release is (a raw state dict, ``weights``), then
    its forward and ``forward_with_cfg`` (the batch doubled, the null class ``num_classes``) on noise from seed 1
    at times ``t``. Returns the labels and the doubled labels the samplers use."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / weights)
    g = torch.Generator().manual_seed(1)
    b, c, s = len(labels), config["in_channels"], config["input_size"]
    x = torch.randn(b, c, s, s, generator=g)
    y = torch.tensor(labels)
    y2 = torch.cat([y, torch.full_like(y, config["num_classes"])])
    out = model(x, t, y)
    cfg_out = model.forward_with_cfg(torch.cat([x, x]), torch.cat([t, t]), y2, cfg_scale)
    write_fixture(
        out_dir,
        "network",
        dict(x=x, t=t, y=y, out=out, cfg_out=cfg_out),
        **meta,
        notes={"config": config, "cfg_scale": cfg_scale, "weights": f"{weights} (raw state dict)"},
    )
    return y, y2


def ar_logits(model, codebook: int, length: int, seed: int, stride: int, **full_kwargs) -> dict[str, torch.Tensor]:
    """Class 207's conditional and null logits over ``length - 1`` random codes (seed ``seed``) through
    ``forward_fn`` (AliTok's ``ARModel`` and 1d-tokenizer's ``RAR`` share the interface): the full forward,
    and generate's cached path (the whole prefix at step 0, then one token a step); positions every
    ``stride`` and the last, to keep the file small."""
    labels = torch.tensor([207])
    cond = model.preprocess_condition(labels.clone(), cond_drop_prob=0.0)
    null = model.get_none_condition(cond)
    ids = torch.randint(0, codebook, (1, length - 1), generator=torch.Generator().manual_seed(seed))
    positions = torch.tensor(sorted({*range(0, length, stride), length - 1}))
    tensors = {"labels": labels, "codes_in": ids, "positions": positions}
    for name, c in (("cond", cond), ("null", null)):
        tensors[f"logits_full_{name}"] = model.forward_fn(ids, c, **full_kwargs)[:, positions]
        model.enable_kv_cache()
        tensors[f"logits_cached_{name}"] = torch.stack(
            [model.forward_fn(ids[:, :n], c, is_sampling=True)[:, -1] for n in range(length)], 1
        )[:, positions]
        model.disable_kv_cache()
    return tensors


def write_sample_preset(
    out_dir: Path, name: str, model, codebook: int, preset: tuple, seed: int, meta: dict, *, key: str
):
    """One guidance preset ``(scale, power, temperature)`` of ``model.generate`` (AliTok's and RAR's
    power-cosine schedule): the per-step scale as generate computes it (a stub forward whose cond rows are
    one-hot and uncond rows zero makes the combined logit of code 0 the step's scale / temperature, which
    ``F.softmax`` sees), then the tokens of two batches drawn as the sample scripts draw them
    (``torch.manual_seed(seed)`` once, then batch after batch on the global stream). ``key`` names the
    schedule tensor."""
    import torch.nn.functional as F

    g, power, temp = preset
    seen, real_softmax = [], F.softmax

    def stub_forward(input_ids, condition, **kw):
        z = torch.zeros(condition.shape[0], input_ids.shape[1] + 1, codebook)
        z[: condition.shape[0] // 2, :, 0] = 1.0
        return z

    def spy_softmax(logits, dim=None, **kw):
        seen.append(logits[0, 0].clone())
        return real_softmax(logits, dim=dim, **kw)

    model.forward_fn, F.softmax = stub_forward, spy_softmax
    try:
        model.generate(torch.tensor([1]), guidance_scale=g, randomize_temperature=temp, guidance_scale_pow=power)
    finally:
        F.softmax = real_softmax
        del model.forward_fn  # back to the class's method

    torch.manual_seed(seed)
    batches = [torch.tensor([207, 1, 999]), torch.tensor([3, 500])]
    tokens = [
        model.generate(y, guidance_scale=g, randomize_temperature=temp, guidance_scale_pow=power) for y in batches
    ]
    write_fixture(
        out_dir,
        name,
        {
            key: torch.stack(seen),
            "labels_0": batches[0],
            "labels_1": batches[1],
            "tokens_0": tokens[0],
            "tokens_1": tokens[1],
        },
        **meta,
        notes={
            "guidance_scale": g,
            "guidance_scale_pow": power,
            "randomize_temperature": temp,
            "seed": seed,
            "rng": "torch.manual_seed(seed), global CPU stream, two batches",
        },
    )


def unit_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC images as the official tokenizers take them: ``ToTensor``, float NCHW in [0, 1]."""
    return images.permute(0, 3, 1, 2).float() / 255.0


def uint8_images(decoded: torch.Tensor) -> torch.Tensor:
    """A decoder's float NCHW output as ``demo_util.sample_fn`` writes it: clamp to [0, 1], * 255, NHWC,
    ``.to(uint8)`` (which truncates)."""
    return (torch.clamp(decoded, 0.0, 1.0) * 255.0).permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8)
