"""The one metric table: every metric the harness computes is one ``Metric`` entry here.

An entry says which feature extractor and layer it reads, whether it needs the reference's own
images (``arr_0``) or only its stored statistics, whether it needs classifier logits, and the
function that turns features into numbers. ``harness.metrics.evaluate`` dispatches through the
``metrics`` registry that this table fills; ``alitok-bench list metrics``, suites and validation read
the same entries. Adding a metric = one entry (plus, for a new network, one ``EXTRACTORS`` line).

Importing this module is cheap (no torch, no numpy): the compute functions import their math lazily.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from harness.core.errors import UserError
from harness.core.registry import import_target, load_plugins
from harness.core.registry import metrics as registry


class MetricError(UserError, ValueError):
    """An unknown metric name, an empty list, or a metric the inputs cannot give."""


# Feature extractors by name: (lazy "module:factory" target, description). ``factory(device=...)`` returns
# an object like ``harness.metrics.inception.InceptionExtractor``: ``__call__(uint8 NHWC batch) -> {layer:
# float array}``, ``.weights`` (``sha256`` keys the feature cache, ``has_logits``) and ``.device``.
# "inception" has no target: it is built from the caller's ``inception=`` weights choice.
EXTRACTORS: dict[str, tuple[str | None, str]] = {
    "inception": (
        None,
        "torch-fidelity InceptionV3 (TF1-exact resize); layers pool (2048), "
        "spatial (Mixed_6d sFID, 2023), logits (1008)",
    ),
    "dinov2": (
        "harness.metrics.dinov2:feature_extractor",
        "DINOv2 ViT-L/14 via timm, dgm-eval preprocessing; layer pool = CLS token (1024); weights from --dinov2",
    ),
}


def build_extractor(name: str, device: Any, **options: Any):
    """The extractor ``name`` of EXTRACTORS (not "inception", which the caller builds); ``options`` (e.g.
    ``weights=`` for "dinov2") go to its factory."""
    if name not in EXTRACTORS or EXTRACTORS[name][0] is None:
        raise MetricError(f"unknown feature extractor {name!r} (known: {', '.join(EXTRACTORS)})")
    return import_target(EXTRACTORS[name][0])(device=device, **options)


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    description: str
    compute: Callable[[MetricInputs], dict[str, Any]]  # -> {name: value, extra provenance keys...}
    features: str = "inception"  # key of EXTRACTORS
    layer: str = "pool"  # the extractor's output the metric reads
    reference_stats: tuple[str, ...] = ()  # keys the reference npz must store (statistics path)
    needs_reference_images: bool = False  # reads features of the reference's own images (arr_0)
    needs_logits: bool = False  # needs a real classifier head (IS)
    default: bool = False  # in the default list of `eval` (the ADM evaluator's five)
    from_statistics: bool = False  # reads only the samples' streamed float64 mean/covariance
    min_reference_images: int = 4


@dataclasses.dataclass
class MetricInputs:
    """What a compute function may read. ``samples(features, layer)`` / ``reference(features, layer)`` give
    feature arrays (extracted once, cached); ``stats`` the reference's stored arrays; ``options`` the
    caller's knobs (fid_method, is_mode, kid_subset_size, kid_subsets, device, wanted); ``memo`` shares work
    between entries that come from one computation (precision and recall); ``sample_statistics(features,
    layer)`` gives the samples' (mu, sigma), accumulated in float64 while streaming (no whole array)."""

    samples: Callable[[str, str], Any]
    reference: Callable[[str, str], Any]
    stats: dict[str, Any]
    options: dict[str, Any]
    memo: dict[str, Any] = dataclasses.field(default_factory=dict)
    sample_statistics: Callable[[str, str], Any] | None = None


# -- compute functions: features -> numbers (the math lives in fid.py, isc.py, kid.py, prc.py) -----------


