"""What a new user hit at the command line: start-up imports, --help, list --json, validate without
weights, empty checkpoints, bad devices. Each test failed before its fix."""

import json
import subprocess
import sys

import pytest
import torch

from harness.cli import main

PY = sys.executable


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [PY, "-c", code + "\nimport sys, json; print('MODULES:' + json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("MODULES:"))
    return set(json.loads(line.removeprefix("MODULES:")))


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["list", "metrics", "--json"], ["list", "protocols"]])
def test_help_and_list_do_not_import_torch(argv):
    code = "import sys; from harness.cli import main\ntry:\n    main(" + repr(argv) + ")\nexcept SystemExit:\n    pass"
    mods = _modules_after(code)
    heavy = {
        m for m in mods if m.split(".")[0] in ("torch", "torchvision", "torch_fidelity", "timm", "alitok", "numpy")
    }
    assert "harness" in mods and not heavy, sorted(heavy)[:5]


def test_python_m_harness_help_does_not_import_torch():
    code = (
        "import runpy, sys; sys.argv = ['harness', '--help']\n"
        "try:\n    runpy.run_module('harness', run_name='__main__')\nexcept SystemExit:\n    pass"
    )
    assert "torch" not in _modules_after(code)


def test_torchvision_still_imports_after_import_harness():
    """The shim arms itself on import harness and installs on torchvision's first import."""
    code = "import harness, torchvision.models, torch; assert torch.ops.torchvision.nms is not None"
    subprocess.run([PY, "-c", code], check=True, capture_output=True)


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = capsys.readouterr().out
    assert "(default: auto)" in text and "(default: fp32)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_list_json_is_one_document_on_stdout(capsys):
    assert main(["list", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)  # the whole of stdout parses: nothing else was printed there
    assert {"generators", "metrics", "protocols", "suites"} <= set(data)
    from harness.metrics import table

    for entry in table.TABLE:
        fields = data["metrics"][entry.name]
        assert fields["needs_reference_images"] == entry.needs_reference_images
        assert fields["needs_logits"] == entry.needs_logits and fields["features"] == entry.features
    assert data["protocols"]["imagenet256-gfid50k"]["help"].startswith("gFID")


def test_list_protocols_shows_descriptions(capsys):
    assert main(["list", "protocols"]) == 0
    out = capsys.readouterr().out
    from harness.runs.protocols import get_protocol

    assert "imagenet256-rfid50k" in out and "center_crop_arr" in out
    assert get_protocol("imagenet256-gfid50k").num_samples == 50_000


def test_unknown_protocol_one_line(tmp_path, capsys):
    rc = main(["sample", "--model", "real-data", "--protocol", "imagenet256-gfid5k", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "did you mean 'imagenet256-gfid50k'" in err


# -- validate plans without weights -------------------------------------------------------------------


def _write_spec(tmp_path, text):
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return p


def test_validate_reads_no_weights_and_matches_the_real_identity(tmp_path, capsys, monkeypatch):
    """validate's identity hash equals the one a real build gives, with every weights reader disabled."""
    from harness.runs.protocols import get_protocol
    from harness.runs.specs import ModelSpec, RunSpec, numerics
    from harness.sampling.runner import build_generator, resolve

    real = resolve(
        RunSpec(ModelSpec("alitok-tiny"), get_protocol("demo")),
        build_generator(ModelSpec("alitok-tiny"), torch.device("cpu")),
        numerics(),
    ).identity_hash

    import safetensors.torch

    def no_weights(*a, **k):
        raise AssertionError("validate read checkpoint weights")

    real_load = torch.load
    monkeypatch.setattr(safetensors.torch, "load_file", no_weights)
    monkeypatch.setattr(
        torch, "load", lambda *a, **k: real_load(*a, **k) if k.get("map_location") == "meta" else no_weights()
    )
    spec = _write_spec(tmp_path, "model: alitok-tiny\nprotocol: demo\n")
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert f"sampling identity hash: {real}" in out


def test_validate_plans_a_50k_run_with_missing_checkpoints(tmp_path, capsys):
    spec = _write_spec(
        tmp_path,
        "model: {name: alitok-xl, checkpoint: /nowhere/alitok_xl.bin, "
        "tokenizer_checkpoint: /nowhere/AliTok.pth}\nprotocol: imagenet256-gfid50k\n",
    )
    assert main(["validate", str(spec), "--world-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "model.checkpoint: /nowhere/alitok_xl.bin (MISSING" in out
    assert "model.tokenizer_checkpoint: /nowhere/AliTok.pth (MISSING" in out
    assert "rank 7: 7..399 step 8 (50 chunks), 6250 samples" in out
    assert "1000 classes, 50..50 per class (balanced)" in out


def test_planning_loads_shapes_only(tmp_path):
    from harness.nn.checkpoints.checkpoint import load_state_dict, load_strict, planning, save_safetensors

    lin = torch.nn.Linear(3, 2)
    p = save_safetensors(tmp_path / "lin.safetensors", lin.state_dict())
    q = tmp_path / "lin.pth"
    torch.save(lin.state_dict(), q)
    with planning():
        for path in (p, q):
            sd = load_state_dict(path)
            assert sd["weight"].device.type == "meta" and sd["weight"].shape == (2, 3)
            model = load_strict(lambda: torch.nn.Linear(3, 2, device="meta"), sd, path, "linear")
            assert model.weight.device.type == "meta"
        with pytest.raises(Exception, match="shape mismatches"):  # shapes are still checked strictly
            load_strict(lambda: torch.nn.Linear(4, 2, device="meta"), load_state_dict(p), p, "linear")
    assert torch.equal(load_state_dict(p)["weight"], lin.weight.detach())  # outside: real tensors again


# -- errors: one line, exit 2 ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".bin"])
def test_empty_checkpoint_one_line(tmp_path, capsys, suffix):
    """A zero-byte checkpoint used to crash with IndexError from the error formatter."""
    from harness.nn.checkpoints.checkpoint import CheckpointError, load_state_dict

    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        load_state_dict(empty)
    rc = main(
        [
            "sample",
            "--model",
            "alitok-tiny",
            "--protocol",
            "demo",
            "--out",
            str(tmp_path / "o"),
            "--num-samples",
            "11",
            "--device",
            "cpu",
            "--no-progress",
            "--set",
            f"model.checkpoint={empty}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and f"empty{suffix}: empty file" in err


def test_empty_inception_weights_one_line(tmp_path, capsys):
    from harness.data.npz import save_samples_npz

    empty = tmp_path / "pt_inception.pth"
    empty.write_bytes(b"")
    import numpy as np

    s = save_samples_npz(tmp_path / "s.npz", np.zeros((4, 32, 32, 3), np.uint8))
    np.savez(tmp_path / "r.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    rc = main(["eval", str(s), "--ref", str(tmp_path / "r.npz"), "--inception", str(empty), "--metrics", "fid"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "pt_inception.pth" in err


def test_bad_device_one_line(tmp_path, capsys):
    rc = main(
        [
            "sample",
            "--model",
            "real-data",
            "--protocol",
            "demo",
            "--out",
            str(tmp_path / "o"),
            "--device",
            "tpu",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "--device 'tpu'" in err


def test_input_value_errors_are_user_errors():
    from harness.core import devices
    from harness.core.errors import UserError
    from harness.data import embedded
    from harness.runs.specs import ProtocolSpec

    for call in (
        lambda: devices.resolve_dtype("fp8"),
        lambda: devices.resolve_device("tpu"),
        lambda: embedded.natural_patches("test"),
        lambda: embedded.natural_patches("val", 33),
        lambda: embedded.load_photo("moon"),
        lambda: ProtocolSpec("x", 0, 10, 32),
    ):
        with pytest.raises(UserError):
            call()


def test_suite_metric_typo_fails_before_sampling(tmp_path, capsys):
    rc = main(["run", "demo", "--out", str(tmp_path / "o"), "--set", "metrics=[fid,kdi]", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "unknown metric 'kdi'; did you mean 'kid'" in err
    assert not (tmp_path / "o").exists()


def test_validate_stops_on_a_corrupt_checkpoint(tmp_path, capsys):
    """A checkpoint that exists but is not one fails validate (exit 2), before any run is queued."""
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    spec = _write_spec(tmp_path, f"model: {{name: alitok-tiny, checkpoint: {bad}}}\nprotocol: demo\n")
    rc = main(["validate", str(spec)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "bad.safetensors: not a readable safetensors file" in err
