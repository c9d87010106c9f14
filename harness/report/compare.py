"""Regression gates between two sets of records (pytest-benchmark's ``--benchmark-compare-fail`` idea).

A gate is ``METRIC:LIMIT``; the sign says which way is a regression and defaults to the metric's
bad direction (up for FID, down for images/s):
- ``fid:+2%``            fail when NEW > BASE * 1.02
- ``images_per_s:-10%``  fail when NEW < BASE * 0.90
- ``fid:+2sigma``        fail when NEW - BASE > 2 * sqrt(sd_BASE^2 + sd_NEW^2) (the records' measured sds)
- ``fid:+0.5``           fail when NEW - BASE > 0.5 (absolute)

Records pair up by label (a suite entry's label, else the model name), and a pair is gated only when
the two records agree on what decides the number (``COMPARED_ON``: protocol, reference, N, feature
weights, metric settings, sampling identity; for images/s the machine (its CPU model and GPU name;
a record that does not name them matches nothing), batch size, dtype and sampling parameters).
Otherwise ``compare`` refuses (``NotComparable``, exit 2) with one line per label naming the fields
that differ, unless the caller allows those fields by name (``--allow-differ n,reference``). Two
records of one label that both hold the gated metric are refused too: which one counts would be a
matter of file order.

A gate that cannot be evaluated fails: metric or uncertainty missing in NEW, a BASE row missing from
NEW, no BASE row with the metric at all, or a value that is not finite (NaN, +-inf) on either side.
A gate never passes by not looking.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from harness.core.errors import UserError
from harness.report import fields

_GATE = re.compile(r"^(?P<metric>[A-Za-z_][A-Za-z0-9_]*):(?P<sign>[+-]?)(?P<num>\d+(?:\.\d+)?)(?P<unit>%|sigma)?$")

# field name -> what it reads from a record, for quality metrics and for speed
_QUALITY: dict[str, Callable[[dict, str], Any]] = {
    "protocol": lambda r, m: fields.protocol(r),
    "reference": lambda r, m: fields.reference_digest(r),
    "n": lambda r, m: fields.evaluated_n(r) or None,
    "weights": lambda r, m: fields.extractor_weights_digest(r),
    "metric_settings": lambda r, m: fields.metric_settings(r, m) or None,
    "sampling": lambda r, m: fields.sampling_identity(r) or None,
}
_SPEED: dict[str, Callable[[dict, str], Any]] = {
    "machine": lambda r, m: fields.machine(r),
    "batch_size": lambda r, m: fields.batch_size(r),
    "dtype": lambda r, m: fields.dtype(r),
    "sampling": lambda r, m: fields.sampling(r) or None,
}
COMPARED_ON = tuple(dict.fromkeys([*_QUALITY, *_SPEED]))
# fields whose absence on either side counts as a difference even when both lack them: two speeds
# from machines that do not name their CPU model ("x86_64") may come from two different CPUs
_UNKNOWN_DIFFERS = ("machine",)


class GateError(UserError):
    """A ``--fail`` expression that does not parse or names an unknown metric."""


class NotComparable(UserError):
    """BASE and NEW records that differ in what decides the number, or a label held twice."""

    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


@dataclasses.dataclass(frozen=True)
class Gate:
    metric: str
    direction: int  # +1: an increase is a regression; -1: a decrease is
    amount: float
    unit: str  # "%", "sigma" or "abs"
    text: str

    def limit_text(self) -> str:
        sign = "+" if self.direction > 0 else "-"
        return f"{sign}{self.amount:g}" + {"%": "%", "sigma": " sd", "abs": ""}[self.unit]


def parse_gate(text: str) -> Gate:
    m = _GATE.match(text.strip())
    if not m:
        raise GateError(f"--fail {text!r}: expected METRIC:[+|-]N[%|sigma], e.g. fid:+2% or images_per_s:-10%")
    metric = m["metric"]
    if metric not in fields.HIGHER_IS_BETTER:
        raise GateError(f"--fail {text!r}: unknown metric {metric!r} (known: {', '.join(fields.HIGHER_IS_BETTER)})")
    if m["sign"]:
        direction = 1 if m["sign"] == "+" else -1
    else:
        direction = -1 if fields.HIGHER_IS_BETTER[metric] else 1
    return Gate(metric, direction, float(m["num"]), m["unit"] or "abs", text)


def parse_allow_differ(values: list[str] | tuple[str, ...] | None) -> set[str]:
    """``["n,reference", "weights"]`` -> {"n", "reference", "weights"}; unknown names are refused."""
    names = {x.strip() for v in (values or ()) for x in v.split(",") if x.strip()}
    unknown = sorted(names - set(COMPARED_ON))
    if unknown:
        raise UserError(f"--allow-differ {','.join(unknown)}: unknown field (known: {', '.join(COMPARED_ON)})")
    return names


@dataclasses.dataclass
class Check:
    gate: Gate
    label: str
    base: float | None
    new: float | None
    passed: bool
    detail: str

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        values = "" if self.base is None or self.new is None else f"{self.base:.6g} -> {self.new:.6g}, "
        return f"{status} {self.gate.text} [{self.label}]: {values}{self.detail}"


def _check(gate: Gate, label: str, base: dict, new: dict | None) -> Check:
    b = fields.metric_raw(base, gate.metric)
    if new is None:
        return Check(gate, label, b, None, False, "no NEW record with this label")
    n = fields.metric_raw(new, gate.metric)
    if n is None:
        return Check(gate, label, b, None, False, f"NEW record has no {gate.metric}")
    for side, v in (("BASE", b), ("NEW", n)):
        if not math.isfinite(v):
            return Check(gate, label, b, n, False, f"{side} {gate.metric} is not finite ({v}): a gate needs a number")
    change = (n - b) * gate.direction  # > 0: moved the bad way
    if gate.unit == "%":
        if b == 0:
            return Check(gate, label, b, n, False, "BASE is 0: a relative gate is undefined")
        rel = 100.0 * (n - b) / abs(b)
        ok = change <= gate.amount / 100.0 * abs(b)
        return Check(gate, label, b, n, ok, f"change {rel:+.3g}% (limit {gate.limit_text()})")
    if gate.unit == "sigma":
        sb, sn = fields.uncertainty(base, gate.metric), fields.uncertainty(new, gate.metric)
        if sb is None and sn is None:
            return Check(gate, label, b, n, False, f"no measured uncertainty of {gate.metric} in BASE or NEW")
        sd = math.hypot(sb or 0.0, sn or 0.0)  # hypot: no overflow for sds near the float limit
        if not math.isfinite(sd):
            return Check(gate, label, b, n, False, f"measured uncertainty is not finite ({sd})")
        if sd == 0:
            return Check(gate, label, b, n, False, "measured uncertainty is 0: a sigma gate is undefined")
        ok = change <= gate.amount * sd
        return Check(gate, label, b, n, ok, f"change {(n - b) / sd:+.3g} sd (sd {sd:.3g}; limit {gate.limit_text()})")
    ok = change <= gate.amount
    return Check(gate, label, b, n, ok, f"change {n - b:+.4g} (limit {gate.limit_text()})")


def _usable(records: list[dict]) -> list[dict]:
    return [r for r in records if fields.status(r) in (None, "ok")]


def holder(records: list[dict], side: str, label: str, metric: str) -> dict | None:
    """The one record of ``label`` holding ``metric``, merged with the label's other records (a sample
    record brings the sampling identity to its eval record); two holders are refused by path."""
    mine = [r for r in _usable(records) if fields.label(r) == label]
    having = [r for r in mine if fields.metric_raw(r, metric) is not None]
    if len(having) > 1:
        paths = ", ".join(str(fields.record_path(r) or "(unnamed record)") for r in having)
        raise NotComparable(
            [
                f"[{label}] {len(having)} {side} records hold {metric}: {paths}; "
                "which one counts would depend on file order: compare one of them"
            ]
        )
    if not having:
        return None
    merged = having[0]
    for r in mine:
        if r is not having[0]:
            merged = _merge(merged, r)
    return merged


def _merge(a: dict, b: dict) -> dict:
    merged = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        elif merged.get(k) in (None, {}, [], ""):
            merged[k] = v
    return merged


def differences(base: dict, new: dict, metric: str) -> dict[str, tuple[Any, Any]]:
    """field -> (BASE value, NEW value) for every field deciding ``metric`` on which the two differ
    (a value recorded on one side only differs too: agreement cannot be checked)."""
    readers = _SPEED if metric == "images_per_s" else _QUALITY
    out = {}
    for name, read in readers.items():
        b, n = read(base, metric), read(new, metric)
        if b != n or (name in _UNKNOWN_DIFFERS and b is None):
            out[name] = (b, n)
    return out


def _short(v: Any) -> str:
    text = "not recorded" if v is None else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def compare(
    base: list[dict],
    new: list[dict],
    gates: list[Gate],
    allow_differ: set[str] | frozenset = frozenset(),
    notes: list[str] | None = None,
) -> list[Check]:
    """Every gate on every BASE label holding its metric. Raises ``NotComparable`` (one line per label)
    when a pair differs in a field not in ``allow_differ``; ``notes`` collects the allowed differences."""
    b_labels = sorted({fields.label(r) for r in _usable(base)})
    if not b_labels:
        raise UserError("compare: BASE holds no usable records")
    checks, refused = [], {}
    for gate in gates:
        pairs = []
        for lab in b_labels:
            b = holder(base, "BASE", lab, gate.metric)
            if b is not None:
                pairs.append((lab, b, holder(new, "NEW", lab, gate.metric)))
        if not pairs:
            checks.append(Check(gate, "*", None, None, False, f"no BASE record has {gate.metric}"))
        for lab, b, n in pairs:
            diff = {} if n is None else differences(b, n, gate.metric)
            blocked = {k: v for k, v in diff.items() if k not in allow_differ}
            if blocked:
                refused.setdefault(lab, {}).update(blocked)
                continue
            for k, (vb, vn) in diff.items():
                line = f"note [{lab}] {gate.metric}: {k} differs (allowed): BASE {_short(vb)}, NEW {_short(vn)}"
                if notes is not None and line not in notes:
                    notes.append(line)
            checks.append(_check(gate, lab, b, n))
    if refused:
        raise NotComparable(
            [
                f"[{lab}] BASE and NEW differ in what decides the number: "
                + ", ".join(f"{k} (BASE {_short(vb)}, NEW {_short(vn)})" for k, (vb, vn) in diff.items())
                + f"; pass --allow-differ {','.join(diff)} to compare them anyway"
                for lab, diff in sorted(refused.items())
            ]
        )
    return checks
