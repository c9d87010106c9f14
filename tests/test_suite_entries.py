"""Suite entries and sweeps expand to uniquely labelled runs; missing inputs are named with their source."""

import itertools
from pathlib import Path

import pytest

from harness.core import config
from harness.core.config import ConfigError
from harness.suites.entries import (
    SuiteEntry,
    SuiteInput,
    describe,
    entries_from_suite_dict,
    expand,
    missing_inputs,
    runnable,
)

SUITES = Path(__file__).resolve().parent.parent / "harness" / "suites"


def _entry(**d):
    return config.from_dict(SuiteEntry, {"label": "t", "model": {"name": "alitok-tiny"}, **d})


def test_grid_times_seeds_in_order():
    grid = {"cfg_scale": [1.0, 2.5], "temperature": [0.9, 1.0, 1.1]}
    runs = expand([_entry(sweep={"sampling": grid, "seeds": [0, 7]})])
    want = [(g, t, s) for g, t in itertools.product(grid["cfg_scale"], grid["temperature"]) for s in (0, 7)]
    assert [(r.model.sampling["cfg_scale"], r.model.sampling["temperature"], r.seed) for r in runs] == want
    assert runs[0].label == "t_cfg_scale=1_temperature=0.9_seed=0" and runs[0].parent == "t"
    assert len({r.label for r in runs}) == len(want)
    # seed replicates of one grid point share a variant (the group whose spread the error bars show)
    assert runs[0].variant == runs[1].variant == "t_cfg_scale=1_temperature=0.9" != runs[2].variant
    assert runs[3].record_spec_fields() == {
        "label": runs[3].label,
        "variant": runs[3].variant,
        "sweep_point": {"cfg_scale": 1.0, "temperature": 1.0, "seed": 7},
    }


def test_sweep_keeps_the_entrys_own_overrides():
    e = _entry(
        model={"name": "alitok-b", "checkpoint": "w.bin", "sampling": {"cfg_power": 1.8}},
        sweep={"sampling": {"cfg_scale": [4.0, 16.0]}},
    )
    runs = expand([e])
    assert [r.model.sampling for r in runs] == [
        {"cfg_power": 1.8, "cfg_scale": 4.0},
        {"cfg_power": 1.8, "cfg_scale": 16.0},
    ]
    assert all(r.model.checkpoint == "w.bin" and r.variant is None for r in runs)


def test_no_sweep_is_one_run_with_the_label():
    (r,) = expand([_entry(seed=3, variant="A")])
    assert (r.label, r.seed, r.variant, r.point) == ("t", 3, "A", {})


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"label": "a/b"}, "not a usable label"),
        ({"sweep": {"sampling": {"cfg_scale": []}}}, "at least one value"),
        ({"sweep": {}}, "sampling values and/or seeds"),
        ({"seed": 1, "sweep": {"seeds": [0, 1]}}, "not both"),
        ({"task": "recon"}, "needs source"),
        ({"sweeep": {}}, "did you mean 'sweep'"),
    ],
)
def test_bad_entries_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        _entry(**bad)


def test_duplicate_labels_are_rejected():
    with pytest.raises(ConfigError, match="occurs twice"):
        expand([_entry(label="a_cfg_scale=2"), _entry(label="a", sweep={"sampling": {"cfg_scale": [2.0]}})])


def test_missing_inputs_name_path_and_source(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "tok.pth").write_bytes(b"x")
    runs = expand(
        [
            _entry(
                model={"name": "alitok-b", "checkpoint": "weights/b.bin", "tokenizer_checkpoint": "weights/tok.pth"}
            ),
            _entry(label="tiny", reference="embedded:val"),
        ]
    )
    inputs = [SuiteInput("weights/b.bin", "AliTok-B v1", "Google Drive id X")]
    lines = missing_inputs(runs, inputs, extra_paths=("refs/ref.npz", "fid-helper"), root=tmp_path)
    assert lines == ["missing weights/b.bin: AliTok-B v1; get it from Google Drive id X", "missing refs/ref.npz: suite"]
    assert runnable(runs[1], inputs, root=tmp_path) == []
    assert runnable(runs[0], inputs, root=tmp_path) == [lines[0]]


@pytest.mark.parametrize(
    "name",
    [
        "cfg-sweep",
        "imagenet256-gfid50k",
        "imagenet256-rfid50k",
        "imagenet256-smoke5k",
        "imagenet256-baselines-gfid50k",
        "imagenet256-baselines-rfid50k",
    ],
)
def test_shipped_suites_expand(name):
    from harness.suites.suite import get_suite

    data = config.load_yaml(SUITES / f"{name}.yaml")
    entries_from_suite_dict(data, name)
    suite = get_suite(name)  # official file names and unset checkpoints resolved into the weights root
    runs = expand(suite.entries)
    assert runs and len({r.label for r in runs}) == len(runs)
    assert len(describe(runs)) == len(runs)
    declared = {i.path for i in suite.inputs}
    # every checkpoint an entry names is a declared input, so `validate` can say where it comes from
    for r in runs:
        for p in (r.model.checkpoint, r.model.tokenizer_checkpoint, r.reference):
            assert p is None or ":" in p or p in declared, (name, p)
    if name != "cfg-sweep":  # the paper suites cannot run from a bare checkout: they must say so
        assert missing_inputs(runs, suite.inputs, (suite.reference, suite.inception), root=SUITES)


def test_cfg_sweep_has_a_cpu_part_and_a_full_part():
    runs = expand(entries_from_suite_dict(config.load_yaml(SUITES / "cfg-sweep.yaml")).entries)
    tiny = [r for r in runs if r.model.name == "alitok-tiny"]
    assert len(tiny) == 15 and all(r.model.checkpoint is None for r in tiny)
    assert {r.protocol for r in runs if r.model.name == "alitok-b"} == {"imagenet256-smoke5k"}
