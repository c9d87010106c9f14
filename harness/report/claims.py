"""Paper claims as data, checked against run records: reproduced / not reproduced / not run.

A claims file (``results/claims/*.yaml``) lists every number a paper states, each with its source,
protocol, metric, tolerance and the record query that measures it. ``check`` evaluates each claim
from records alone; nothing is filled in by hand. A claim whose query matches no record is
"not run" and names what is missing (its ``requires`` list); a measured value outside tolerance is
"not reproduced".

Measures:
- ``query``: the mean of ``metric`` over the matching records (several seeds average; their spread,
  as the sd of the mean, is the uncertainty; one record brings its own sd if it has one).
- ``ratio: [A, B]``: mean(A) / mean(B) (speed ratios), only from records of one ``bench`` run on one
  machine (same ``spec.bench_run_id`` and ``machine.cpu_model`` / ``machine.gpu_name``): a ratio of
  an A800 record and a CPU record, or of two runs under different load, is not a measurement.
- ``difference: [A, B]``: A - B paired by seed, as ``harness.report.paired`` defines (mean paired
  difference ± paired standard error). ``expect: sign`` checks only the direction of a difference.
Records of upstream's own code (``model.implementation == "upstream"``, from ``bench --upstream``)
answer no claim: the claims are about what the harness measures with its own samplers.
Tolerance: |measured - paper| <= abs + rel * |paper| + sigma * uncertainty.

Strictness: a query with ``paper_comparable: true`` matches only records whose ``paper_comparable``
is the JSON value true (not the string "false"), without fatal protocol findings, and, for the
distribution metrics, with the protocol's N, the official Inception weights and the paper's
reference. Claims with ``scale: tiny`` are directions at a CPU scale (the ablation's ``tiny`` and
``small`` presets, named by each query's protocol): they get their own section and a ``direction``
answer, never a paper verdict.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

from harness.core import config
from harness.core.stats import mean_sd
from harness.report import fields, paired
from harness.report.power import t_interval

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run"
# answers of a tiny-scale direction (never a paper verdict)
SAME_DIRECTION, OPPOSITE_DIRECTION, WITHIN_NOISE = "same direction", "opposite direction", "within noise"
# metrics measured on a sample distribution against a reference: N, weights and reference decide them
DISTRIBUTION_METRICS = ("fid", "sfid", "is", "prec", "recall", "kid", "rfid")
ADM_REFERENCE_KIND = "adm-virtual-imagenet256"


@dataclasses.dataclass(frozen=True)
class Query:
    """Which records measure a claim; every given key must match (unset keys match anything)."""

    model: str | None = None
    label: str | None = None
    variant: str | None = None
    kind: str | None = None
    protocol: str | None = None
    paper_comparable: bool | None = None
    batch_size: int | None = None
    dtype: str | None = None
    hardware: str | None = None  # substring of the recorded device name, e.g. "A800"
    checkpoint: str | None = None  # substring of the recorded checkpoint path
    sampling: dict[str, Any] = dataclasses.field(default_factory=dict)  # subset of the sampling params
    guided: bool | None = None  # True: CFG on (recorded cfg_scale != 1); False: off

    def describe(self) -> str:
        parts = [
            f"{f.name}={getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) not in (None, {})
        ]
        return ", ".join(parts) or "any record"


@dataclasses.dataclass(frozen=True)
class Measure:
    query: Query | None = None
    ratio: tuple[Query, Query] | None = None
    difference: tuple[Query, Query] | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.query, self.ratio, self.difference)) != 1:
            raise ValueError("measure needs exactly one of query, ratio, difference")


@dataclasses.dataclass(frozen=True)
class Tolerance:
    abs: float = 0.0
    rel: float = 0.0
    sigma: float = 0.0  # also allow this many measured standard deviations

    def allowed(self, paper: float, unc: float | None) -> float:
        return self.abs + self.rel * abs(paper) + (self.sigma * unc if unc is not None else 0.0)


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    source: str  # a key of ClaimsFile.sources
    protocol: str  # the conditions the paper states (free text)
    metric: str
    value: float
    measure: Measure
    tolerance: Tolerance = Tolerance()
    expect: Literal["value", "sign"] = "value"
    requires: tuple[Any, ...] = ()  # strings, or lists of them (YAML aliases of shared input lists)
    note: str = ""
    scale: Literal["paper", "tiny"] = "paper"  # tiny: a direction at tiny scale, its own section

    def queries(self) -> tuple[Query, ...]:
        m = self.measure
        return (m.query,) if m.query is not None else tuple(m.ratio or m.difference)

    def __post_init__(self) -> None:
        flat: list[str] = []
        for item in self.requires:
            flat += [str(x) for x in item] if isinstance(item, (list, tuple)) else [str(item)]
        object.__setattr__(self, "requires", tuple(dict.fromkeys(flat)))


@dataclasses.dataclass(frozen=True)
class ClaimsFile:
    paper: str
    sources: dict[str, str]
    claims: tuple[Claim, ...]
    description: str = ""
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)  # shared `requires` lists (YAML anchors)

    def __post_init__(self) -> None:
        ids = [c.id for c in self.claims]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate claim ids: {', '.join(dup)}")
        for c in self.claims:
            if c.source not in self.sources:
                raise ValueError(f"claim {c.id}: source {c.source!r} is not in sources")
            if c.metric not in fields.HIGHER_IS_BETTER:
                raise ValueError(f"claim {c.id}: unknown metric {c.metric!r}")
            if c.expect == "value" and not (c.tolerance.abs or c.tolerance.rel):
                raise ValueError(f"claim {c.id}: a value claim needs tolerance.abs or tolerance.rel")
            if c.expect == "sign" and c.tolerance != Tolerance():
                raise ValueError(f"claim {c.id}: a direction is read from the 95 % t interval; it takes no tolerance")
            if c.scale == "tiny" and (c.expect != "sign" or c.measure.difference is None):
                raise ValueError(f"claim {c.id}: a tiny-scale claim is a direction (expect: sign, measure: difference)")
            if c.scale == "tiny" and not all(q.protocol for q in c.queries()):
                raise ValueError(f"claim {c.id}: a tiny-scale claim names its preset's protocol in every query")
            # a paper number is answered only by records that are comparable with the paper
            if c.scale == "paper" and c.metric != "images_per_s" and not all(q.paper_comparable for q in c.queries()):
                raise ValueError(
                    f"claim {c.id}: a paper claim on {c.metric} needs paper_comparable: true in its queries"
                )


def load_claims(path: str | Path) -> ClaimsFile:
    return config.load(ClaimsFile, path)


# ---- matching ---------------------------------------------------------------------------------
def matches(record: dict[str, Any], q: Query) -> bool:
    """Every key ``q`` sets holds for ``record``. ``model`` matches the recorded model name or the
    registry name it was made from (bench records of random-weight generators: "alitok-xl-random"
    made from "alitok-xl", which speed claims may use)."""
    if q.model is not None and q.model not in (fields.model_name(record), fields.registry_name(record)):
        return False
    simple = {
        "label": fields.label,
        "variant": fields.variant,
        "kind": fields.kind,
        "protocol": fields.protocol,
        "batch_size": fields.batch_size,
        "dtype": fields.dtype,
    }
    for key, get in simple.items():
        want = getattr(q, key)
        if want is not None and get(record) != want:
            return False
    # paper_comparable: true is checked by ``hits`` (strictly, and saying why a record fails it)
    if q.paper_comparable is False and fields.paper_comparable(record):
        return False
    if q.hardware is not None and q.hardware.lower() not in (fields.hardware(record) or "").lower():
        return False
    if q.checkpoint is not None and q.checkpoint not in (fields.checkpoint(record) or ""):
        return False
    if q.guided is not None:
        scale = fields.guidance_scale(record)
        if scale is None or (scale != 1.0) != q.guided:
            return False
    s = fields.sampling(record)
    return all(k in s and _same(s[k], v) for k, v in q.sampling.items())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def not_comparable_because(record: dict[str, Any], q: Query, metric: str) -> str | None:
    """Why a record that says paper_comparable cannot answer a paper claim on ``metric`` (None: it can).
    The record's flag is checked against what it records: N, weights, reference, fatal findings."""
    if not fields.paper_comparable(record):
        return f"paper_comparable is {record.get('paper_comparable')!r}, not true"
    fatal = [
        f.get("code")
        for f in record.get("protocol_findings") or []
        if isinstance(f, dict) and f.get("severity") == "fatal"
    ]
    if fatal:
        return f"fatal protocol finding {fatal[0]}"
    if metric not in DISTRIBUTION_METRICS:
        return None
    need = protocol_n(q.protocol)
    ns = fields.evaluated_n(record)
    if ns != [need]:
        return f"N {'/'.join(map(str, ns)) or 'not recorded'}, the protocol's N is {need}"
    if fields.extractor_weights(record).get("official") is not True:
        return "feature weights are not the official Inception weights"
    if fields.kind(record) == "recon" or metric == "rfid":
        source = str(fields.dig(record, "spec.source_description") or fields.dig(record, "spec.source") or "")
        if fields.kind(record) == "recon" and not source.startswith("imagenet"):
            return f"reconstructs {source or 'an unrecorded source'}, not ImageNet val"
    elif fields.reference_kind(record) != ADM_REFERENCE_KIND:
        kind = fields.reference_kind(record) or "not recorded"
        return f"reference is {kind}, not the ADM VIRTUAL_imagenet256_labeled batch"
    return None


