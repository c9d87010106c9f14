"""Suites run their expanded entries: one folder and one record per label, sweep points and variants
in the record's spec, missing inputs recorded as skipped (naming the file and its source), recon
entries reconstruct; `validate SUITE` shows the expansion and what is missing."""

import json
import re

import numpy as np
import pytest

from harness.cli import main
from harness.core.config import ConfigError
from harness.fetch.store import path_of
from harness.report.collect import collect, frame
from harness.suites.suite import get_suite, run_suite, shipped_suites

SUITE = """
name: t
protocol: demo
num_samples: 11
entries:
  - label: tiny
    model: {name: alitok-tiny}
    sweep: {sampling: {cfg_scale: [1.0, 2.5]}}
  - label: floor
    model: {name: real-data}
    variant: floor-group
    sweep: {seeds: [0, 3]}
  - label: big
    model: {name: alitok-b, checkpoint: w/alitok_b.bin}
  - label: tok
    task: recon
    model: {name: alitok-tiny}
    source: "embedded:val:32"
inputs:
  - {path: w/alitok_b.bin, what: "AliTok-B weights", source: "the AliTok README"}
inception: "random:0"
"""


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    path = root / "t.yaml"
    path.write_text(SUITE)
    out = root / "out"
    lines = []
    table = run_suite(get_suite(str(path)), out, device="cpu", progress=False, root=root, echo=lines.append)
    return out, table, lines


def _rec(folder, name="run_record.json"):
    return json.loads((folder / name).read_text())


def test_each_label_gets_its_folder_and_spec_fields(suite_run):
    out, table, _ = suite_run
    assert list(table["label"]) == [
        "tiny_cfg_scale=1",
        "tiny_cfg_scale=2.5",
        "floor_seed=0",
        "floor_seed=3",
        "big",
        "tok",
    ]
    for g in (1.0, 2.5):
        rec = _rec(out / f"tiny_cfg_scale={g:g}")
        assert rec["status"] == "ok" and rec["samples"]["n"] == 11
        assert rec["spec"]["label"] == f"tiny_cfg_scale={g:g}" and rec["spec"]["sweep_point"] == {"cfg_scale": g}
        assert rec["model"]["sampling"]["cfg_scale"] == g  # the sweep value reached the sampler
    a, b = (np.load(out / f"tiny_cfg_scale={g}" / "samples.npz")["arr_0"] for g in ("1", "2.5"))
    assert not np.array_equal(a, b)  # guidance changed the pixels
    for s in (0, 3):
        rec = _rec(out / f"floor_seed={s}")
        assert rec["spec"]["protocol"]["seed"] == s and rec["spec"]["variant"] == "floor-group"
        assert rec["spec"]["sweep_point"] == {"seed": s}


def test_missing_input_is_a_skipped_record_naming_file_and_source(suite_run):
    out, table, lines = suite_run
    rec = _rec(out / "big")
    assert rec["status"] == "skipped" and rec["spec"]["label"] == "big"
    # the tokenizer the entry leaves unset is looked for in the weights root, and named with its fetch command
    assert rec["notes"] == [
        "skipped: missing w/alitok_b.bin: AliTok-B weights; get it from the AliTok README",
        f"skipped: missing {path_of('AliTok.pth')}: AliTok tokenizer v1; get it from "
        "`alitok-bench fetch AliTok.pth` (or: alitok-bench fetch --suite t)",
    ]
    assert any(line.startswith("big: skipped: missing w/alitok_b.bin") for line in lines)
    assert table.set_index("label").loc["big", "status"] == "skipped"


def test_recon_entry_reconstructs(suite_run):
    out, _, _ = suite_run
    rec = _rec(out / "tok", "recon_record.json")
    assert rec["kind"] == "recon" and rec["status"] == "ok" and rec["samples"]["n"] == 11  # num_samples limits it
    assert rec["spec"]["label"] == "tok" and 0 < rec["metrics"]["codebook_usage"] <= 1


def test_report_frame_reads_labels_and_guidance(suite_run):
    out, _, _ = suite_run
    df = frame(collect([out])).set_index("label")
    assert df.loc["tiny_cfg_scale=2.5", "guidance_scale"] == 2.5
    assert df.loc["floor_seed=3", "variant"] == "floor-group" and df.loc["floor_seed=3", "seed"] == 3


def test_only_selects_labels_and_rejects_unknown(tmp_path):
    (tmp_path / "t.yaml").write_text(SUITE)
    suite = get_suite(str(tmp_path / "t.yaml"))
    with pytest.raises(ConfigError, match="--only 'nope'"):
        run_suite(suite, tmp_path / "o", only=("nope",), root=tmp_path, echo=lambda *_: None)


def test_validate_shows_expansion_and_missing(tmp_path, capsys):
    (tmp_path / "t.yaml").write_text(SUITE)
    assert main(["validate", str(tmp_path / "t.yaml")]) == 1  # big's checkpoint is missing
    out = capsys.readouterr().out
    assert "runs (6, each into OUT/<label>/)" in out
    assert "tiny_cfg_scale=2.5: sample alitok-tiny (cfg_scale=2.5); demo N=11 seed=0" in out
    assert "big: sample alitok-b; demo N=11 seed=0  -> SKIPPED (2 missing)" in out  # + AliTok.pth, weights root
    assert "missing w/alitok_b.bin: AliTok-B weights; get it from the AliTok README" in out
    assert "get it from `alitok-bench fetch AliTok.pth` (or: alitok-bench fetch --suite t)" in out
    assert main(["validate", "demo"]) == 0
    assert re.search(r"ready: all \d+ runs have their inputs", capsys.readouterr().out)


@pytest.mark.parametrize(
    "name", ["demo", "golden", "cfg-sweep", "imagenet256-gfid50k", "imagenet256-rfid50k", "imagenet256-smoke5k"]
)
def test_shipped_suites_load_and_validate(name, capsys):
    assert name in shipped_suites()
    get_suite(name)
    rc = main(["validate", name])
    out = capsys.readouterr().out
    if name.startswith("imagenet256"):  # need ImageNet / the ADM reference / checkpoints: says which
        assert (
            rc == 1
            and f"missing {path_of('AliTok.pth')}: AliTok tokenizer v1; get it from `alitok-bench fetch "
            f"AliTok.pth` (or: alitok-bench fetch --suite {name})"
            in out
        )
    elif name == "cfg-sweep":  # the tiny part runs here, AliTok-B is skipped
        assert rc == 1 and "6 of 21 runs cannot run here" in out
    else:
        assert rc == 0


def test_bad_suite_names_the_key(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "name: s\nprotocol: demo\nentries:\n  - {label: a, model: {name: x}, sweeep: {}}\n"
    )
    with pytest.raises(ConfigError, match="sweeep"):
        get_suite(str(tmp_path / "s.yaml"))
    (tmp_path / "s.yaml").write_text(
        "name: s\nprotocol: demo\nmetrics: [fidd]\nentries:\n  - {label: a, model: {name: x}}\n"
    )
    with pytest.raises(ConfigError, match="metrics"):
        get_suite(str(tmp_path / "s.yaml"))
