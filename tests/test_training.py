"""The engine's training infrastructure (harness.runs.training) and the train verb as a new user meets it:
the schedule's closed forms, nothing written outside --out without --publish, config paths against
the config's folder, inputs checked before the first step, one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from cli_runs import max_weight_diff, python
from micro_configs import MICRO_TOKENIZER

from harness.cli import main
from harness.core.io import sha256_file
from harness.runs.training import OptimConfig, lr_at, resolve_config_paths

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "alitok" / "configs"


def test_schedule_closed_forms():
    const = OptimConfig(lr=2e-3, warmup_steps=4)
    assert [lr_at(s, 10, const) for s in (0, 3, 4, 9)] == pytest.approx([5e-4, 2e-3, 2e-3, 2e-3])
    cos = OptimConfig(lr=1.0, warmup_steps=2, schedule="cosine", end_lr=0.1)
    for step in (2, 5, 8, 12):
        t = min(1.0, (step - 2) / 8)
        assert lr_at(step, 10, cos) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * t)))
    assert lr_at(6, 10, cos) == pytest.approx(0.55)  # half way: the mean of lr and end_lr


def test_config_paths_resolve_against_the_config_folder(tmp_path):
    data = {
        "init_from": "../runs/s1.safetensors",
        "export": "/abs/x",
        "model_config": None,
        "decode_tokenizer": "tiny",
        "nested": {"path": "w.bin"},
    }
    out = resolve_config_paths(
        data,
        tmp_path / "cfg",
        ["init_from", "export", "model_config", "decode_tokenizer", "nested.path", "missing.key"],
        keep=["tiny"],
    )
    assert out == {
        "init_from": str(tmp_path / "runs/s1.safetensors"),
        "export": "/abs/x",
        "model_config": None,
        "decode_tokenizer": "tiny",
        "nested": {"path": str(tmp_path / "cfg/w.bin")},
    }
    assert data["init_from"] == "../runs/s1.safetensors"  # the input is not modified


def _cli(args, cwd):
    return python("-m", "harness", *args, cwd=cwd)


def test_training_the_tiny_config_leaves_the_package_weights_alone(tmp_path):
    # the reported problem: `train train_tiny_stage1.yaml --out DIR --set steps=5` overwrote the
    # committed tokenizer the demo loads. Run from another folder: the config's model_config
    # (tiny_tokenizer.yaml, beside it) must still be found.
    weights = REPO / "alitok" / "weights"
    before = {p.name: sha256_file(p) for p in weights.glob("*.safetensors")}
    proc = _cli(
        [
            "train",
            str(CONFIGS / "train_tiny_stage1.yaml"),
            "--out",
            "run",
            "--set",
            "steps=1",
            "--set",
            "batch_size=2",
            "--set",
            "data.per_class=1",
            "--device",
            "cpu",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert {p.name: sha256_file(p) for p in weights.glob("*.safetensors")} == before
    written = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert written == [
        ".alitok-bench.lock",
        "config.json",
        "last.safetensors",
        "last_optim.pt",
        "log.jsonl",
        "model.safetensors",
        "train_record.json",
    ]  # the lock: one job per training folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("config", ["train_tiny_stage1.yaml", "train_tiny_stage2.yaml", "train_tiny_ar.yaml"])
def test_publish_without_an_export_path_fails_before_the_first_step(tmp_path, config):
    # export: null means the same in every trainer: nothing to publish, so --publish is refused up front
    over = {
        "train_tiny_stage2.yaml": ["--set", f"init_from={tmp_path}/missing.safetensors"],
        "train_tiny_ar.yaml": ["--set", "tokenizer=random-tiny"],
    }.get(config, [])
    rc = main(
        [
            "train",
            str(CONFIGS / config),
            "--out",
            str(tmp_path / "run"),
            "--set",
            "export=null",
            *over,
            "--publish",
            "--device",
            "cpu",
        ]
    )
    assert rc == 2
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_publish_error_names_the_flag(tmp_path, capsys):
    rc = main(
        [
            "train",
            str(CONFIGS / "train_tiny_stage1.yaml"),
            "--out",
            str(tmp_path / "run"),
            "--publish",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--publish" in err and "export: null" in err and len(err.splitlines()) == 1


def test_stage2_and_ar_configs_name_the_missing_stage1_checkpoint_before_training(tmp_path):
    for config, key in (("train_tiny_stage2.yaml", "init_from"), ("train_tiny_ar.yaml", "tokenizer")):
        proc = _cli(
            [
                "train",
                str(CONFIGS / config),
                "--out",
                "run",
                "--set",
                f"{key}={tmp_path}/nowhere/last.safetensors",
                "--device",
                "cpu",
            ],
            cwd=tmp_path,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert f"{key}: {tmp_path}/nowhere/last.safetensors" in lines[0]
        assert not (tmp_path / "run" / "last.safetensors").exists()


class NotATensor:  # torch.load(weights_only=True) refuses arbitrary classes
    pass


def test_resume_with_an_optimizer_state_weights_only_refuses_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "s1.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "trainer": "alitok-stage1",
                "steps": 2,
                "batch_size": 2,
                "ckpt_every": 1,
                "model": dict(MICRO_TOKENIZER),
                "data": {"per_class": 1},
            }
        )
    )
    run2 = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run2), "--device", "cpu"]) == 0
    torch.save({"optimizer": NotATensor(), "generator": None, "step": 1}, run2 / "last_optim.pt")
    capsys.readouterr()
    assert main(["train", str(cfg), "--out", str(run2), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "last_optim.pt" in err and "weights_only" in err


def test_tiny_chain_from_a_clean_folder(tmp_path):
    """What `make tiny-models` runs (stage1 -> stage2 -> AR, same keys), at a few steps, no publish."""
    small = ["--set", "steps=2", "--set", "batch_size=2", "--device", "cpu"]
    s1, s2, ar = tmp_path / "stage1", tmp_path / "stage2", tmp_path / "ar"
    assert (
        main(
            [
                "train",
                str(CONFIGS / "train_tiny_stage1.yaml"),
                "--out",
                str(s1),
                "--set",
                "data.per_class=1",
                "--set",
                "loss.vq_warmup_steps=1",
                *small,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                str(CONFIGS / "train_tiny_stage2.yaml"),
                "--out",
                str(s2),
                "--set",
                "data.per_class=1",
                "--set",
                f"init_from={s1}/last.safetensors",
                *small,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                str(CONFIGS / "train_tiny_ar.yaml"),
                "--out",
                str(ar),
                "--set",
                f"tokenizer={s1}/last.safetensors",
                "--set",
                f"decode_tokenizer={s2}/model.safetensors",
                "--set",
                "data.per_class_train=1",
                "--set",
                "data.per_class_val=1",
                "--set",
                "eval_every=0",
                "--set",
                "grid.samples_per_class=1",
                "--set",
                "grid.real_per_class=1",
                *small,
            ]
        )
        == 0
    )
    rec = json.loads((ar / "train_record.json").read_text())
    assert rec["model"]["decode_tokenizer"]["heldout_codes_identical"] is True
    assert (ar / "samples_grid.png").is_file()


# ----------------------------------------------------------------------------------------------
# Data parallel under torchrun (gloo on CPU)
# ----------------------------------------------------------------------------------------------
def _errors(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if "arn" not in line and line.strip())[:4000]


def _same_weights(a: Path, b: Path, atol: float = 1e-5) -> float:
    worst = max_weight_diff(a, b)
    assert worst <= atol, worst
    return worst


def _micro_stage1(tmp_path: Path, steps: int) -> Path:
    # no online-clustering codebook and no VQ seeding: those update from each rank's own slice
    cfg = tmp_path / f"s1_{steps}.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "trainer": "alitok-stage1",
                "steps": steps,
                "batch_size": 4,
                "ckpt_every": 2,
                "log_every": 1,
                "model": {**MICRO_TOKENIZER, "clustering_vq": False},
                "data": {"per_class": 1},
                "optim": {"lr": 1e-3},
            }
        )
    )
    return cfg


@pytest.mark.slow  # two torchrun processes: 30-60 s on 2 shared cores
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    cfg = _micro_stage1(tmp_path, 4)
    assert main(["train", str(cfg), "--out", str(tmp_path / "one"), "--device", "cpu"]) == 0
    proc = python(
        "-m", "harness", "train", str(cfg), "--out", str(tmp_path / "two"), "--device", "cpu", nproc=2, cwd=tmp_path
    )
    assert proc.returncode == 0, _errors(proc.stderr)
    _same_weights(tmp_path / "one/last.safetensors", tmp_path / "two/last.safetensors")
    one = [json.loads(x) for x in (tmp_path / "one/log.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two/log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-5)  # mean over ranks


@pytest.mark.slow  # two torchrun processes: 30-60 s on 2 shared cores
def test_a_run_resumes_on_another_world_size(tmp_path):
    # 2 processes for 2 steps, then 1 process to step 4 == 1 process for 4 steps (constant LR, so the
    # shorter run's schedule is the same; its config.json is extended by hand)
    full = _micro_stage1(tmp_path, 4)
    assert main(["train", str(full), "--out", str(tmp_path / "straight"), "--device", "cpu"]) == 0
    proc = python(
        "-m",
        "harness",
        "train",
        str(_micro_stage1(tmp_path, 2)),
        "--out",
        str(tmp_path / "moved"),
        "--device",
        "cpu",
        nproc=2,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, _errors(proc.stderr)
    config = json.loads((tmp_path / "moved/config.json").read_text())
    (tmp_path / "moved/config.json").write_text(json.dumps({**config, "steps": 4}))
    assert main(["train", str(full), "--out", str(tmp_path / "moved"), "--device", "cpu"]) == 0
    steps = [json.loads(x)["step"] for x in (tmp_path / "moved/log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    _same_weights(tmp_path / "straight/last.safetensors", tmp_path / "moved/last.safetensors")


@pytest.mark.slow  # two torchrun processes: 30-60 s on 2 shared cores
def test_ar_trainer_two_processes_equal_one(tmp_path):
    cfg = tmp_path / "ar.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "trainer": "alitok-ar",
                "tokenizer": "random-tiny",
                "steps": 3,
                "batch_size": 8,
                "log_every": 1,
                "ckpt_every": 3,
                "label_dropout": 0.1,  # label dropout is drawn for the global batch
                "model": {
                    "depth": 1,
                    "width": 32,
                    "num_heads": 2,
                    "codebook_size": 512,
                    "num_classes": 11,
                    "num_prefix_tokens": 9,
                    "grid": 8,
                    "resid_dropout": 0.0,
                    "attn_dropout": 0.0,
                    "token_dropout": 0.0,
                },
                "data": {"per_class_train": 1, "per_class_val": 1, "ten_crop": False},
                "optim": {"warmup_steps": 1},
            }
        )
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "one"), "--device", "cpu"]) == 0
    proc = python(
        "-m", "harness", "train", str(cfg), "--out", str(tmp_path / "two"), "--device", "cpu", nproc=2, cwd=tmp_path
    )
    assert proc.returncode == 0, _errors(proc.stderr)
    _same_weights(tmp_path / "one/last.safetensors", tmp_path / "two/last.safetensors")
    record = json.loads((tmp_path / "two/train_record.json").read_text())
    assert record["kind"] == "train" and record["env"]["world_size"] == 2 and record["env"]["backend"] == "gloo"


def test_a_second_job_on_the_same_training_folder_is_refused(tmp_path):
    """Two trainers never write one --out: a second process gets one line naming the holder, exit 2."""
    from harness.core.locks import acquire

    out = tmp_path / "run"
    cfg = Path(__file__).resolve().parent.parent / "alitok" / "configs" / "train_tiny_stage1.yaml"
    with acquire(out, what="training folder"):  # another job holds the folder
        run = python("-m", "harness", "train", str(cfg), "--out", str(out), "--set", "steps=1")
    assert run.returncode == 2 and "in use by" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (out / "log.jsonl").exists()


# ---------------------------------------------------------------------------------------------- torn checkpoints
def _toy_loop(out, steps=6):
    """A linear model under AdamW, checkpointed every 2 steps; its batches come from the loop's generator."""
    from harness.runs.training import TrainLoop

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    loop = TrainLoop(out, model, opt, steps, seed=0, config={"toy": 1}, ckpt_every=2, log_every=1)

    def step(i):
        loss = model(torch.randn(4, 3, generator=loop.generator)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss)}

    return loop, step


