"""`alitok-bench recon`: tokenizer reconstructions, rFID/PSNR/SSIM/codebook stats and a record."""

import json

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from harness.cli import main
from harness.data.embedded import natural_patches


def test_recon_embedded_record_matches_independent_psnr(tmp_path, capsys):
    out = tmp_path / "recon"
    rc = main(
        [
            "recon",
            "embedded:val:32",
            "--tokenizer",
            "alitok-tiny",
            "--out",
            str(out),
            "--per-class",
            "2",
            "--inception",
            "random:0",
            "--device",
            "cpu",
            "--no-cache",
        ]
    )
    assert rc == 0
    record = json.loads((out / "recon_record.json").read_text())
    real, _ = natural_patches("val", 32, per_class=2, seed=0)
    with np.load(out / "reconstructions.npz") as z:
        recon = z["arr_0"]
        assert z["labels"].tolist() == [i % 11 for i in range(22)]
    assert recon.shape == real.shape and recon.dtype == np.uint8
    expected = np.mean([peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(real, recon)])
    assert record["metrics"]["psnr"] == pytest.approx(expected, rel=1e-9)
    assert np.isfinite(record["metrics"]["rfid"]) and record["metrics"]["rfid"] > 0
    assert 0 < record["metrics"]["codebook_usage"] <= 1
    assert record["paper_comparable"] is False and record["kind"] == "recon"
    assert record["model"]["checkpoint_sha256"]
    assert (out / "recon_grid.png").stat().st_size > 0
    # the originals a report's grid shows beside the reconstructions: the first 2 of the first 8 classes
    assert record["samples"]["originals_npz"] == str(out / "originals.npz")
    with np.load(out / "originals.npz") as z:
        index = z["index"]
        assert index.tolist() == sorted(i for i in range(22) if i % 11 < 8)  # labels cycle 0..10
        np.testing.assert_array_equal(z["arr_0"], real[index])
        assert z["labels"].tolist() == [i % 11 for i in index]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["/no/such/source"], "source not found"),
        (["embedded:val:64"], "expected 32x32 images"),
        (["embedded:val:32", "--option", "bogus=1"], "unknown option"),
    ],
)
def test_recon_bad_input_one_line_error(tmp_path, capsys, argv, message):
    out = tmp_path / "r"
    rc = main(
        [
            "recon",
            *argv,
            "--tokenizer",
            "alitok-tiny",
            "--out",
            str(out),
            "--per-class",
            "1",
            "--inception",
            "random:0",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1
    assert not (out / "recon_record.json").exists()


def test_recon_official_tokenizer_without_weights_names_the_recon_flag(tmp_path, capsys):
    # the reported problem: the message said `--set model.checkpoint=...`, which recon does not accept
    rc = main(["recon", "embedded:val:32", "--tokenizer", "alitok", "--out", str(tmp_path / "r"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--checkpoint" in err and "--set" not in err
    from harness.cli import build_parser, recon

    _, verbs = build_parser()
    recon.add_arguments(verbs["recon"])
    assert "--checkpoint" in verbs["recon"]._option_string_actions


def test_recon_shows_a_progress_bar(tmp_path, capsys):
    rc = main(
        [
            "recon",
            "embedded:val:32",
            "--tokenizer",
            "alitok-tiny",
            "--out",
            str(tmp_path / "r"),
            "--per-class",
            "1",
            "--inception",
            "random:0",
            "--device",
            "cpu",
            "--no-cache",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0 and "reconstruct" in err and "11/11" in err


def _message_flags() -> set[tuple[str, str]]:
    """(file, flag) for every ``--flag`` in an error message (a string inside a ``raise``) of the engine
    and the model families."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    found = set()
    for package in ("harness", "alitok", "baselines"):
        for path in (root / package).rglob("*.py"):
            raises = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Raise)]
            for node in (c for r in raises for c in ast.walk(r)):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", node.value):
                        found.add((str(path.relative_to(root)), flag))
    return found


def test_every_flag_a_message_names_exists():
    import importlib

    from harness.cli import VERBS, build_parser

    _, verbs = build_parser()
    options = {"--debug", "--help", "--no-deps"}  # --no-deps: of the `pip install` command a message prints
    for verb, (module, _) in VERBS.items():
        importlib.import_module(module).add_arguments(verbs[verb])
        for action in verbs[verb]._actions:
            options.update(action.option_strings)
            if isinstance(action.choices, dict):  # sub-commands (ref-stats build|verify)
                for sub in action.choices.values():
                    for a in sub._actions:
                        options.update(a.option_strings)
    from harness.speed import ar_floor_report, gate  # modules with their own CLI (python -m harness.speed.X)

    for own in (gate, ar_floor_report):
        options.update(o for a in own.build_parser()._actions for o in a.option_strings)
    flags = _message_flags()
    assert len(flags) > 10  # the scan sees the messages
    unknown = sorted(f"{file}: {flag}" for file, flag in flags if flag not in options)
    assert not unknown, unknown