def protocol_n(name: str | None) -> int:
    """N of a registered protocol; the paper's 50,000 for names the registry does not know."""
    from harness.core.registry import load_plugins, protocols
    from harness.metrics.provenance import PAPER_N

    if name:
        load_plugins()
        if name in protocols:
            return int(protocols.get(name).num_samples)
    return PAPER_N


@dataclasses.dataclass
class Estimate:
    value: float | None
    unc: float | None
    n: int
    missing: str = ""


def _no_match(records: list[dict[str, Any]], q: Query) -> str:
    """Why no record matches ``q``. Records that match all but the sampling preset the claim names were made at
    another preset: they are not comparable with the claim (never evidence that it is not reproduced)."""
    loose = dataclasses.replace(q, sampling={})
    other = [r for r in records if q.sampling and fields.status(r) in (None, "ok") and matches(r, loose)]
    if not other:
        return f"no record with {q.describe()}"
    s = fields.sampling(other[0])
    diff = ", ".join(
        f"{k} {s.get(k, 'unset')!r}, the claim's {v!r}"
        for k, v in q.sampling.items()
        if not (k in s and _same(s[k], v))
    )
    return f"not comparable: {len(other)} record(s) with {loose.describe()} at another preset ({diff})"


def claim_files(claim: Claim) -> list[str]:
    """Official files (``harness.fetch.catalog`` names) a claim's records need: each query's registry entry's
    checkpoints, its protocol's reference batch and, for a distribution metric, the Inception weights. A
    speed claim needs none (bench records may use random weights), nor one that names no such entry."""
    return _fetch_names(claim)[1]


