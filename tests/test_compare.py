"""Regression gates: a planted regression fails (naming the gate), identical runs pass."""

import json
import shutil

import pytest

from harness.cli import main
from harness.report.compare import GateError, compare, parse_gate
from harness.runs.records import RunRecord

MACHINE = {"cpu_model": "AMD EPYC 7B13", "gpu_name": None}


def _rec(label, fid, ips, fid_std=None, machine=MACHINE):
    metrics = {"fid": fid, **({"fid_std": fid_std} if fid_std is not None else {})}
    d = RunRecord(kind="eval", model={"name": label}, metrics=metrics, speed={"images_per_s": ips}).to_dict()
    d["label"] = label
    if machine is not None:
        d["machine"] = dict(machine)
    else:  # a record from before records named their machine (RunRecord now fills in this one's)
        d.pop("machine", None)
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
    sd = (0.3**2 + 0.4**2) ** 0.5  # 0.5
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


# ---- a verdict only between comparable runs (issue 22) ----------------------------------------------
def _eval_rec(
    label,
    fid,
    *,
    n=110,
    ref="62f05c68" * 8,
    weights="2249cd1f" * 8,
    cfg=3.0,
    seed=0,
    ident="f1aa61e9",
    protocol="demo",
    fid_std=None,
):
    """The fields a `run` record holds for what decides its FID (harness/sampling/record.py, metrics/evaluate.py)."""
    d = RunRecord(
        kind="run",
        model={"name": label, "sampling": {"cfg_scale": cfg, "temperature": 1.0}},
        spec={"protocol": {"name": protocol, "num_samples": n, "seed": seed}},
        seeds={"seed": seed, "sampling_identity_hash": ident},
        samples={"n": n},
        metrics={"fid": fid},
        uncertainty={"fid": {"std": fid_std}} if fid_std else {},
        metric_provenance={
            "weights": {"sha256": weights},
            "reference": {"sha256": ref},
            "samples": {"n": n},
            "extractor": "torch-fidelity-0.4.0/inception-v3-compat",
            "resize": "tf1-bilinear-299",
            "fid_method": "eig",
        },
    ).to_dict()
    d["label"] = label
    return d


def _write_raw(path, record_text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record_text)
    return path


def test_other_reference_and_n_are_refused_naming_the_fields(tmp_path, capsys):
    # the reported case: 246.97 -> 5.7e-14 passed fid:+2% although NEW had N=50 and another reference
    base = _write(tmp_path / "base", [_eval_rec("a", 246.97)])
    new = _write(tmp_path / "new", [_eval_rec("a", 5.7e-14, n=50, ref="0badc0de" * 8)])
    assert main(["compare", str(base), str(new), "--fail", "fid:+2%"]) == 2
    err = capsys.readouterr().err
    assert "[a]" in err and "reference" in err and "n (" in err and "--allow-differ" in err
    assert "weights" not in err.split("[a]")[1]  # only the fields that differ are named
    # named explicitly, the fields may differ and the gate is evaluated
    assert main(["compare", str(base), str(new), "--fail", "fid:+2%", "--allow-differ", "n,reference"]) == 0
    assert "differs (allowed)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, field",
    [
        ({"weights": "846781ab" * 8}, "weights"),
        ({"cfg": 4.0, "seed": 7}, "sampling"),
        ({"protocol": "imagenet256-gfid50k"}, "protocol"),
    ],
)
def test_other_weights_sampling_or_protocol_are_refused(tmp_path, capsys, change, field):
    base = [_eval_rec("a", 10.0, fid_std=0.3)]
    new = [_eval_rec("a", 10.1, fid_std=0.3, **change)]
    from harness.report.compare import NotComparable

    with pytest.raises(NotComparable, match=rf"\[a\] .*{field}"):
        compare(base, new, [parse_gate("fid:+2sigma")])
    assert all(c.passed for c in compare(base, new, [parse_gate("fid:+2sigma")], allow_differ={field}))


