"""Tiny AR-baseline trainers (baselines/train_tiny.py) on harness.runs.training: micro runs write only
under --out and export files the plugins load, --publish copies the export to the config's export:,
config paths resolve against the config's folder, inputs are checked before the first step,
mismatched geometry and unknown keys are config errors, and the committed tiny weights load."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from baselines import plugin_ar
from baselines.train_tiny import load_tiny_gpt, load_tiny_tokenizer, train_ar, train_tokenizer
from harness.cli import main
from harness.core.config import ConfigError
from harness.core.io import sha256_file
from harness.nn.checkpoints.checkpoint import CheckpointError, load_state_dict
from harness.runs.records import load_records

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "baselines" / "configs"
RUN_FILES = [
    ".alitok-bench.lock",
    "config.json",
    "last.safetensors",
    "last_optim.pt",
    "log.jsonl",
    "model.safetensors",
    "train_record.json",
]
DATA = {"image_size": 32, "per_class_train": 4, "per_class_val": 2, "seed": 0, "hflip": True}
MODELS = {
    "vq": {
        "ch": 32,
        "ch_mult": [1, 1, 1, 1],
        "num_res_blocks": 1,
        "z_channels": 32,
        "codebook_size": 16,
        "codebook_dim": 4,
        "image_size": 32,
    },
    "titok": {
        "image_size": 32,
        "patch_size": 8,
        "enc_width": 32,
        "enc_depth": 1,
        "enc_heads": 2,
        "dec_width": 32,
        "dec_depth": 1,
        "dec_heads": 2,
        "num_latent_tokens": 4,
        "token_size": 4,
        "codebook_size": 16,
        "is_legacy": False,
    },
}


def _tokenizer_cfg(family):
    return {
        "family": family,
        "model": MODELS[family],
        "steps": 4,
        "batch_size": 4,
        "vq_warmup_steps": 2,
        "data": DATA,
        "log_every": 2,
        "ckpt_every": 2,
    }


def _ar_cfg(tokenizer, tokens, rope, **over):
    return {
        "tokenizer": str(tokenizer),
        "steps": 3,
        "batch_size": 4,
        "data": DATA,
        "model": {
            "depth": 1,
            "width": 32,
            "num_heads": 2,
            "vocab_size": 16,
            "num_classes": 11,
            "num_tokens": tokens,
            "rope": rope,
        },
        "sampling": {"cfg_scale": 2.0},
        "log_every": 1,
        "ckpt_every": 3,
        **over,
    }


@pytest.mark.parametrize("family,tokens", [("vq", 16), ("titok", 4)])
def test_micro_tokenizer_then_ar_write_only_under_out_and_export_loadable_systems(tmp_path, family, tokens):
    summary = train_tokenizer(_tokenizer_cfg(family), tmp_path / "tok", torch.device("cpu"))
    assert summary["steps"] == 4
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == sorted(RUN_FILES + ["recon_grid.png"])
    tok_file = tmp_path / "tok" / "model.safetensors"
    tok = load_tiny_tokenizer(tok_file, "t")
    assert tok.num_tokens == tokens and tok.codebook_size == 16
    out = train_ar(_ar_cfg(tok_file, tokens, "2d" if family == "vq" else "1d"), tmp_path / "ar", torch.device("cpu"))
    assert out["steps"] == 3 and 0.0 <= out["val_acc"] <= 1.0
    assert sorted(p.name for p in (tmp_path / "ar").iterdir()) == sorted(RUN_FILES + ["samples_grid.png"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ar", "tok"]  # nothing outside the two --out folders
    model, sampling, tok_path = load_tiny_gpt(tmp_path / "ar" / "model.safetensors")
    assert sampling.cfg_scale == 2.0 and tok_path == str(tok_file)
    gen = plugin_ar.llamagen_tiny(
        device="cpu", checkpoint=str(tmp_path / "ar" / "model.safetensors"), tokenizer_checkpoint=str(tok_file)
    )
    images = gen.generate(torch.tensor([0, 10]), torch.Generator().manual_seed(0))
    assert images.shape == (2, 32, 32, 3) and images.dtype == torch.uint8
    # one record shape: both train records load with the engine's loader
    df = load_records(tmp_path)
    assert sorted(df["spec.trainer"]) == ["baselines-ar", "baselines-tokenizer"] and set(df["kind"]) == {"train"}
    ar = json.loads((tmp_path / "ar" / "train_record.json").read_text())
    assert ar["model"]["checkpoint_sha256"] == sha256_file(tmp_path / "ar" / "model.safetensors")
    assert ar["metrics"]["val_acc"] == pytest.approx(out["val_acc"], abs=1e-4)


def test_ar_runs_repeat_exactly(tmp_path):
    # dropout masks are a function of seed and step: two runs of one config give the same weights
    train_tokenizer({**_tokenizer_cfg("titok"), "grid": False}, tmp_path / "tok", torch.device("cpu"))
    cfg = _ar_cfg(tmp_path / "tok" / "model.safetensors", 4, "1d", grid=False)
    for name in ("a", "b"):
        train_ar(cfg, tmp_path / name, torch.device("cpu"))
    a, b = (load_state_dict(tmp_path / n / "model.safetensors") for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_publish_copies_the_export_and_export_null_refuses_publish_before_the_first_step(tmp_path):
    dest = tmp_path / "published" / "tok.safetensors"
    cfg = {**_tokenizer_cfg("titok"), "steps": 1, "grid": False}
    with pytest.raises(ConfigError, match="--publish"):
        train_tokenizer(cfg, tmp_path / "refused", torch.device("cpu"), publish=True)  # export: null
    assert not (tmp_path / "refused").exists()
    train_tokenizer({**cfg, "export": str(dest)}, tmp_path / "tok", torch.device("cpu"))
    assert not dest.exists()  # without --publish nothing leaves --out
    summary = train_tokenizer({**cfg, "export": str(dest)}, tmp_path / "tok", torch.device("cpu"), publish=True)
    assert summary["published"] == str(dest)  # the finished run trains nothing more and publishes
    assert sha256_file(dest) == sha256_file(tmp_path / "tok" / "model.safetensors")


def test_cli_resolves_config_paths_against_the_config_folder_and_checks_the_tokenizer_first(tmp_path, capsys):
    folder = tmp_path / "cfgs"
    folder.mkdir()
    assert (
        main(
            [
                "train",
                str(
                    _yaml(
                        folder / "tok.yaml",
                        {"trainer": "baselines-tokenizer", **_tokenizer_cfg("titok"), "steps": 1, "grid": False},
                    )
                ),
                "--out",
                str(tmp_path / "tok"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    (tmp_path / "weights").mkdir()
    (tmp_path / "tok" / "model.safetensors").rename(tmp_path / "weights" / "t.safetensors")
    ar = {"trainer": "baselines-ar", **_ar_cfg("../weights/t.safetensors", 4, "1d", steps=1, grid=False)}
    assert main(["train", str(_yaml(folder / "ar.yaml", ar)), "--out", str(tmp_path / "ar"), "--device", "cpu"]) == 0
    capsys.readouterr()
    missing = {**ar, "tokenizer": "../weights/missing.safetensors"}
    assert (
        main(["train", str(_yaml(folder / "bad.yaml", missing)), "--out", str(tmp_path / "bad"), "--device", "cpu"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"tokenizer: {tmp_path / 'weights' / 'missing.safetensors'}" in err
    assert not (tmp_path / "bad").exists()


def _yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_committed_configs_name_existing_inputs_and_export_into_baselines_weights():
    from harness.core.config import load_yaml
    from harness.core.registry import load_plugins, trainers
    from harness.runs.training import resolve_config_paths

    load_plugins()
    for path in sorted(CONFIGS.glob("train_tiny_*.yaml")):
        data = load_yaml(path)
        trainer = trainers.get(data.pop("trainer"))
        data = resolve_config_paths(data, path.parent, trainer.path_keys)
        assert Path(data["export"]).parent == REPO / "baselines" / "weights", path
        assert "tokenizer" not in data or Path(data["tokenizer"]).is_file(), path


def test_geometry_mismatch_and_unknown_keys_are_config_errors(tmp_path):
    train_tokenizer({**_tokenizer_cfg("titok"), "grid": False}, tmp_path / "tok", torch.device("cpu"))
    bad = _ar_cfg(tmp_path / "tok" / "model.safetensors", 9, "1d", steps=1)
    with pytest.raises(ConfigError, match="do not match"):
        train_ar(bad, tmp_path / "ar", torch.device("cpu"))
    with pytest.raises(ConfigError, match="stepz"):
        train_tokenizer({**_tokenizer_cfg("vq"), "stepz": 3}, tmp_path / "x", torch.device("cpu"))


def test_tiny_loaders_refuse_files_without_their_metadata(tmp_path):
    from harness.nn.checkpoints.checkpoint import save_safetensors

    path = save_safetensors(tmp_path / "x.safetensors", {"w": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="not a tiny baseline tokenizer"):
        load_tiny_tokenizer(path, "t")
    with pytest.raises(CheckpointError, match="not a tiny baseline AR model"):
        load_tiny_gpt(path)


@pytest.mark.parametrize("factory", ["llamagen_tiny", "titok_ar_tiny"])
def test_committed_tiny_generators_load_and_sample(factory):
    if not (REPO / "baselines" / "weights" / "tiny_titok_gpt.safetensors").is_file():
        pytest.skip("tiny baseline weights not committed in this checkout")
    gen = getattr(plugin_ar, factory)(device="cpu")
    a = gen.generate(torch.tensor([1, 5]), torch.Generator().manual_seed(3))
    assert torch.equal(a, gen.generate(torch.tensor([1, 5]), torch.Generator().manual_seed(3)))
    assert gen.info()["tokenizer"]["checkpoint"].endswith(".safetensors")


@pytest.mark.parametrize(
    "tok_config,ar_config",
    [("train_tiny_vq.yaml", "train_tiny_llamagen_ar.yaml"), ("train_tiny_titok.yaml", "train_tiny_titok_ar.yaml")],
)
def test_tiny_baselines_chain_from_a_clean_folder(tmp_path, tok_config, ar_config):
    """What `make tiny-baselines` runs (same configs and keys), at two steps, no publish."""
    weights = REPO / "baselines" / "weights"
    before = {p.name: sha256_file(p) for p in weights.glob("*.safetensors")}
    small = [
        "--set",
        "steps=2",
        "--set",
        "batch_size=2",
        "--set",
        "data.per_class_train=1",
        "--set",
        "data.per_class_val=1",
        "--set",
        "grid=false",
        "--device",
        "cpu",
    ]
    tok, ar = tmp_path / "tok", tmp_path / "ar"
    assert main(["train", str(CONFIGS / tok_config), "--out", str(tok), "--set", "vq_warmup_steps=1", *small]) == 0
    assert (
        main(
            ["train", str(CONFIGS / ar_config), "--out", str(ar), "--set", f"tokenizer={tok}/model.safetensors", *small]
        )
        == 0
    )
    record = json.loads((ar / "train_record.json").read_text())
    assert record["model"]["tokenizer"]["checkpoint_sha256"] == sha256_file(tok / "model.safetensors")
    assert {p.name: sha256_file(p) for p in weights.glob("*.safetensors")} == before


@pytest.mark.slow  # two torchrun processes: 30-60 s on 2 shared cores
def test_two_processes_equal_one_for_both_trainers(tmp_path):
    from cli_runs import max_weight_diff, python

    def torchrun(cfg, out):
        return python("-m", "harness", "train", str(cfg), "--out", str(out), "--device", "cpu", nproc=2)

    def same(a, b):
        assert max_weight_diff(a, b) <= 1e-5

    # the codebook is seeded from the global batch, so it is the same on every rank
    tok = _yaml(tmp_path / "tok.yaml", {"trainer": "baselines-tokenizer", **_tokenizer_cfg("titok"), "grid": False})
    assert main(["train", str(tok), "--out", str(tmp_path / "tok1"), "--device", "cpu"]) == 0
    proc = torchrun(tok, tmp_path / "tok2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    same(tmp_path / "tok1/last.safetensors", tmp_path / "tok2/last.safetensors")
    # dropout off: each rank's masks are drawn for its slice (label dropout is drawn for the global batch)
    model = {"token_dropout": 0.0, "resid_dropout": 0.0, "ffn_dropout": 0.0}
    ar_cfg = _ar_cfg(tmp_path / "tok1/model.safetensors", 4, "1d", grid=False)
    ar = _yaml(tmp_path / "ar.yaml", {"trainer": "baselines-ar", **ar_cfg, "model": {**ar_cfg["model"], **model}})
    assert main(["train", str(ar), "--out", str(tmp_path / "ar1"), "--device", "cpu"]) == 0
    proc = torchrun(ar, tmp_path / "ar2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    same(tmp_path / "ar1/last.safetensors", tmp_path / "ar2/last.safetensors")
    assert json.loads((tmp_path / "ar2/train_record.json").read_text())["env"]["world_size"] == 2