def fetch_command(claim: Claim) -> str | None:
    """The ``alitok-bench fetch`` command that puts a claim's official files into the weights root: its registry
    entries by name, then the other files by their official names (files already there are verified and
    kept). None when the claim needs none."""
    names, _ = _fetch_names(claim)
    return "alitok-bench fetch " + " ".join(names) if names else None


def _fetch_names(claim: Claim) -> tuple[list[str], list[str]]:
    from harness.fetch import catalog
    from harness.fetch.needs import files_for

    queries = [q for q in claim.queries() if q.kind != "bench"]
    models = list(dict.fromkeys(q.model for q in queries if q.model in catalog.NEEDS))
    if not models:  # no registry entry with official files (an ablation row, a model without a plugin)
        return [], []
    features = ["inception"] if queries and claim.metric in DISTRIBUTION_METRICS else []
    files = files_for(models, features, [q.protocol for q in queries if q.protocol])
    by_entry = {f for m in models for f in catalog.entry_files(m)}
    return models + [f for f in files if f not in by_entry], files


def hits(records: list[dict[str, Any]], q: Query, metric: str) -> tuple[list[dict[str, Any]], str]:
    """Records matching ``q`` that hold ``metric``, and (when there are none) why, in words."""
    found = [
        r
        for r in records
        # an official checkout's timing (bench --upstream) measures upstream's code, never the harness's
        if fields.status(r) in (None, "ok") and fields.implementation(r) != "upstream" and matches(r, q)
    ]
    if not found:
        return [], _no_match(records, q)
    if q.paper_comparable:
        reasons = [(r, not_comparable_because(r, q, metric)) for r in found]
        why_not = [w for _, w in reasons if w]
        found = [r for r, w in reasons if w is None]
        if not found:
            return [], f"{len(why_not)} record(s) with {q.describe()} but none comparable with the paper ({why_not[0]})"
    with_metric = [r for r in found if fields.metric(r, metric) is not None]
    if not with_metric:
        return [], f"{len(found)} record(s) with {q.describe()} but none has {metric}"
    return with_metric, ""