def test_two_new_records_with_one_label_are_refused_naming_both(tmp_path, capsys):
    base = _write(tmp_path / "base", [_eval_rec("a", 10.0)])
    new = tmp_path / "new"
    for sub, fid in (("x", 10.0), ("y", 9999.0)):
        _write_raw(new / sub / "run_record.json", json.dumps(_eval_rec("a", fid)))
    assert main(["compare", str(base), str(new), "--fail", "fid:+2%"]) == 2
    err = capsys.readouterr().err
    assert str(new / "x" / "run_record.json") in err and str(new / "y" / "run_record.json") in err


@pytest.mark.parametrize(
    "side, value", [("new", "-Infinity"), ("new", "Infinity"), ("new", "NaN"), ("base", "NaN"), ("base", "Infinity")]
)
def test_non_finite_values_fail_the_gate(tmp_path, capsys, side, value):
    good = json.dumps(_eval_rec("a", 10.0))
    bad = good.replace('"fid": 10.0', f'"fid": {value}')
    assert bad != good
    base = _write_raw(tmp_path / "base" / "run_record.json", bad if side == "base" else good)
    # a NEW regression to 9999 must not hide behind a BASE NaN
    new = _write_raw(tmp_path / "new" / "run_record.json", bad if side == "new" else good.replace("10.0", "9999.0"))
    assert main(["compare", str(base), str(new), "--fail", "fid:+2%", "--fail", "fid:+0.5"]) == 1
    out = capsys.readouterr().out
    assert f"{side.upper()} fid is not finite" in out and "FAIL fid:+2% [a]" in out


def test_huge_uncertainty_is_a_number_not_a_traceback():
    base, new = [_eval_rec("a", 10.0, fid_std=1e300)], [_eval_rec("a", 11.0, fid_std=1e300)]
    assert compare(base, new, [parse_gate("fid:+2sigma")])[0].passed  # sd = hypot(1e300, 1e300), finite


def test_unknown_allow_differ_field_is_a_one_line_error(tmp_path, capsys):
    base = _write(tmp_path / "base", [_eval_rec("a", 10.0)])
    assert main(["compare", str(base), str(base), "--fail", "fid:+2%", "--allow-differ", "colour"]) == 2
    err = capsys.readouterr().err
    assert "--allow-differ" in err and "colour" in err and "protocol" in err  # names the known fields


def test_a_rebuilt_reference_is_the_same_reference_and_another_source_is_not():
    # a reference the harness builds holds its build time and commit, so its file digest changes on
    # every rebuild (results/golden: 62f05c68... committed, another digest on each `run golden`)
    def built(sha, source="embedded natural_patches(split=val, size=32, per_class=10, seed=0)"):
        r = _eval_rec("a", 266.457)
        r["metric_provenance"]["reference"] = {
            "sha256": sha,
            "kind": "alitok-bench",
            "source": source,
            "n_stats": 110,
            "n_images_arr0": 110,
            "image_size": [32, 32],
            "resize": "tf1-bilinear-299",
            "metadata": {"created_at": sha[:8]},
        }
        return r

    gate = [parse_gate("fid:+2%")]
    assert compare([built("62f05c68" * 8)], [built("f6c59137" * 8)], gate)[0].passed
    from harness.report.compare import NotComparable

    with pytest.raises(NotComparable, match="reference"):
        compare([built("62f05c68" * 8)], [built("f6c59137" * 8, source="embedded natural_patches(split=train)")], gate)


@pytest.mark.parametrize("new_machine", [{"cpu_model": "Intel(R) Xeon(R) Processor", "gpu_name": None}, None])
def test_speed_from_another_or_an_unnamed_machine_is_refused(new_machine):
    from harness.report.compare import NotComparable

    gate = [parse_gate("images_per_s:-10%")]
    with pytest.raises(NotComparable, match=r"\[a\] .*machine"):
        compare([_rec("a", 10.0, 100.0)], [_rec("a", 10.0, 100.0, machine=new_machine)], gate)
    with pytest.raises(NotComparable, match="machine"):  # neither names its CPU: two CPUs look alike
        compare([_rec("a", 10.0, 100.0, machine=None)], [_rec("a", 10.0, 100.0, machine=None)], gate)
    assert compare(
        [_rec("a", 10.0, 100.0)], [_rec("a", 10.0, 95.0, machine=new_machine)], gate, allow_differ={"machine"}
    )[0].passed
