"""Regression gates between two sets of records (pytest-benchmark's ``--benchmark-compare-fail`` idea).

A gate is ``METRIC:LIMIT``; the sign says which way is a regression and defaults to the metric's
bad direction (up for FID, down for images/s):
- ``fid:+2%``            fail when NEW > BASE * 1.02
- ``images_per_s:-10%``  fail when NEW < BASE * 0.90
- ``fid:+2sigma``        fail when NEW - BASE > 2 * sqrt(sd_BASE^2 + sd_NEW^2) (the records' measured sds)
- ``fid:+0.5``           fail when NEW - BASE > 0.5 (absolute)
Records pair up by label (a suite entry's label, else the model name). A gate that cannot be
evaluated (metric or uncertainty missing in NEW, a BASE row missing from NEW, no BASE row with the
metric at all) fails: a gate never passes by not looking.
"""
from __future__ import annotations

import dataclasses
import math
import re

from harness.errors import UserError
from harness.report import fields

_GATE = re.compile(r"^(?P<metric>[A-Za-z_][A-Za-z0-9_]*):(?P<sign>[+-]?)(?P<num>\d+(?:\.\d+)?)(?P<unit>%|sigma)?$")


class GateError(UserError):
    """A ``--fail`` expression that does not parse or names an unknown metric."""


@dataclasses.dataclass(frozen=True)
class Gate:
    metric: str
    direction: int        # +1: an increase is a regression; -1: a decrease is
    amount: float
    unit: str             # "%", "sigma" or "abs"
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
    b = fields.metric(base, gate.metric)
    if new is None:
        return Check(gate, label, b, None, False, "no NEW record with this label")
    n = fields.metric(new, gate.metric)
    if n is None:
        return Check(gate, label, b, None, False, f"NEW record has no {gate.metric}")
    change = (n - b) * gate.direction          # > 0: moved the bad way
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
        sd = math.sqrt((sb or 0.0) ** 2 + (sn or 0.0) ** 2)
        if sd == 0:
            return Check(gate, label, b, n, False, "measured uncertainty is 0: a sigma gate is undefined")
        ok = change <= gate.amount * sd
        return Check(gate, label, b, n, ok, f"change {(n - b) / sd:+.3g} sd (sd {sd:.3g}; limit {gate.limit_text()})")
    ok = change <= gate.amount
    return Check(gate, label, b, n, ok, f"change {n - b:+.4g} (limit {gate.limit_text()})")


def by_label(records: list[dict]) -> dict[str, dict]:
    """label -> one merged record (a model's sample and eval records fill each other's gaps)."""
    out: dict[str, dict] = {}
    for r in records:
        if fields.status(r) not in (None, "ok"):
            continue
        lab = fields.label(r)
        out[lab] = _merge(out[lab], r) if lab in out else r
    return out


def _merge(a: dict, b: dict) -> dict:
    merged = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        elif merged.get(k) in (None, {}, [], ""):
            merged[k] = v
    return merged


def compare(base: list[dict], new: list[dict], gates: list[Gate]) -> list[Check]:
    b, n = by_label(base), by_label(new)
    if not b:
        raise UserError("compare: BASE holds no usable records")
    checks = []
    for gate in gates:
        labels = [lab for lab in sorted(b) if fields.metric(b[lab], gate.metric) is not None]
        if not labels:
            checks.append(Check(gate, "*", None, None, False, f"no BASE record has {gate.metric}"))
        checks += [_check(gate, lab, b[lab], n.get(lab)) for lab in labels]
    return checks
