"""Paper claims as data, checked against run records: reproduced / not reproduced / not run.

A claims file (``results/claims/*.yaml``) lists every number a paper states, each with its source,
protocol, metric, tolerance and the record query that measures it. ``check`` evaluates each claim
from records alone; nothing is filled in by hand. A claim whose query matches no record is
"not run" and names what is missing (its ``requires`` list); a measured value outside tolerance is
"not reproduced".

Measures:
- ``query``: the mean of ``metric`` over the matching records (several seeds average; their spread,
  as the sd of the mean, is the uncertainty; one record brings its own sd if it has one).
- ``ratio: [A, B]``: mean(A) / mean(B) (speed ratios); ``difference: [A, B]``: mean(A) - mean(B)
  (ablation effects). ``expect: sign`` checks only the direction of a difference.
Tolerance: |measured - paper| <= abs + rel * |paper| + sigma * uncertainty.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

from harness import config
from harness.report import fields

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run"


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
    hardware: str | None = None          # substring of the recorded device name, e.g. "A800"
    checkpoint: str | None = None        # substring of the recorded checkpoint path
    sampling: dict[str, Any] = dataclasses.field(default_factory=dict)   # subset of the sampling params
    guided: bool | None = None           # True: CFG on (recorded cfg_scale != 1); False: off

    def describe(self) -> str:
        parts = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                 if getattr(self, f.name) not in (None, {})]
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
    sigma: float = 0.0       # also allow this many measured standard deviations

    def allowed(self, paper: float, unc: float | None) -> float:
        return self.abs + self.rel * abs(paper) + (self.sigma * unc if unc is not None else 0.0)


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    source: str                # a key of ClaimsFile.sources
    protocol: str              # the conditions the paper states (free text)
    metric: str
    value: float
    measure: Measure
    tolerance: Tolerance = Tolerance()
    expect: Literal["value", "sign"] = "value"
    requires: tuple[Any, ...] = ()   # strings, or lists of them (YAML aliases of shared input lists)
    note: str = ""

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
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)   # shared `requires` lists (YAML anchors)

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


def load_claims(path: str | Path) -> ClaimsFile:
    return config.load(ClaimsFile, path)


# ---- matching ---------------------------------------------------------------------------------
def matches(record: dict[str, Any], q: Query) -> bool:
    """Every key ``q`` sets holds for ``record``. ``model`` matches the recorded model name or the
    registry name it was made from (bench records of random-weight generators: "alitok-xl-random"
    made from "alitok-xl", which speed claims may use)."""
    if q.model is not None and q.model not in (fields.model_name(record), fields.registry_name(record)):
        return False
    simple = {"label": fields.label, "variant": fields.variant, "kind": fields.kind,
              "protocol": fields.protocol, "batch_size": fields.batch_size, "dtype": fields.dtype}
    for key, get in simple.items():
        want = getattr(q, key)
        if want is not None and get(record) != want:
            return False
    if q.paper_comparable is not None and fields.paper_comparable(record) != q.paper_comparable:
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


@dataclasses.dataclass
class Estimate:
    value: float | None
    unc: float | None
    n: int
    missing: str = ""


def estimate(records: list[dict[str, Any]], q: Query, metric: str) -> Estimate:
    hits = [r for r in records if fields.status(r) in (None, "ok") and matches(r, q)]
    if not hits:
        return Estimate(None, None, 0, f"no record with {q.describe()}")
    vals = [(fields.metric(r, metric), fields.uncertainty(r, metric)) for r in hits]
    vals = [(v, u) for v, u in vals if v is not None]
    if not vals:
        return Estimate(None, None, 0, f"{len(hits)} record(s) with {q.describe()} but none has {metric}")
    xs = [v for v, _ in vals]
    mean = sum(xs) / len(xs)
    if len(xs) > 1:
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
        unc = sd / math.sqrt(len(xs))
    else:
        unc = vals[0][1]
    return Estimate(mean, unc, len(xs))


@dataclasses.dataclass
class Verdict:
    claim: Claim
    measured: float | None
    unc: float | None
    n: int
    delta: float | None
    verdict: str
    detail: str


def evaluate(claim: Claim, records: list[dict[str, Any]]) -> Verdict:
    m = claim.measure
    if m.query is not None:
        est = estimate(records, m.query, claim.metric)
    else:
        a_q, b_q = m.ratio or m.difference
        a, b = estimate(records, a_q, claim.metric), estimate(records, b_q, claim.metric)
        if a.value is None or b.value is None:
            est = Estimate(None, None, 0, "; ".join(e.missing for e in (a, b) if e.missing))
        elif m.ratio is not None:
            if b.value == 0:
                est = Estimate(None, None, 0, f"denominator {b_q.describe()} measured 0")
            else:
                r = a.value / b.value
                rel = [e.unc / e.value for e in (a, b) if e.unc is not None and e.value]
                est = Estimate(r, abs(r) * math.sqrt(sum(x * x for x in rel)) if rel else None, min(a.n, b.n))
        else:
            uncs = [e.unc for e in (a, b) if e.unc is not None]
            est = Estimate(a.value - b.value, math.sqrt(sum(u * u for u in uncs)) if uncs else None, min(a.n, b.n))
    if est.value is None:
        needs = ("; needs " + ", ".join(claim.requires)) if claim.requires else ""
        return Verdict(claim, None, None, 0, None, NOT_RUN, est.missing + needs)
    delta = est.value - claim.value
    if claim.expect == "sign":
        noise = claim.tolerance.sigma * est.unc if est.unc is not None else 0.0
        same_sign = est.value * claim.value > 0
        ok = same_sign and abs(est.value) > noise
        why = ("same direction as the paper" if same_sign else "opposite direction to the paper")
        if same_sign and not ok:
            why = f"same direction but within {claim.tolerance.sigma:g} sd of zero"
        return Verdict(claim, est.value, est.unc, est.n, delta, REPRODUCED if ok else NOT_REPRODUCED, why)
    allowed = claim.tolerance.allowed(claim.value, est.unc)
    ok = abs(delta) <= allowed
    return Verdict(claim, est.value, est.unc, est.n, delta, REPRODUCED if ok else NOT_REPRODUCED,
                   f"|delta| {abs(delta):.4g} {'<=' if ok else '>'} tolerance {allowed:.4g}")


def check(claims: ClaimsFile, records: list[dict[str, Any]]) -> list[Verdict]:
    return [evaluate(c, records) for c in claims.claims]


# ---- rendering ----------------------------------------------------------------------------------
def _num(v: float | None, unc: float | None = None) -> str:
    if v is None:
        return "–"
    s = f"{v:.4g}"
    return s + (f" ± {unc:.2g}" if unc is not None else "")


def to_frame(verdicts: list[Verdict]):
    import pandas as pd

    return pd.DataFrame([{
        "id": v.claim.id, "claim": v.claim.claim, "source": v.claim.source, "metric": v.claim.metric,
        "paper_value": v.claim.value, "measured": v.measured, "measured_unc": v.unc, "n_records": v.n,
        "delta": v.delta, "verdict": v.verdict, "detail": v.detail, "protocol": v.claim.protocol,
    } for v in verdicts])


def why(v: Verdict) -> str:
    """The last column: what a "not run" claim needs, or how a measured one compared."""
    if v.verdict == NOT_RUN and v.claim.requires:
        return "needs " + "; ".join(v.claim.requires)
    return v.detail + (f" (n={v.n})" if v.n > 1 else "")


def to_markdown(claims: ClaimsFile, verdicts: list[Verdict]) -> str:
    lines = [f"# Claims: {claims.paper}", "",
             "| claim | source | paper value | measured | delta | verdict | why / what is missing |",
             "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        delta = "–" if v.delta is None else f"{v.delta:+.4g}"
        cells = [v.claim.claim, v.claim.source, f"{v.claim.value:g}", _num(v.measured, v.unc), delta, v.verdict, why(v)]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    counts = {k: sum(v.verdict == k for v in verdicts) for k in (REPRODUCED, NOT_REPRODUCED, NOT_RUN)}
    lines += ["", ", ".join(f"{n} {k}" for k, n in counts.items()) + f" of {len(verdicts)} claims.", "", "Sources:", ""]
    lines += [f"- **{k}**: {v}" for k, v in claims.sources.items()]
    return "\n".join(lines) + "\n"
