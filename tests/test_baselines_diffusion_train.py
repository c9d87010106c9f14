"""The tiny diffusion trainer: a few steps of each kind, resume, strict config, export + plugin load."""
import json

import pytest
import torch

from harness.config import ConfigError

from baselines.train_diffusion import train_diffusion


def _cfg(kind, tmp_path, steps=4):
    return {"kind": kind, "steps": steps, "batch_size": 4, "log_every": 2, "ckpt_every": 2, "eval_every": 0,
            "model": {"input_size": 32, "patch_size": 8, "in_channels": 3, "hidden_size": 32, "depth": 1,
                      "num_heads": 2, "num_classes": 11, "learn_sigma": kind == "ddpm"},
            "data": {"per_class_train": 2, "per_class_val": 1},
            "sampling": {"steps": 3, "solver": "ddim" if kind == "ddpm" else "euler", "cfg_scale": 2.0},
            "export": {"weights": str(tmp_path / f"{kind}.safetensors")}}


@pytest.mark.parametrize("kind", ["ddpm", "flow"])
def test_train_resume_and_export(tmp_path, kind):
    out = tmp_path / "run"
    s = train_diffusion(_cfg(kind, tmp_path, steps=2), out, torch.device("cpu"))
    assert s["steps"] == 2 and s["val_loss"] < s["val_loss_init"] * 10
    s2 = train_diffusion(_cfg(kind, tmp_path, steps=2), out, torch.device("cpu"))  # finished: export only
    assert s2["steps"] == 2
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2]
    with pytest.raises(Exception, match="different config"):
        train_diffusion(_cfg(kind, tmp_path, steps=3), out, torch.device("cpu"))
    from baselines.dit import dit_tiny
    from baselines.sit import flow_tiny

    gen = (dit_tiny if kind == "ddpm" else flow_tiny)(device="cpu", checkpoint=str(tmp_path / f"{kind}.safetensors"))
    img = gen.generate(torch.tensor([0, 10]), torch.Generator().manual_seed(0))
    assert img.shape == (2, 32, 32, 3) and gen.default_sampling.steps == 3


def test_killed_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from harness.nn.checkpoint import load_state_dict

    import baselines.train_diffusion as td

    cfg = _cfg("ddpm", tmp_path, steps=4)
    cfg["export"] = {}
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
    cfg = _cfg("flow", tmp_path)
    cfg["model"]["learn_sigma"] = True
    with pytest.raises(ConfigError, match="learn_sigma"):
        train_diffusion(cfg, tmp_path / "x", torch.device("cpu"))
