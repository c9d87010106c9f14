"""What a run is: frozen spec dataclasses (HELM ``RunSpec`` style) and the hashes that name it.

``spec_hash(run_spec)`` names the whole run. ``sampling_identity`` is the part that decides the
pixels: model, resolved sampling parameters, quantisation, image size, classes, chunking and seeds,
but not the sample count (for the ``chunk`` scheme) and not the protocol name, so a 5k run is
exactly the first 5k samples of the 50k run. The numerics that change pixels (device type: CPU and
CUDA generators draw different streams; dtype; TF32 on CUDA) are part of the identity, so shards made
one way are never mixed with shards made another; the device index and the number of processes are not.
Every file the generator loads (checkpoints, tokenizer/VAE weights, latent statistics: the files its
``info()`` names, the committed default weights included) enters by its sha256, and
``NUMERICS_VERSION`` stands for the sampling code itself (docs/DESIGN.md, sampling identity: bump it with
any change that moves pixels), so new weights or new arithmetic never reuse old shards.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from harness.core import config

# The sampling code's numerics: bump it in the commit that changes what any generator's code computes for an
# unchanged spec and unchanged weight files (a sampler, a kernel, a decode path, a dtype cast...), so folders
# sampled by the old code are not resumed by the new one. Not for changes that move no pixel.
NUMERICS_VERSION = 1
# Left out of the hash the chunk seeds derive from (seed_hash): a new weight file or a pixel-moving code change
# keeps the noise every chunk draws, so before/after comparisons stay paired (and the seeds of existing runs
# stay what they were), while the identity hash still keeps the old shards out of the folder.
SEED_EXCLUDED = ("numerics_version", "files")
# info() values that name a file the generator loaded: keys naming a checkpoint, or these file suffixes
_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".npz", ".npy", ".json", ".yaml")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    checkpoint: str | None = None
    tokenizer_checkpoint: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # extra factory kwargs
    sampling: dict[str, Any] = dataclasses.field(default_factory=dict)  # overrides of default_sampling
    quantization: str | None = None  # None = the plugin's official rule


@dataclasses.dataclass(frozen=True)
class ProtocolSpec:
    name: str
    num_samples: int
    num_classes: int
    image_size: int
    chunk_size: int = 125
    seed: int = 0
    seed_scheme: Literal["chunk", "legacy_rank"] = "chunk"
    legacy_world_size: int = 8
    legacy_batch_size: int = 125
    reference: str | None = None
    metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in (
            "num_samples",
            "num_classes",
            "image_size",
            "chunk_size",
            "legacy_world_size",
            "legacy_batch_size",
        ):
            if getattr(self, field) < 1:
                raise config.ConfigError(f"protocol.{field} must be >= 1, got {getattr(self, field)}")
        if self.seed < 0:
            raise config.ConfigError(f"protocol.seed must be >= 0, got {self.seed}")
        if self.seed_scheme == "legacy_rank":
            per_step = self.legacy_world_size * self.legacy_batch_size
            if self.num_samples % per_step:
                raise config.ConfigError(
                    f"legacy_rank needs num_samples divisible by world_size*batch = {per_step}, got {self.num_samples}"
                )
            if self.num_samples % self.num_classes:
                raise config.ConfigError(
                    f"legacy_rank needs num_samples divisible by num_classes = {self.num_classes}, got {self.num_samples}"
                )


@dataclasses.dataclass(frozen=True)
class RunSpec:
    model: ModelSpec
    protocol: ProtocolSpec


def run_spec_hash(spec: RunSpec) -> str:
    return config.spec_hash(spec)


def resolve_sampling(model: ModelSpec, generator: Any) -> Any:
    """The generator's ``default_sampling`` with ``model.sampling`` applied; unknown keys name their path."""
    cls = generator.sampling_cls
    if model.sampling and not dataclasses.fields(cls):
        key = next(iter(model.sampling))
        raise config.ConfigError(f"model.sampling.{key}: generator {model.name!r} has no sampling parameters")
    base = config.to_dict(generator.default_sampling)
    merged = {**base, **model.sampling}
    return config.from_dict(cls, merged, "model.sampling")


def resolve_quantization(model: ModelSpec, generator: Any) -> str:
    from harness.core.interfaces import QUANTIZATION_RULES

    rule = model.quantization or getattr(generator, "quantization", None) or "truncate"
    if rule not in QUANTIZATION_RULES:
        raise config.ConfigError(f"model.quantization: {rule!r} is not one of {', '.join(QUANTIZATION_RULES)}")
    return rule


def numerics(device_type: str = "cpu", dtype: str = "fp32", tf32: bool = False) -> dict[str, Any]:
    """The runtime choices that change pixels. TF32 has no effect off CUDA, so it is recorded as off there."""
    from harness.core.devices import DTYPES

    if dtype not in DTYPES:
        raise config.ConfigError(f"dtype {dtype!r} unknown (known: {', '.join(DTYPES)})")
    canonical = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)
    return {"device_type": device_type, "dtype": canonical, "tf32": bool(tf32 and device_type == "cuda")}