def _mean(records: list[dict[str, Any]], metric: str) -> Estimate:
    vals = [(fields.metric(r, metric), fields.uncertainty(r, metric)) for r in records]
    s = mean_sd(v for v, _ in vals)
    return Estimate(s.mean, s.se if s.n > 1 else vals[0][1], s.n)


def estimate(records: list[dict[str, Any]], q: Query, metric: str) -> Estimate:
    found, missing = hits(records, q, metric)
    return _mean(found, metric) if found else Estimate(None, None, 0, missing)


def _both_sides(
    records: list[dict[str, Any]], qa: Query, qb: Query, metric: str
) -> tuple[list[list[dict[str, Any]]], Estimate | None]:
    """The records of A and of B, or the empty Estimate naming the first side that has none."""
    sides = []
    for q in (qa, qb):
        found, missing = hits(records, q, metric)
        if not found:
            return [], Estimate(None, None, 0, missing)
        sides.append(found)
    return sides, None


def paired_estimate(records: list[dict[str, Any]], qa: Query, qb: Query, metric: str) -> Estimate:
    """A - B paired by seed (``harness.report.paired``): each seed's A minus the same seed's B."""
    both, none = _both_sides(records, qa, qb, metric)
    if none is not None:
        return none
    sides = []
    for q, found in zip((qa, qb), both):
        by_seed: dict[int, dict[str, Any]] = {}
        for r in found:
            s = fields.seed(r)
            if s is None:
                return Estimate(
                    None,
                    None,
                    0,
                    f"a record with {q.describe()} names no seed: it cannot be paired "
                    f"({fields.record_path(r) or r.get('run_id')})",
                )
            if s in by_seed:
                return Estimate(
                    None,
                    None,
                    0,
                    f"two records with {q.describe()} for seed {s}: "
                    f"{fields.record_path(by_seed[s])}, {fields.record_path(r)}",
                )
            by_seed[s] = r
        sides.append(by_seed)
    common = sorted(set(sides[0]) & set(sides[1]))
    if not common:
        return Estimate(None, None, 0, f"no seed measured for both {qa.describe()} and {qb.describe()}")
    d = paired.paired_difference(
        fields.metric(sides[0][s], metric) - fields.metric(sides[1][s], metric) for s in common
    )
    return Estimate(d.mean, d.se, d.n)


def ratio_estimate(records: list[dict[str, Any]], qa: Query, qb: Query, metric: str) -> Estimate:
    """mean(A) / mean(B) within each bench run that measured both on one machine; the mean over runs."""
    found, none = _both_sides(records, qa, qb, metric)
    if none is not None:
        return none
    runs: dict[tuple[str, str], list[list[dict[str, Any]]]] = {}
    for side, recs in enumerate(found):
        for r in recs:
            run, machine = fields.bench_run_id(r), fields.machine(r)
            if run is None or machine is None:
                continue  # a record that cannot say which run and machine made it pairs with nothing
            key = (str(run), repr(sorted(machine.items())))
            runs.setdefault(key, [[], []])[side].append(r)
    ratios = []
    for a_recs, b_recs in runs.values():
        if a_recs and b_recs:
            a, b = _mean(a_recs, metric), _mean(b_recs, metric)
            if b.value == 0:
                return Estimate(None, None, 0, f"denominator {qb.describe()} measured 0")
            r = a.value / b.value
            rel = [e.unc / e.value for e in (a, b) if e.unc is not None and e.value]
            ratios.append(Estimate(r, abs(r) * math.sqrt(sum(x * x for x in rel)) if rel else None, min(a.n, b.n)))
    if not ratios:
        return Estimate(
            None,
            None,
            0,
            f"no bench run measured both {qa.describe()} and {qb.describe()} on one "
            "machine (a ratio needs one spec.bench_run_id and one machine.cpu_model / gpu_name)",
        )
    if len(ratios) == 1:
        return ratios[0]
    s = mean_sd(e.value for e in ratios)  # several runs: their mean, with the sd of the mean as its uncertainty
    return Estimate(s.mean, s.se, s.n)


