"""Regression gates: a planted regression fails (naming the gate), identical runs pass."""
import json
import shutil

import pytest

from harness.cli import main
from harness.compare import GateError, compare, parse_gate
from harness.records import RunRecord


def _rec(label, fid, ips, fid_std=None):
    metrics = {"fid": fid, **({"fid_std": fid_std} if fid_std is not None else {})}
    d = RunRecord(kind="eval", model={"name": label}, metrics=metrics, speed={"images_per_s": ips}).to_dict()
    d["label"] = label
    return d


def _write(folder, records):
    for r in records:
        p = folder / r["label"] / "eval_record.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(r))
    return folder


GATES = ["--fail", "fid:+2%", "--fail", "images_per_s:-10%"]


def test_identical_runs_pass(tmp_path, capsys):
    base = _write(tmp_path / "base", [_rec("a", 10.0, 100.0), _rec("b", 20.0, 50.0)])
    shutil.copytree(base, tmp_path / "new")
    assert main(["compare", str(base), str(tmp_path / "new"), *GATES]) == 0
    assert "all 4 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("new_fid, new_ips, bad_gate", [(10.3, 100.0, "fid:+2%"), (10.0, 89.0, "images_per_s:-10%")])
def test_planted_regression_fails_and_names_the_gate(tmp_path, capsys, new_fid, new_ips, bad_gate):
    base = _write(tmp_path / "base", [_rec("a", 10.0, 100.0)])
    new = _write(tmp_path / "new", [_rec("a", new_fid, new_ips)])
    assert main(["compare", str(base), str(new), *GATES]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {bad_gate} [a]" in out and f"FAILED: {bad_gate} on a" in out


def test_just_inside_the_band_passes_and_improvements_pass(tmp_path):
    base = [_rec("a", 10.0, 100.0)]
    gates = [parse_gate("fid:+2%"), parse_gate("images_per_s:-10%")]
    assert all(c.passed for c in compare(base, [_rec("a", 10.19, 90.5)], gates))
    assert all(c.passed for c in compare(base, [_rec("a", 5.0, 500.0)], gates))


def test_sigma_gate_uses_both_uncertainties():
    base, gate = [_rec("a", 10.0, 1.0, fid_std=0.3)], [parse_gate("fid:+2sigma")]
    sd = (0.3 ** 2 + 0.4 ** 2) ** 0.5      # 0.5
    assert compare(base, [_rec("a", 10.0 + 2 * sd - 1e-6, 1.0, fid_std=0.4)], gate)[0].passed
    assert not compare(base, [_rec("a", 10.0 + 2 * sd + 1e-6, 1.0, fid_std=0.4)], gate)[0].passed
    nounc = compare([_rec("a", 10.0, 1.0)], [_rec("a", 10.0, 1.0)], gate)[0]
    assert not nounc.passed and "no measured uncertainty" in nounc.detail


def test_gates_that_cannot_look_fail():
    gates = [parse_gate("fid:+2%")]
    missing = compare([_rec("a", 10.0, 1.0)], [_rec("b", 10.0, 1.0)], gates)
    assert not missing[0].passed and "no NEW record" in missing[0].detail
    nometric = compare([_rec("a", 10.0, 1.0)], [_rec("a", 10.0, 1.0)], [parse_gate("recall:-1%")])
    assert not nometric[0].passed and "no BASE record has recall" in nometric[0].detail


def test_gate_parsing():
    assert parse_gate("fid:2%").direction == 1 and parse_gate("images_per_s:5%").direction == -1
    assert parse_gate("fid:+0.5").unit == "abs"
    for bad in ("fid", "fid:+2x", "nope:+2%"):
        with pytest.raises(GateError):
            parse_gate(bad)


def test_bad_gate_is_a_one_line_error(tmp_path, capsys):
    base = _write(tmp_path / "base", [_rec("a", 10.0, 100.0)])
    assert main(["compare", str(base), str(base), "--fail", "fid:+2x"]) == 2
    assert "expected METRIC" in capsys.readouterr().err