def _frechet(layer: str, mu_key: str, sigma_key: str, name: str):
    def compute(x: MetricInputs) -> dict[str, Any]:
        from harness.metrics.fid import feature_statistics, frechet_distance

        if x.sample_statistics is not None:
            mu, sigma = x.sample_statistics("inception", layer)
        else:
            mu, sigma = feature_statistics(x.samples("inception", layer), f"sample {layer} features")
        method = x.options.get("fid_method", "eig")
        return {name: frechet_distance(mu, sigma, x.stats[mu_key], x.stats[sigma_key], method=method)}

    return compute


def _inception_score(x: MetricInputs) -> dict[str, Any]:
    from harness.metrics.isc import inception_score

    r = inception_score(x.samples("inception", "logits"), mode=x.options.get("is_mode", "adm"))
    return {"is": r["is"], "is_mode": r["is_mode"], "is_splits": r["is_splits"], "is_std": r["is_std"]}


def _precision_recall(key: str, name: str):
    def compute(x: MetricInputs) -> dict[str, Any]:
        from harness.metrics.prc import precision_recall

        if "prc" not in x.memo:  # one neighbour search for both; recall's (the costly one) only if asked
            wanted = x.options.get("wanted", ("prec", "recall"))
            which = tuple(k for m, k in (("prec", "precision"), ("recall", "recall")) if m in wanted) or (key,)
            x.memo["prc"] = precision_recall(
                x.samples("inception", "pool"),
                x.reference("inception", "pool"),
                k=3,
                device=x.options.get("device", "cpu"),
                which=which,
            )
        return {name: x.memo["prc"][key], "pr_k": 3}

    return compute


def _kid(x: MetricInputs) -> dict[str, Any]:
    from harness.metrics.kid import SUBSET_SIZE, SUBSETS, kernel_inception_distance

    o = x.options  # None means "the default"; 0 is a value, refused by kernel_inception_distance

    def given(key, default):
        return default if o.get(key) is None else o[key]

    k = kernel_inception_distance(
        x.samples("inception", "pool"),
        x.reference("inception", "pool"),
        subsets=given("kid_subsets", SUBSETS),
        subset_size=given("kid_subset_size", SUBSET_SIZE),
    )
    return {
        "kid": k["kid"],
        "kid_std": k["kid_std"],
        "kid_subset_size": k["kid_subset_size"],
        "kid_subsets": k["kid_subsets"],
    }


def _density_coverage(key: str):
    def compute(x: MetricInputs) -> dict[str, Any]:
        from harness.metrics.density_coverage import density_coverage

        if "dc" not in x.memo:
            x.memo["dc"] = density_coverage(
                x.samples("inception", "pool"), x.reference("inception", "pool"), device=x.options.get("device", "cpu")
            )
        return {key: x.memo["dc"][key], "dc_k": x.memo["dc"]["dc_k"]}

    return compute


def _fd_dinov2(x: MetricInputs) -> dict[str, Any]:
    from harness.metrics.fid import frechet_distance

    mu, sigma = x.sample_statistics("dinov2", "pool")
    return {
        "fd_dinov2": frechet_distance(
            mu, sigma, x.stats["mu_dinov2"], x.stats["sigma_dinov2"], method=x.options.get("fid_method", "eig")
        )
    }


def _fid_infinity(x: MetricInputs) -> dict[str, Any]:
    from harness.metrics.fid_infinity import fid_infinity

    r = fid_infinity(
        x.samples("inception", "pool"), x.stats["mu"], x.stats["sigma"], method=x.options.get("fid_method", "eig")
    )
    return {"fid_inf": r["fid_inf"], "fid_inf_fit": r["fid_inf_fit"]}