@dataclasses.dataclass
class Verdict:
    claim: Claim
    measured: float | None
    unc: float | None
    n: int
    delta: float | None
    verdict: str  # paper claims: reproduced / not reproduced / not run; tiny: a direction or not run
    detail: str


def evaluate(claim: Claim, records: list[dict[str, Any]]) -> Verdict:
    m = claim.measure
    if m.query is not None:
        est = estimate(records, m.query, claim.metric)
    elif m.ratio is not None:
        est = ratio_estimate(records, *m.ratio, claim.metric)
    else:
        est = paired_estimate(records, *m.difference, claim.metric)
    if est.value is None:
        needs = ("; needs " + ", ".join(claim.requires)) if claim.requires else ""
        fetch = fetch_command(claim)
        return Verdict(
            claim, None, None, 0, None, NOT_RUN, est.missing + needs + (f"; fetch: {fetch}" if fetch else "")
        )
    delta = est.value - claim.value
    if claim.expect == "sign":
        return _direction(claim, est, delta)
    allowed = claim.tolerance.allowed(claim.value, est.unc)
    ok = abs(delta) <= allowed
    return Verdict(
        claim,
        est.value,
        est.unc,
        est.n,
        delta,
        REPRODUCED if ok else NOT_REPRODUCED,
        f"|delta| {abs(delta):.4g} {'<=' if ok else '>'} tolerance {allowed:.4g}",
    )


def _direction(claim: Claim, est: Estimate, delta: float) -> Verdict:
    """A direction from the 95 % t interval of the paired difference (n - 1 df), the ablation table's
    rule (2 paired SE at 2 df would call a difference at 82 % confidence)."""
    interval = t_interval(est.value, est.unc, est.n) if est.n >= 2 else None
    if interval is None:
        answer, why = WITHIN_NOISE, f"{est.n} paired seed(s): no spread measured to test the direction against"
    elif interval[0] <= 0.0 <= interval[1]:
        answer, why = WITHIN_NOISE, f"the 95 % t interval [{interval[0]:.4g}, {interval[1]:.4g}] holds 0"
    elif est.value * claim.value > 0:
        answer, why = (
            SAME_DIRECTION,
            f"same direction as the paper (95 % t interval [{interval[0]:.4g}, {interval[1]:.4g}])",
        )
    else:
        answer, why = (
            OPPOSITE_DIRECTION,
            f"opposite direction to the paper (95 % t interval [{interval[0]:.4g}, {interval[1]:.4g}])",
        )
    if claim.scale == "paper":  # a paper claim on a direction still gets a paper verdict
        answer = REPRODUCED if answer == SAME_DIRECTION else NOT_REPRODUCED
    return Verdict(claim, est.value, est.unc, est.n, delta, answer, why)


def check(claims: ClaimsFile, records: list[dict[str, Any]]) -> list[Verdict]:
    return [evaluate(c, records) for c in claims.claims]


# ---- rendering ----------------------------------------------------------------------------------
def _num(v: float | None, unc: float | None = None) -> str:
    if v is None:
        return "–"
    s = f"{v:.4g}"
    return s + (f" ± {unc:.2g}" if unc is not None else "")


def presets(claim: Claim) -> str:
    """The protocols a claim's records come from (``ablation-tiny`` names the ablation's tiny preset)."""
    return ", ".join(dict.fromkeys(q.protocol for q in claim.queries() if q.protocol)) or "any"


