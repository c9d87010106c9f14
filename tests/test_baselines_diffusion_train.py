"""The tiny diffusion trainer on harness.runs.training: a few steps of each kind write only under --out,
resume, strict config, export + plugin load, --publish, config-relative paths in the committed configs."""

import json
from pathlib import Path

import pytest
import torch

from baselines.train_diffusion import train_diffusion
from harness.core.config import ConfigError
from harness.core.io import sha256_file
from harness.runs.records import load_records

REPO = Path(__file__).resolve().parent.parent
RUN_FILES = [
    ".alitok-bench.lock",
    "config.json",
    "last.safetensors",
    "last_optim.pt",
    "log.jsonl",
    "model.safetensors",
    "train_record.json",
]


def _cfg(kind, steps=4, **over):
    return {
        "kind": kind,
        "steps": steps,
        "batch_size": 4,
        "log_every": 2,
        "ckpt_every": 2,
        "eval_every": 0,
        "model": {
            "input_size": 32,
            "patch_size": 8,
            "in_channels": 3,
            "hidden_size": 32,
            "depth": 1,
            "num_heads": 2,
            "num_classes": 11,
            "learn_sigma": kind == "ddpm",
        },
        "data": {"per_class_train": 2, "per_class_val": 1},
        "sampling": {"steps": 3, "solver": "ddim" if kind == "ddpm" else "euler", "cfg_scale": 2.0},
        "grid": {"samples_per_class": 1},
        **over,
    }


@pytest.mark.parametrize("kind", ["ddpm", "flow"])
def test_train_resume_and_export(tmp_path, kind):
    out = tmp_path / "run"
    s = train_diffusion(_cfg(kind, steps=2), out, torch.device("cpu"))
    assert s["steps"] == 2 and s["val_loss"] < s["val_loss_init"] * 10
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES + ["samples_grid.png"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing outside --out
    s2 = train_diffusion(_cfg(kind, steps=2), out, torch.device("cpu"))  # finished: export only
    assert s2["steps"] == 2
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2]
    with pytest.raises(Exception, match="different config"):
        train_diffusion(_cfg(kind, steps=3), out, torch.device("cpu"))
    from baselines.dit import dit_tiny
    from baselines.sit import flow_tiny

    gen = (dit_tiny if kind == "ddpm" else flow_tiny)(device="cpu", checkpoint=str(out / "model.safetensors"))
    img = gen.generate(torch.tensor([0, 10]), torch.Generator().manual_seed(0))
    assert img.shape == (2, 32, 32, 3) and gen.default_sampling.steps == 3
    df = load_records(tmp_path)
    assert list(df["kind"]) == ["train"] and list(df["model.name"]) == ["dit-tiny" if kind == "ddpm" else "flow-tiny"]
    assert df["metrics.val_loss_ema"].iloc[0] == pytest.approx(s2["val_loss_ema"], abs=1e-5)


def test_publish_copies_the_ema_export_and_export_null_refuses_publish_first(tmp_path):
    cfg = _cfg("flow", steps=1, grid={"samples_per_class": 0})
    with pytest.raises(ConfigError, match="--publish"):
        train_diffusion(cfg, tmp_path / "refused", torch.device("cpu"), publish=True)
    assert not (tmp_path / "refused").exists()
    dest = tmp_path / "weights" / "flow.safetensors"
    s = train_diffusion({**cfg, "export": str(dest)}, tmp_path / "run", torch.device("cpu"), publish=True)
    assert s["published"] == str(dest) and sha256_file(dest) == sha256_file(tmp_path / "run" / "model.safetensors")


def test_killed_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import baselines.train_diffusion as td
    from harness.nn.checkpoints.checkpoint import load_state_dict

    cfg = _cfg("ddpm", steps=4, grid={"samples_per_class": 0})
    train_diffusion(cfg, tmp_path / "a", torch.device("cpu"))
    real, calls = td.diffusion_loss, []

    def dies_at_third_step(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(td, "diffusion_loss", dies_at_third_step)
    with pytest.raises(KeyboardInterrupt):
        train_diffusion(cfg, tmp_path / "b", torch.device("cpu"))
    monkeypatch.setattr(td, "diffusion_loss", real)
    train_diffusion(cfg, tmp_path / "b", torch.device("cpu"))  # resumes at the step-2 checkpoint
    a, b = load_state_dict(tmp_path / "a" / "last.safetensors"), load_state_dict(tmp_path / "b" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_flow_with_learned_sigma_rejected(tmp_path):
    cfg = _cfg("flow")
    cfg["model"]["learn_sigma"] = True
    with pytest.raises(ConfigError, match="learn_sigma"):
        train_diffusion(cfg, tmp_path / "x", torch.device("cpu"))


def test_committed_configs_export_into_baselines_weights_and_leave_them_alone(tmp_path):
    from harness.cli import main

    weights = REPO / "baselines" / "weights"
    before = {p.name: sha256_file(p) for p in weights.glob("*.safetensors")}
    for name in ("train_dit_tiny.yaml", "train_flow_tiny.yaml"):
        cfg = REPO / "baselines" / "configs" / name
        assert (
            main(
                [
                    "train",
                    str(cfg),
                    "--out",
                    str(tmp_path / name),
                    "--set",
                    "steps=1",
                    "--set",
                    "batch_size=2",
                    "--set",
                    "data.per_class_train=1",
                    "--set",
                    "data.per_class_val=1",
                    "--set",
                    "eval_every=0",
                    "--set",
                    "grid.samples_per_class=0",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    assert {p.name: sha256_file(p) for p in weights.glob("*.safetensors")} == before
    from harness.core.config import load_yaml
    from harness.runs.training import resolve_config_paths

    for name in ("train_dit_tiny.yaml", "train_flow_tiny.yaml"):
        cfg = REPO / "baselines" / "configs" / name
        export = resolve_config_paths(load_yaml(cfg), cfg.parent, ["export"])["export"]
        assert Path(export).parent == weights and Path(export).is_file()