def _uninterrupted(tmp_path):
    loop, step = _toy_loop(tmp_path / "whole")
    loop.run(step, progress=False)
    return loop.model.state_dict()


def _assert_same(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_kill_between_the_model_and_optimizer_writes_resumes_from_the_previous_pair(tmp_path, monkeypatch):
    # the reported problem: killed after last.safetensors (step 4) was written and before last_optim.pt was,
    # `train` resumed at step 2 on the step-4 weights and exited 0
    want = _uninterrupted(tmp_path)
    real_save = torch.save

    def killed_at_step_4(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("step") == 4:
            raise KeyboardInterrupt
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", killed_at_step_4)
    loop, step = _toy_loop(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        loop.run(step, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    loop, step = _toy_loop(tmp_path / "run")
    assert loop.step == 2  # the last complete pair
    loop.run(step, progress=False)
    _assert_same(loop.model.state_dict(), want)
    assert not (tmp_path / "run" / ".checkpoint-pending").exists()


def test_a_kill_between_the_two_renames_rolls_the_committed_pair_forward(tmp_path, monkeypatch):
    want = _uninterrupted(tmp_path)
    import os

    real_replace = os.replace

    def killed_after_the_model(src, dst, *a, **k):
        if (
            Path(src).parent.name == ".checkpoint-pending"
            and Path(dst).parent.name == "run"
            and Path(dst).name == "last_optim.pt"
        ):
            seen.append(dst)
            if len(seen) == 2:  # the step-4 save, committed, its model file already in place
                raise KeyboardInterrupt
        return real_replace(src, dst, *a, **k)

    seen: list = []
    loop, step = _toy_loop(tmp_path / "run", steps=4)  # the kill lands at the step-4 save
    monkeypatch.setattr(os, "replace", killed_after_the_model)
    with pytest.raises(KeyboardInterrupt):
        loop.run(step, progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(seen) == 2  # the model file was already renamed into place, the optimizer file was not
    from harness.nn.checkpoints.checkpoint import read_metadata

    run = tmp_path / "run"
    assert read_metadata(run / "last.safetensors")["step"] == "4"
    assert torch.load(run / "last_optim.pt", weights_only=True)["step"] == 2  # torn on disk until the restart
    loop, step = _toy_loop(tmp_path / "run")
    assert loop.step == 4  # rolled forward: both files at step 4
    loop.run(step, progress=False)
    _assert_same(loop.model.state_dict(), want)


def test_a_pair_whose_steps_differ_is_refused_in_one_line(tmp_path):
    from harness.nn.checkpoints.checkpoint import CheckpointError

    loop, step = _toy_loop(tmp_path / "run", steps=4)
    loop.run(step, progress=False)  # pair at step 4; now put a step-2 optimizer state beside the step-4 model
    state = torch.load(tmp_path / "run" / "last_optim.pt", weights_only=True)
    torch.save({**state, "step": 2}, tmp_path / "run" / "last_optim.pt")
    with pytest.raises(CheckpointError) as e:
        _toy_loop(tmp_path / "run")
    assert "last.safetensors is at step 4 but last_optim.pt at step 2" in str(e.value) and "\n" not in str(e.value)