def to_frame(verdicts: list[Verdict]):
    """One row per claim; a tiny-scale direction goes in ``tiny_direction``, never in ``verdict``."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "id": v.claim.id,
                "claim": v.claim.claim,
                "section": _section(v.claim),
                "source": v.claim.source,
                "metric": v.claim.metric,
                "paper_value": v.claim.value,
                "measured": v.measured,
                "measured_unc": v.unc,
                "measured_unc_kind": _unc_kind(v),
                "n_records": v.n,
                "delta": v.delta
                if v.claim.scale == "paper"
                else None,  # a tiny difference is no estimate of the paper's
                "verdict": v.verdict if v.claim.scale == "paper" else "",
                "tiny_direction": v.verdict if v.claim.scale == "tiny" else "",
                "detail": v.detail,
                "protocol": v.claim.protocol,
            }
            for v in verdicts
        ]
    )


def _section(claim: Claim) -> str:
    return "paper" if claim.scale == "paper" else f"tiny-scale direction ({presets(claim)})"


def _unc_kind(v: Verdict) -> str:
    if v.unc is None:
        return ""
    m = v.claim.measure
    if m.difference is not None:
        return paired.NAME
    return "propagated SE" if m.ratio is not None else "SE over records (or the record's own sd)"


def why(v: Verdict) -> str:
    """The last column: what a "not run" claim needs, or how a measured one compared."""
    if v.verdict == NOT_RUN and v.claim.requires:
        fetch = fetch_command(v.claim)
        comparable = v.detail.partition(";")[0] if v.detail.startswith("not comparable") else ""
        return "; ".join(
            [x for x in (comparable, "needs " + "; ".join(v.claim.requires)) if x]
            + ([f"fetch: `{fetch}`"] if fetch else [])
        )
    return v.detail + (f" (n={v.n})" if v.n > 1 else "")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def to_markdown(claims: ClaimsFile, verdicts: list[Verdict]) -> str:
    paper_v = [v for v in verdicts if v.claim.scale == "paper"]
    tiny_v = [v for v in verdicts if v.claim.scale == "tiny"]
    lines = [
        f"# Claims: {claims.paper}",
        "",
        "Paper verdicts come only from records comparable with the paper (JSON `paper_comparable: true`, the "
        "protocol's N, official Inception weights, the paper's reference); speed ratios only from one bench "
        "run on one machine.",
        "",
        "| claim | source | paper value | measured | delta | verdict | why / what is missing |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in paper_v:
        delta = "–" if v.delta is None else f"{v.delta:+.4g}"
        lines.append(
            _row(
                [v.claim.claim, v.claim.source, f"{v.claim.value:g}", _num(v.measured, v.unc), delta, v.verdict, why(v)]
            )
        )
    counts = {k: sum(v.verdict == k for v in paper_v) for k in (REPRODUCED, NOT_REPRODUCED, NOT_RUN)}
    lines += ["", ", ".join(f"{n} {k}" for k, n in counts.items()) + f" of {len(paper_v)} paper claims.", ""]
    if tiny_v:
        scales = ", ".join(dict.fromkeys(presets(v.claim) for v in tiny_v))
        lines += [
            f"## Directions at tiny scale ({scales}): not a test of the paper's numbers",
            "",
            "The ablation's CPU presets (tiny: 32 px; small: 64 px; a few hundred steps) ask only whether each change "
            "moves a metric the way the paper's table does; their rows are no evidence for or against the paper's "
            "values. "
            f"Measured: {paired.DESCRIPTION}.",
            "",
            "| change | preset | source | paper difference | difference at the preset | direction at the preset | why |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in tiny_v:
            cells = [v.claim.claim, presets(v.claim), v.claim.source, f"{v.claim.value:+g}", _num(v.measured, v.unc)]
            lines.append(_row([*cells, v.verdict, why(v)]))
        lines.append("")
    lines += ["Sources:", ""]
    lines += [f"- **{k}**: {v}" for k, v in claims.sources.items()]
    return "\n".join(lines) + "\n"
