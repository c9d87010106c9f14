"""A researcher's first hour at the command line (issue 24): finding suites, pointing them at one's own
weights, validate's verdicts, eval's one line, --json everywhere, one dtype vocabulary. Each test failed
before its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

SUITES_DIR = Path(__file__).resolve().parent.parent / "harness" / "suites"


def test_list_suites_names_every_shipped_suite_with_its_description(capsys):
    from harness.core import config

    assert main(["list", "suites"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shipped = sorted(SUITES_DIR.glob("*.yaml"))
    assert len(shipped) >= 6  # cfg-sweep, demo, golden, imagenet256-{gfid50k,rfid50k,smoke5k}
    for path in shipped:
        description = config.load_yaml(path)["description"]
        assert any(line.split() and line.split()[0] == path.stem and description in line for line in lines), path.stem
    assert main(["list", "suites", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["suites"]
    assert {p.stem for p in shipped} <= set(data)


# ---- pointing suites at your own weights -------------------------------------------------------------
def test_suite_set_per_entry_by_position_and_by_label(tmp_path):
    from harness.suites.suite import get_suite

    mine_b, mine_l = str(tmp_path / "my_b.bin"), str(tmp_path / "my_l.bin")
    suite = get_suite(
        "imagenet256-gfid50k", [f"entries.0.model.checkpoint={mine_b}", f"alitok-l.model.checkpoint={mine_l}"]
    )
    by_label = {e.label: e for e in suite.entries}
    assert by_label["alitok-b"].model.checkpoint == mine_b and by_label["alitok-l"].model.checkpoint == mine_l
    assert by_label["alitok-xl"].model.checkpoint.endswith("alitok_xl.bin")  # the others keep the official file


def test_config_set_refuses_an_index_past_the_list():
    from harness.core.config import ConfigError, apply_overrides

    assert apply_overrides({"e": [{"a": 1}, {"a": 2}]}, ["e.1.a=5"]) == {"e": [{"a": 1}, {"a": 5}]}
    with pytest.raises(ConfigError, match="takes an index 0..1"):
        apply_overrides({"e": [{"a": 1}, {"a": 2}]}, ["e.2.a=5"])


def test_suite_set_model_checkpoint_points_to_the_per_entry_forms(capsys):
    assert main(["validate", "imagenet256-gfid50k", "--set", "model.checkpoint=x.bin"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--set entries.0.model.checkpoint=x.bin" in err and "--set alitok-b.model.checkpoint=x.bin" in err


def test_weights_root_flag_resolves_every_official_name(tmp_path, monkeypatch, capsys):
    from harness.fetch.store import WEIGHTS_ENV

    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "elsewhere"))  # the flag wins over the variable
    root = tmp_path / "mine"
    root.mkdir()
    (root / "alitok_b.bin").write_bytes(b"")  # present: no longer listed as missing
    assert main(["validate", "imagenet256-gfid50k", "--weights-root", str(root)]) == 1
    missing = [line for line in capsys.readouterr().out.splitlines() if line.startswith("missing ")]
    assert missing and all(line.startswith(f"missing {root}/") for line in missing), missing
    assert not any("alitok_b.bin" in line for line in missing)


def test_validate_footer_drops_a_declared_input_a_set_replaced(tmp_path, capsys):
    images = tmp_path / "imagenet"
    (images / "val").mkdir(parents=True)
    main(["validate", "imagenet256-rfid50k", "--set", f"alitok-tokenizer.source={images}"])
    out = capsys.readouterr().out
    assert "missing data/imagenet" not in out and f"source {images}" in out


# ---- validate's verdicts --------------------------------------------------------------------------------
def test_validate_unknown_model_exits_nonzero_with_did_you_mean(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: {name: alitok-tny}\nprotocol: demo\n")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown generator 'alitok-tny'" in err and "'alitok-tiny'" in err


def test_validate_mistyped_protocol_name_says_unknown_protocol(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: {name: alitok-tiny}\nprotocol: {name: dmo}\n")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown protocol 'dmo'; did you mean 'demo'?" in err
    assert "error: " + str(spec) + ": protocol.name:" in err  # the name first, not "protocol.num_samples"


# ---- one dtype vocabulary, help texts ---------------------------------------------------------------------
def _verb_parser(verb):
    import importlib

    from harness.cli import VERBS, build_parser

    _, verbs = build_parser()
    importlib.import_module(VERBS[verb][0]).add_arguments(verbs[verb])
    return verbs[verb]


@pytest.mark.parametrize("verb", ["sample", "run", "validate"])
def test_dtype_vocabulary_is_one_and_tf32_is_a_deprecated_alias(verb, capsys):
    base = {"sample": ["--out", "o"], "run": ["demo"], "validate": ["demo"]}[verb]
    p = _verb_parser(verb)
    args = p.parse_args(base + ["--dtype", "tf32"])
    assert (args.dtype, args.tf32) == ("fp32", True)
    assert capsys.readouterr().err == ""
    args = p.parse_args(base + ["--tf32"])
    assert (args.dtype, args.tf32) == ("fp32", True)
    assert capsys.readouterr().err.count("deprecated") == 1
    args = p.parse_args(base + ["--dtype", "bf16"])
    assert (args.dtype, args.tf32) == ("bf16", False)
    choices = next(a.choices for a in p._actions if "--dtype" in a.option_strings)
    bench_choices = next(a.choices for a in _verb_parser("bench")._actions if "--dtype" in a.option_strings)
    assert list(choices) == ["fp32", "tf32", "bf16", "fp16"] and set(bench_choices) <= set(choices)


def test_every_option_has_help_and_no_default_is_shown_twice():
    import argparse
    import re

    from harness.cli import VERBS

    for verb in VERBS:
        p = _verb_parser(verb)
        subparsers = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        parsers = [p] + [sp for a in subparsers for sp in a.choices.values()]
        for parser in parsers:
            for a in parser._actions:
                if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) or a.help == argparse.SUPPRESS:
                    continue
                assert a.help, (verb, a.option_strings or a.dest)
            text = " ".join(parser.format_help().split())
            assert not re.search(r"\(default:? [^()]*\)\s*\(default", text), (verb, text)


# ---- eval A B: one line, a documented default location ------------------------------------------------------
@pytest.fixture
def stub_world(tmp_path, monkeypatch):
    """Two npz sets of 8 px images and the stub feature network (tests/test_faults.py), so eval takes a second."""
    import numpy as np
    from test_faults import StubExtractor, stub_weights

    from harness.data.npz import save_samples_npz
    from harness.metrics import evaluate as evaluate_mod
    from harness.metrics import inception as inception_mod

    monkeypatch.setattr(evaluate_mod, "resolve_weights", stub_weights)
    monkeypatch.setattr(evaluate_mod, "InceptionExtractor", StubExtractor)
    monkeypatch.setattr(inception_mod, "InceptionExtractor", StubExtractor)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    a = save_samples_npz(inputs / "a.npz", rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8))
    b = save_samples_npz(inputs / "b.npz", rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return {"a": a, "b": b, "inputs": inputs, "work": work}


@pytest.mark.parametrize("metrics", [[], ["--metrics", "fid"]])
def test_eval_prints_one_line_with_the_spread_and_records_under_runs_eval(stub_world, metrics, capsys):
    w = stub_world
    assert main(["eval", str(w["a"]), str(w["b"]), "--inception", "stub:0", "--no-cache", *metrics]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1, out
    (path,) = (w["work"] / "runs" / "eval").glob("eval_record*.json")
    assert not list(w["inputs"].glob("eval_record*"))  # never beside an input
    rec = json.loads(path.read_text())
    spread = rec["uncertainty"]["fid"]["std"]  # kept with --metrics fid alone too
    import re

    shown = re.match(r"FID: ([0-9.]+) ± ([0-9.]+)  ", out)
    assert shown, out
    # printed with 2 decimals (>= 10) or 4: within half a unit of the coarser, 0.005
    assert abs(float(shown[1]) - rec["metrics"]["fid"]) <= 0.005 and abs(float(shown[2]) - spread) <= 0.005
    assert "N=40/30" in out and "weights: random pool3" in out and "not paper-comparable" in out
    assert rec["protocol_findings"]  # the guard block lives in the record


def test_eval_verbose_prints_the_guard_block_and_the_record(stub_world, capsys):
    w = stub_world
    argv = ["eval", str(w["a"]), str(w["b"]), "--inception", "stub:0", "--no-cache", "--verbose"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "FATAL fewer-than-50k" in out and "record: " + str(w["work"] / "runs" / "eval") in out


# ---- --json on every verb that prints results -------------------------------------------------------------------
JSON_VERBS = [
    ("list",),
    ("validate",),
    ("sample",),
    ("run",),
    ("eval",),
    ("ref-stats", "verify"),
    ("recon",),
    ("train",),
    ("claims",),
    ("ablate",),
    ("compare",),
    ("cache", "list"),
    ("bench",),
    ("report",),
    ("fetch",),
]


@pytest.mark.parametrize("verb", JSON_VERBS, ids=lambda v: " ".join(v))
def test_every_result_printing_verb_takes_json(verb):
    import argparse

    p = _verb_parser(verb[0])
    if len(verb) > 1:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[verb[1]]
    assert any("--json" in a.option_strings for a in p._actions)


def test_compare_json_is_one_document_with_every_check(tmp_path, capsys):
    from test_compare import _rec, _write

    base = _write(tmp_path / "base", [_rec("a", 10.0, 100.0)])
    new = _write(tmp_path / "new", [_rec("a", 10.5, 100.0)])  # +5 %: the fid gate fails
    gates = ["--fail", "fid:+2%", "--fail", "images_per_s:-10%"]
    assert main(["compare", str(base), str(new), *gates, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False and len(doc["checks"]) == 2
    fid = next(c for c in doc["checks"] if c["metric"] == "fid")
    assert (fid["base"], fid["new"], fid["passed"]) == (10.0, 10.5, False)


def test_claims_json_lists_every_claim(capsys):
    from harness.cli.claims import default_claims_files
    from harness.report.claims import load_claims

    assert main(["claims", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    files = default_claims_files()  # every paper's file, alitok.yaml first
    assert doc["claims"] == [str(p) for p in files]
    assert [v["id"] for v in doc["verdicts"]] == [c.id for p in files for c in load_claims(p).claims]
    assert all(v["measured"] is None for v in doc["verdicts"])  # no results given: nothing measured


def test_validate_suite_json_names_each_run_and_what_it_lacks(tmp_path, capsys):
    from harness.suites.entries import expand
    from harness.suites.suite import get_suite

    assert main(["validate", "imagenet256-gfid50k", "--weights-root", str(tmp_path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in doc["runs"]] == [r.label for r in expand(get_suite("imagenet256-gfid50k").entries)]
    assert doc["ready"] is False and all(r["missing"] for r in doc["runs"])


ABLATION = Path(__file__).resolve().parent.parent / "alitok" / "configs" / "ablation.yaml"


def test_ablate_plan_prints_a_table_of_every_job_and_json_on_request(tmp_path, capsys):
    from harness.suites import ablation

    jobs = ablation.plan(ablation.load_suite(ABLATION, "tiny"), tmp_path / "run")
    argv = ["ablate", str(ABLATION), "--preset", "tiny", "--out", str(tmp_path / "run"), "--plan"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # a table for people
    for j in jobs:  # every job has its row, none cut
        assert f"{j.row}" in text and str(j.out) in text
    assert f"of {sum(j.stage != 'eval' for j in jobs)} training jobs in all" in text
    assert main(argv + ["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["job_list"]) == doc["jobs"] == len(jobs)
    assert str(len(doc["commands"])) in doc["commands_scope"]


# ---- a tidy summary frame ----------------------------------------------------------------------------------------
def test_summary_frame_is_label_first_with_metrics_and_their_spread(tmp_path):
    from harness import api
    from harness.runs.records import RunRecord, write_record

    spreads = {"fid": {"std": 0.25, "method": "disjoint-subsets(k=10,seed=0)"}}
    for label, fid in (("a", 10.0), ("b", 12.5)):
        rec = RunRecord(
            kind="eval",
            model={"name": f"model-{label}"},
            spec={"label": label, "protocol": {"name": "demo", "num_samples": 220}},
            samples={"n": 220},
            metrics={"fid": fid, "prec": 0.5},
            uncertainty=spreads,
        )
        write_record(rec, tmp_path / label)
    wide = api.load_records(tmp_path)
    tidy = api.summary_frame(tmp_path)
    assert list(tidy.columns[:5]) == ["label", "model", "kind", "protocol", "N"]
    assert list(tidy.columns[5:9]) == ["fid", "fid_spread", "prec", "prec_spread"]  # only metrics some record has
    assert list(tidy.columns[9:]) == ["paper_comparable", "status", "record_path"]
    assert list(tidy["label"]) == ["a", "b"] and list(tidy["model"]) == ["model-a", "model-b"]
    by_path = dict(zip(wide["record_path"], wide["metrics.fid"]))
    assert [by_path[p] for p in tidy["record_path"]] == list(tidy["fid"])
    assert list(tidy["fid_spread"]) == [0.25, 0.25] and list(tidy["N"]) == [220, 220]


# ---- the field's own tools in this environment ---------------------------------------------------------------------
def _with_site(site, body: str, *args: str):
    """``body`` in a fresh interpreter started with -S (no .pth of this venv processed, so the bare case is bare
    even where `make setup` installed the shim), site-packages on the path, then ``site`` added as a site folder
    (its .pth files processed as at start-up)."""
    import os
    import subprocess
    import sys
    import sysconfig

    code = "import sys, site; sys.path.append(sys.argv.pop(2)); site.addsitedir(sys.argv[1])\n" + body
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    purelib = sysconfig.get_paths()["purelib"]  # this venv's site-packages, added without processing its .pth files
    return subprocess.run(
        [sys.executable, "-S", "-c", code, str(site), purelib, *args], capture_output=True, text=True, env=env
    )


def test_torch_fidelity_cli_runs_in_this_environment_with_the_pth(tmp_path):
    """``fidelity --help`` (torch-fidelity's console script) imports torchvision without harness first. A site
    folder holding the .pth that `make setup` installs makes it work; without it the same command dies on the
    torchvision import (the bug)."""
    from harness.core import _tv_shim

    site = tmp_path / "site"
    site.mkdir()
    body = "sys.argv = ['fidelity', '--help']\nfrom torch_fidelity.fidelity import main\nmain()"
    bare = _with_site(site, body)
    path = _tv_shim.install_pth(str(site))
    fixed = _with_site(site, body)
    assert fixed.returncode == 0 and "--gpu" in fixed.stdout, fixed.stderr[-2000:]
    assert Path(path).name == "alitok_bench_tv_shim.pth"
    if bare.returncode == 0:  # a machine whose torchvision matches torch needs no shim
        pytest.skip("torchvision imports here without the shim")
    assert "torchvision::nms" in bare.stderr


def test_the_pth_shim_outlives_a_garbage_collection_with_harness_imported(tmp_path):
    """The .pth's standalone module owns the ops it defines (its torch.library.Library): when nothing held that
    module, a later garbage collection dropped the Library and the ops with it, and diffusers' AutoencoderKL
    import died mid-process on 'operator torchvision::nms does not exist' (`make fair-ratios` did)."""
    from harness.core import _tv_shim

    site = tmp_path / "site"
    site.mkdir()
    _tv_shim.install_pth(str(site))
    body = (
        "import harness, gc, torchvision\ngc.collect()\nimport torch\ntorch.ops.torchvision.nms\n"
        "from diffusers import AutoencoderKL\nprint('imported', AutoencoderKL.__name__)"
    )
    r = _with_site(site, body)
    assert r.returncode == 0 and "imported AutoencoderKL" in r.stdout, r.stderr[-2000:]


# ---- mixed image sizes: refused by default, explicit resizes on request -----------------------------------------------
def _png_folder(folder, sizes, seed):
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(seed)
    arrays = []
    for i, size in enumerate(sizes):
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"{i:03d}.png")
        arrays.append(a)
    return arrays


def test_clean_resize_is_clean_fids_rounded_to_uint8():
    import numpy as np
    from cleanfid.resize import make_resizer

    from harness.data.resize import resize_image

    img = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    theirs = make_resizer("PIL", False, "bicubic", (299, 299))(img)  # float32, as clean-fid feeds Inception
    ours = resize_image(img, "clean", 299)
    assert ours.dtype == np.uint8 and ours.shape == (299, 299, 3)
    assert np.abs(ours.astype(np.float64) - theirs).max() <= 0.5  # only the rounding to uint8 differs


def test_mixed_sizes_are_refused_naming_the_resize_option(stub_world, capsys):
    w = stub_world
    _png_folder(w["inputs"] / "mixed", [8] * 5 + [12] * 5, seed=1)
    assert main(["eval", str(w["inputs"] / "mixed"), str(w["b"]), "--inception", "stub:0", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert "differs from" in err and "--resize clean|center-crop" in err


def test_resize_center_crop_evaluates_mixed_sizes_as_adm_would_crop_them(stub_world, capsys):
    import numpy as np
    from PIL import Image
    from test_faults import StubExtractor

    from harness.data.imagenet import center_crop_arr
    from harness.metrics.evaluate import EvalOptions, evaluate_samples
    from harness.metrics.refstats import reference_from_source

    w = stub_world
    samples = _png_folder(w["inputs"] / "mixed", [8] * 12 + [12] * 12, seed=1)
    refs = _png_folder(w["inputs"] / "ref", [16] * 20, seed=2)
    argv = ["eval", str(w["inputs"] / "mixed"), str(w["inputs"] / "ref"), "--inception", "stub:0", "--no-cache"]
    assert main(argv + ["--resize", "center-crop", "--resize-size", "8", "--metrics", "fid", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # the same numbers from images cropped here by ADM's center_crop_arr, through the library
    crop = lambda arrays: np.stack([center_crop_arr(Image.fromarray(a), 8) for a in arrays])  # noqa: E731
    ex = StubExtractor()
    ref = reference_from_source(crop(refs), ex, cache=False, progress=False, description="ref")
    direct = evaluate_samples(crop(samples), ref, EvalOptions(metrics=("fid",), inception=ex, cache=False))
    assert doc["metrics"]["fid"] == pytest.approx(direct.metrics["fid"], rel=1e-9)
    assert doc["provenance"]["input_resize"] == {"mode": "center-crop", "size": 8}
    assert doc["paper_comparable"] is False and any("--resize center-crop" in m for m in doc["warnings"])


@pytest.mark.parametrize("verb, base", [("sample", ["--out", "o"]), ("run", ["demo"]), ("eval", ["a.npz", "b.npz"])])
def test_quiet_is_spelled_the_same_on_every_verb_with_progress_bars(verb, base):
    p = _verb_parser(verb)
    quiet = p.parse_args(base + ["--quiet"])
    assert vars(quiet) != vars(p.parse_args(base))  # the flag exists and changes something
    assert vars(quiet) == vars(p.parse_args(base + ["--no-progress"]))  # the old spelling still works