def loaded_files(info: dict[str, Any] | None, prefix: str = "") -> dict[str, str]:
    """``{dotted info key: sha256}`` of every file a generator's ``info()`` names (nested dicts included, e.g. the
    tokenizer's ``checkpoint``); keyed by role, not path, so the same weights in another folder match."""
    from pathlib import Path

    from harness.core.io import sha256_file

    out: dict[str, str] = {}
    for key, value in (info or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(loaded_files(value, f"{name}."))
        elif (
            isinstance(value, str)
            and value
            and not key.endswith("_sha256")
            and ("checkpoint" in key or value.endswith(_FILE_SUFFIXES))
            and Path(value).is_file()
        ):
            out[name] = sha256_file(value)
    return dict(sorted(out.items()))


def sampling_identity(
    spec: RunSpec,
    sampling: Any,
    quantization: str,
    model_info: dict[str, Any] | None = None,
    runtime: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The canonical dict that decides the pixels (see module docstring)."""
    p, m = spec.protocol, spec.model
    info = model_info or {}
    ident: dict[str, Any] = {
        "model": {
            "name": m.name,
            "checkpoint": m.checkpoint,
            "tokenizer_checkpoint": m.tokenizer_checkpoint,
            "options": m.options,
            # a checkpoint replaced at the same path must not reuse old shards
            "checkpoint_sha256": info.get("checkpoint_sha256"),
            "tokenizer_checkpoint_sha256": info.get("tokenizer_checkpoint_sha256"),
        },
        "sampling": {"family": getattr(type(sampling), "family", None), **config.to_dict(sampling)},
        "quantization": quantization,
        "image_size": p.image_size,
        "num_classes": p.num_classes,
        "seed_scheme": p.seed_scheme,
        "seed": p.seed,
        "numerics": runtime or numerics(),
        "numerics_version": NUMERICS_VERSION,
        "files": loaded_files(info),
    }
    if p.seed_scheme == "chunk":
        ident["chunk_size"] = p.chunk_size
    else:  # the legacy label slices and per-rank streams depend on N, W and n
        ident.update(
            num_samples=p.num_samples, legacy_world_size=p.legacy_world_size, legacy_batch_size=p.legacy_batch_size
        )
    return ident


def seed_hash(identity: dict[str, Any]) -> str:
    """The hash chunk seeds derive from: the identity without ``SEED_EXCLUDED``."""
    return config.spec_hash({k: v for k, v in identity.items() if k not in SEED_EXCLUDED})


def sampling_identity_hash(
    spec: RunSpec,
    sampling: Any,
    quantization: str,
    model_info: dict[str, Any] | None = None,
    runtime: dict[str, Any] | None = None,
) -> str:
    return config.spec_hash(sampling_identity(spec, sampling, quantization, model_info, runtime))


def build_run_spec(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), source: str = "spec") -> RunSpec:
    """``{"model": NAME | {...}, "protocol": NAME | {...}}`` + ``--set`` overrides -> RunSpec.

    A protocol given by name (or a mapping whose ``name`` is a known protocol) starts from that
    named protocol; keys given replace its fields. Unknown keys are errors with their dotted path.
    """
    from harness.core.registry import load_plugins, protocols  # by name, so specs never imports protocols.py

    if not isinstance(raw, dict):
        raise config.ConfigError(f"{source}: top level must be a mapping with model and protocol")
    data = dict(raw)
    if isinstance(data.get("model"), str):
        data["model"] = {"name": data["model"]}
    proto = data.get("protocol")
    load_plugins()
    if isinstance(proto, str):
        data["protocol"] = config.to_dict(protocols.get(proto))
    elif isinstance(proto, dict) and proto.get("name") in protocols:
        data["protocol"] = {**config.to_dict(protocols.get(proto["name"])), **proto}
    data = config.apply_overrides(data, list(overrides))
    try:
        spec = config.from_dict(RunSpec, data)
    except config.ConfigError as e:
        name = data["protocol"].get("name") if isinstance(data.get("protocol"), dict) else None
        if isinstance(name, str) and name not in protocols and "required key missing" in str(e):
            # most likely a mistyped protocol name, not a custom protocol with keys left out
            raise config.ConfigError(
                f"{source}: protocol.name: {protocols.unknown_message(name)}; a protocol of your own "
                f"gives every key ({e})"
            ) from None
        raise config.ConfigError(f"{source}: {e}") from None
    from harness.fetch.needs import with_official_files  # unset checkpoints: fetched files in the weights root

    return dataclasses.replace(spec, model=with_official_files(spec.model))


def load_run_spec(path: str, overrides: list[str] | tuple[str, ...] = ()) -> RunSpec:
    return build_run_spec(config.load_yaml(path), overrides, source=str(path))