TABLE: tuple[Metric, ...] = (
    Metric(
        "fid",
        "FID: Fréchet distance of pool3 statistics vs the reference's mu/sigma (ADM)",
        _frechet("pool", "mu", "sigma", "fid"),
        layer="pool",
        reference_stats=("mu", "sigma"),
        default=True,
        from_statistics=True,
    ),
    Metric(
        "is",
        "Inception Score: ADM in-order chunks of 5000 (or torch-fidelity mode); needs real classifier weights",
        _inception_score,
        layer="logits",
        needs_logits=True,
        default=True,
    ),
    Metric(
        "sfid",
        "sFID: Fréchet distance on Mixed_6d.branch1x1[:7] (2023-d) vs the reference's mu_s/sigma_s",
        _frechet("spatial", "mu_s", "sigma_s", "sfid"),
        layer="spatial",
        reference_stats=("mu_s", "sigma_s"),
        default=True,
        from_statistics=True,
    ),
    Metric(
        "prec",
        "improved precision, k=3: samples inside the reference images' manifold",
        _precision_recall("precision", "prec"),
        needs_reference_images=True,
        default=True,
    ),
    Metric(
        "recall",
        "improved recall, k=3: reference images inside the samples' manifold",
        _precision_recall("recall", "recall"),
        needs_reference_images=True,
        default=True,
    ),
    Metric(
        "kid",
        "KID: unbiased MMD^2, cubic kernel, seeded subsets (torch-fidelity; subset size recorded)",
        _kid,
        needs_reference_images=True,
    ),
    Metric(
        "density",
        "density (Naeem et al. 2020, k=5): mean count of reference k-NN balls holding each sample, / k",
        _density_coverage("density"),
        needs_reference_images=True,
    ),
    Metric(
        "coverage",
        "coverage (Naeem et al. 2020, k=5): share of reference k-NN balls that hold a sample",
        _density_coverage("coverage"),
        needs_reference_images=True,
    ),
    Metric(
        "fid_inf",
        "FID-infinity (Chong & Forsyth): FID over 15 subset sizes, linear in 1/N, at 1/N=0; fit stored",
        _fid_infinity,
        reference_stats=("mu", "sigma"),
    ),
    Metric(
        "fd_dinov2",
        "FD-DINOv2 (EDM2, dgm-eval): Fréchet distance of DINOv2 ViT-L/14 CLS features vs the "
        "reference's mu_dinov2/sigma_dinov2 (weights from --dinov2)",
        _fd_dinov2,
        features="dinov2",
        layer="pool",
        reference_stats=("mu_dinov2", "sigma_dinov2"),
        from_statistics=True,
    ),
)

for _m in TABLE:
    registry.register(_m.name, _m, help=_m.description)


def default_names() -> tuple[str, ...]:
    return tuple(m.name for m in TABLE if m.default)


def get(name: str) -> Metric:
    load_plugins()
    if name not in registry:
        raise MetricError(registry.unknown_message(name))
    metric = registry.get(name)
    if not isinstance(metric, Metric):
        raise MetricError(
            f"metric {name!r} is registered as {type(metric).__name__}, not a harness.metrics.table.Metric"
        )
    return metric


def parse(metrics: str | Sequence[str] | None) -> tuple[Metric, ...]:
    """``"fid,kid"`` or ``["fid", "kid"]`` -> entries (unknown names: one line with close matches)."""
    if metrics is None:
        return tuple(get(n) for n in default_names())
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    if not names:
        raise MetricError("no metrics requested")
    return tuple(get(n) for n in dict.fromkeys(names))


def unavailable(metric: Metric, *, stats: Sequence[str], reference_images: int, has_logits: bool) -> str | None:
    """Why ``metric`` cannot be computed from this reference and these weights, or None."""
    missing = [k for k in metric.reference_stats if k not in stats]
    if missing:
        return f"{metric.name}: the reference stores no {'/'.join(missing)}"
    if metric.needs_reference_images and reference_images < metric.min_reference_images:
        return f"{metric.name}: needs the reference's own images (arr_0), the reference holds {reference_images}"
    if metric.needs_logits and not has_logits:
        return f"{metric.name}: the Inception weights have no real 1008-way classifier"
    return None
