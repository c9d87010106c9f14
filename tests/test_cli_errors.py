"""Bad input -> one line on stderr, exit 2, nothing half-written."""

from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.core.locks import LOCK_NAME

SMALL = [
    "--model",
    "real-data",
    "--protocol",
    "demo",
    "--num-samples",
    "22",
    "--chunk-size",
    "11",
    "--set",
    "model.options.per_class=4",
    "--no-progress",
    "--device",
    "cpu",
]


def _run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _one_line(err):
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def _files(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize(
    "setting, match",
    [
        ("protocol.num_sampels=5", "protocol.num_sampels: unknown key; did you mean 'num_samples'"),
        ("protocol.seed=abc", "protocol.seed: expected an integer"),
        ("model.options.colour=red", "model.options.colour: generator 'real-data' does not take"),
        ("model.sampling.cfg_scale=2", "model.sampling.cfg_scale: generator 'real-data' has no sampling parameters"),
        ("protocol.seed_scheme=random", "protocol.seed_scheme: 'random' is not one of"),
    ],
)
def test_bad_config_one_line_nothing_written(tmp_path, capsys, setting, match):
    out = tmp_path / "out"
    code, err = _run(capsys, "sample", *SMALL, "--set", setting, "--out", str(out))
    assert code == 2 and match in _one_line(err)
    assert _files(out) == []


def test_spec_yaml_unknown_key(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: {name: real-data}\nprotocol: {name: demo, chunk_sise: 3}\n")
    code, err = _run(capsys, "validate", str(spec))
    assert code == 2 and f"{spec}: protocol.chunk_sise: unknown key; did you mean 'chunk_size'" in _one_line(err)


def test_unknown_model_and_protocol(tmp_path, capsys):
    code, err = _run(capsys, "sample", "--model", "real-dta", "--protocol", "demo", "--out", str(tmp_path / "o"))
    assert code == 2 and "did you mean 'real-data'" in _one_line(err)
    code, err = _run(capsys, "sample", "--model", "real-data", "--protocol", "dmeo", "--out", str(tmp_path / "o"))
    assert code == 2 and "did you mean 'demo'" in _one_line(err)


def test_missing_dataset_folder(tmp_path, capsys):
    missing = tmp_path / "no-imagenet"
    code, err = _run(capsys, "sample", *SMALL, "--set", f"model.options.root={missing}", "--out", str(tmp_path / "o"))
    assert code == 2 and f"{missing}: dataset folder not found" in _one_line(err)


def test_corrupt_png_in_dataset_named(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "imgs"
    for c in range(11):
        (root / "val" / f"n{c:02d}").mkdir(parents=True)
        Image.fromarray(np.full((40, 40, 3), c * 20, np.uint8)).save(root / "val" / f"n{c:02d}" / "ok.png")
    (root / "val" / "n03" / "ok.png").unlink()  # class 3 holds only the corrupt file: any pick hits it
    bad = root / "val" / "n03" / "zz_bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
    out = tmp_path / "o"
    code, err = _run(capsys, "sample", *SMALL, "--set", f"model.options.root={root}", "--out", str(out))
    assert code == 2 and "zz_bad.png" in _one_line(err) and "cannot read image" in _one_line(err)
    assert not (out / "samples.npz").exists()
    assert not [f for f in _files(out) if f.endswith(".tmp")]


def _outputs(out: Path) -> dict:
    """Every file a run wrote, except the lock: each run that takes the lock (a refused one too, since it
    must hold it before reading spec.json) rewrites the holder record, whose time has 1 s resolution."""
    return {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def test_folder_made_by_another_spec_refused_then_forced(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sample", *SMALL, "--out", str(out)]) == 0
    before = _outputs(out)
    assert out / "samples.npz" in before and out / "spec.json" in before
    code, err = _run(capsys, "sample", *SMALL, "--seed", "9", "--out", str(out))
    assert code == 2 and "made by a different spec" in _one_line(err) and "--force" in _one_line(err)
    assert _outputs(out) == before
    assert main(["sample", *SMALL, "--seed", "9", "--out", str(out), "--force"]) == 0
    assert (out / "samples.npz").read_bytes() != before[out / "samples.npz"]


def test_shards_without_spec_refused(tmp_path, capsys):
    out = tmp_path / "o"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / "chunk_00000.npz").write_bytes(b"x")
    code, err = _run(capsys, "sample", *SMALL, "--out", str(out))
    assert code == 2 and "holds shards but no spec.json" in _one_line(err)


def test_wrong_image_size_for_protocol(tmp_path, capsys):
    code, err = _run(capsys, "sample", *SMALL, "--set", "model.options.image_size=64", "--out", str(tmp_path / "o"))
    assert code == 2 and "makes 64 px images but protocol 'demo' wants 32 px" in _one_line(err)


def test_legacy_rank_indivisible_count(tmp_path, capsys):
    code, err = _run(capsys, "sample", *SMALL, "--seed-scheme", "legacy_rank", "--out", str(tmp_path / "o"))
    assert code == 2 and "legacy_rank needs num_samples divisible by" in _one_line(err)


def test_model_option_of_the_wrong_type_is_one_line_exit_2(tmp_path, capsys):
    """`--set model.options.per_class=abc` names the option and its type, before any sampling."""
    from harness.cli import main

    rc = main(
        [
            "sample",
            "--model",
            "real-data",
            "--protocol",
            "demo",
            "--out",
            str(tmp_path / "s"),
            "--num-samples",
            "22",
            "--set",
            "model.options.per_class=abc",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "model.options.per_class: 'abc' is not of type int" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "samples.npz").exists()
