"""Training and the ablation suite on ImageNet folders (a fake one built in tmp_path): the folder
source's batches are a function of (seed, step) and independent of the world size; stage 1, stage 2,
the AR trainer and the ablation driver's ``imagenet`` preset (shrunk to tiny sizes) run end to end
through the CLI and record that their data came from the folder; a corrupt JPEG is one line, exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from harness.cli import main
from harness.data.imagenet import center_crop_arr
from harness.data.imagenet_train import ImageNetTrainSource, random_crop_arr, ten_crop_arr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runs import max_weight_diff, python  # noqa: E402
from imagenet_fixture import SYNSETS, corrupt_one, make_fake_imagenet  # noqa: E402
from micro_configs import MICRO_TOKENIZER

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "alitok" / "configs" / "ablation.yaml"
MICRO_MODEL = {**MICRO_TOKENIZER, "init_std": 0.08}


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    return make_fake_imagenet(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("ALITOK_PROGRESS", "0")


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# ----------------------------------------------------------------------------------------------
# The source: crops, determinism, world-size independence
# ----------------------------------------------------------------------------------------------
def test_random_crop_is_resize_then_crop_then_flip():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8))
    # independent reference: torchvision's Resize(short side, bicubic) on the PIL image, then slicing
    from torchvision.transforms import InterpolationMode, Resize

    ref = np.asarray(Resize(16, interpolation=InterpolationMode.BICUBIC)(img))
    assert ref.shape == (16, 24, 3)
    out = random_crop_arr(img, 16, 0.0, 0.999, flip=False)  # top row, rightmost column range
    np.testing.assert_array_equal(out, ref[:, 8:24])
    flipped = random_crop_arr(img, 16, 0.5, 0.5, flip=True)
    np.testing.assert_array_equal(flipped, ref[:, 4:20][:, ::-1])


def test_ten_crop_matches_torchvision_after_the_adm_crop():
    from torchvision.transforms import TenCrop

    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8))
    ours = ten_crop_arr(img, 16)
    big = Image.fromarray(center_crop_arr(img, int(1.1 * 16)))
    ref = np.stack([np.asarray(c) for c in TenCrop(16)(big)])
    np.testing.assert_array_equal(ours, ref)


def test_folder_batches_are_a_function_of_seed_and_step_not_of_world_size(fake_root):
    src = ImageNetTrainSource(fake_root, "train", 16, workers=2)
    assert len(src) == 3 * len(SYNSETS) and src.num_classes == len(SYNSETS)
    a = src.rank_batch(7, 3, 8, True)
    b = ImageNetTrainSource(fake_root, "train", 16, workers=0).rank_batch(7, 3, 8, True)
    np.testing.assert_array_equal(a, b)  # same seed and step: same pixels (threads or not)
    assert not np.array_equal(a, src.rank_batch(7, 4, 8, True))  # another step: another batch
    assert not np.array_equal(a, src.rank_batch(8, 3, 8, True))  # another seed: another batch
    # a 2- and a 4-process run's slices concatenate to the 1-process batch
    for world in (2, 4):
        parts = [
            ImageNetTrainSource(fake_root, "train", 16, workers=1).rank_batch(7, 3, 8, True, r, world)
            for r in range(world)
        ]
        np.testing.assert_array_equal(np.concatenate(parts), a)
    # the plan draws from (seed, step) alone: no state carried between steps (a resumed run needs none)
    fresh = ImageNetTrainSource(fake_root, "train", 16, workers=0)
    np.testing.assert_array_equal(fresh.rank_batch(7, 4, 8, True), src.rank_batch(7, 4, 8, True))
    plan = src.plan(7, 3, 8)
    assert plan.index.max() < len(src) and ((plan.crop >= 0) & (plan.crop < 1)).all()
    src.close()


def test_tokenizer_batches_ignore_the_world_size(fake_root):
    """The trainer-side source: rank slices of the step's global batch concatenate to the 1-process batch."""
    from alitok.train.tokenizer_common import DataConfig, train_batches
    from harness.runs.training import Parallel

    cfg = DataConfig(source="imagenet", root=str(fake_root), workers=0)
    one = train_batches(cfg, 32, Parallel(0, 1), run_seed=3).batch(5, 8, torch.Generator(), torch.device("cpu"))
    two = [
        train_batches(cfg, 32, Parallel(r, 2), run_seed=3).batch(5, 8, torch.Generator(), torch.device("cpu"))
        for r in (0, 1)
    ]
    assert one.shape == (8, 3, 32, 32) and one.dtype == torch.float32 and 0 <= one.min() and one.max() <= 1
    torch.testing.assert_close(torch.cat(two), one, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# The trainers through the CLI
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(fake_root, tmp_path_factory):
    """Stage 1, stage 2 and the AR trainer on the fake folder, each through `harness train`."""
    d = tmp_path_factory.mktemp("runs")
    data = {"source": "imagenet", "root": str(fake_root), "workers": 2}
    s1 = _write(
        d / "s1.yaml",
        {
            "trainer": "alitok-stage1",
            "steps": 3,
            "batch_size": 8,
            "log_every": 1,
            "ckpt_every": 2,
            "model": MICRO_MODEL,
            "data": data,
            "optim": {"lr": 1e-3},
        },
    )
    assert main(["train", str(s1), "--out", str(d / "s1"), "--device", "cpu"]) == 0
    s2 = _write(
        d / "s2.yaml",
        {
            "trainer": "alitok-stage2",
            "init_from": str(d / "s1/last.safetensors"),
            "steps": 2,
            "batch_size": 8,
            "log_every": 1,
            "data": data,
            "optim": {"lr": 1e-3},
        },
    )
    assert main(["train", str(s2), "--out", str(d / "s2"), "--device", "cpu"]) == 0
    ar = _write(
        d / "ar.yaml",
        {
            "trainer": "alitok-ar",
            "tokenizer": str(d / "s1/last.safetensors"),
            "steps": 3,
            "batch_size": 8,
            "log_every": 1,
            "ckpt_every": 3,
            "model": {
                "depth": 1,
                "width": 32,
                "num_heads": 2,
                "codebook_size": 64,
                "num_classes": len(SYNSETS),
                "num_prefix_tokens": 5,
                "grid": 4,
            },
            "data": {**data, "image_size": 32, "per_class_train": None, "per_class_val": None, "ten_crop": True},
            "optim": {"warmup_steps": 1},
        },
    )
    assert main(["train", str(ar), "--out", str(d / "ar"), "--device", "cpu"]) == 0
    return d


def test_tokenizer_stages_record_the_folder(trained, fake_root):
    for stage, steps in (("s1", 3), ("s2", 2)):
        rec = json.loads((trained / stage / "train_record.json").read_text())
        data = rec["spec"]["data"]
        assert data["source"] == "imagenet" and data["root"] == str(fake_root)
        assert data["images"] == 3 * len(SYNSETS) and data["classes"] == len(SYNSETS)
        assert rec["timings"]["steps"] == steps
        assert rec["spec"]["config"]["data"]["source"] == "imagenet"


def test_ar_pretokenises_ten_crops_of_the_folder(trained, fake_root):
    from alitok.tokenizer import AliTokTokenizer

    rec = json.loads((trained / "ar/train_record.json").read_text())
    data = rec["spec"]["data"]
    assert (data["train_images"], data["val_images"], data["classes"]) == (
        3 * len(SYNSETS),
        2 * len(SYNSETS),
        len(SYNSETS),
    )
    assert rec["spec"]["train_sequences"] == 10 * 3 * len(SYNSETS) and rec["spec"]["val_sequences"] == 2 * len(SYNSETS)
    # the cached codes are the tokenizer's codes of the ADM ten crops / centre crops, re-encoded here
    # independently in the same batch composition (one call; near-tie argmins can depend on the batch)
    folder = Path(data["codes_folder"])
    train = np.load(folder / "train_00000.npy")
    val = np.load(folder / "val_00000.npy")
    tok = AliTokTokenizer.from_checkpoint(trained / "s1/last.safetensors")

    def crops(split: str, ten: bool) -> np.ndarray:
        out = []
        for synset in SYNSETS:
            for f in sorted((fake_root / split / synset).iterdir()):
                with Image.open(f) as im:
                    out.append(ten_crop_arr(im.convert("RGB"), 32) if ten else center_crop_arr(im.convert("RGB"), 32))
        return np.stack(out)

    ten = crops("train", True)
    assert train.shape == (len(ten), 10, 21) and train.dtype == np.int16
    np.testing.assert_array_equal(
        train, tok.encode(torch.from_numpy(ten.reshape(-1, 32, 32, 3))).numpy().reshape(train.shape)
    )
    np.testing.assert_array_equal(val, tok.encode(torch.from_numpy(crops("val", False))).numpy())
    assert rec["metric_provenance"]["heldout"]["overall"]["ce"] > 0


def test_a_corrupt_jpeg_is_one_line_exit_2_naming_it(fake_root, tmp_path):
    import shutil

    root = tmp_path / "bad"
    shutil.copytree(fake_root, root)
    bad = corrupt_one(root)
    cfg = _write(
        tmp_path / "s1.yaml",
        {
            "trainer": "alitok-stage1",
            "steps": 4,
            "batch_size": 24,
            "log_every": 1,
            "model": MICRO_MODEL,
            "data": {"source": "imagenet", "root": str(root)},
        },
    )
    r = python("-m", "harness", "train", str(cfg), "--out", str(tmp_path / "run"), "--device", "cpu")
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "cannot read image" in lines[0]


def test_a_corrupt_val_jpeg_stops_the_ar_pretokenisation_in_one_line(fake_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "bad"
    shutil.copytree(fake_root, root)
    bad = corrupt_one(root, "val")
    cfg = _write(
        tmp_path / "ar.yaml",
        {
            "trainer": "alitok-ar",
            "tokenizer": "random-tiny",
            "steps": 1,
            "batch_size": 2,
            "model": {
                "depth": 1,
                "width": 32,
                "num_heads": 2,
                "codebook_size": 512,
                "num_classes": len(SYNSETS),
                "num_prefix_tokens": 9,
                "grid": 8,
            },
            "data": {
                "source": "imagenet",
                "root": str(root),
                "image_size": 32,
                "per_class_train": 1,
                "ten_crop": False,
            },
        },
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "cannot read image" in err[0]
    assert not (tmp_path / "run" / "last.safetensors").exists()


@pytest.mark.parametrize(
    "data, match",
    [
        ({"source": "imagenet"}, "data.root: required"),
        ({"source": "imagenet", "root": "/nonexistent/imagenet"}, "/nonexistent/imagenet: dataset folder not found"),
        ({"source": "imagenet", "root": "EMPTY"}, "no class sub-folders"),
        ({"source": "imagenet", "root": "ROOT", "colour": 1}, "unknown key"),
    ],
)
def test_bad_data_sections_are_one_line_exit_2(tmp_path, capsys, fake_root, data, match):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    data = {
        k: (str(tmp_path / "empty") if v == "EMPTY" else str(fake_root) if v == "ROOT" else v) for k, v in data.items()
    }
    cfg = _write(
        tmp_path / "s1.yaml",
        {"trainer": "alitok-stage1", "steps": 1, "batch_size": 2, "model": MICRO_MODEL, "data": data},
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


# ----------------------------------------------------------------------------------------------
# The ablation driver's imagenet preset, shrunk
# ----------------------------------------------------------------------------------------------
def _tiny_imagenet_suite(tmp_path: Path, root: Path | None) -> Path:
    """The committed imagenet preset with the tiny preset's sizes, 3 steps per stage, the fake folder."""
    data = yaml.safe_load(SUITE.read_text())
    tiny, inet = data["presets"]["tiny"], data["presets"]["imagenet"]
    for stage in ("stage1", "stage2", "ar"):
        cfg = json.loads(json.dumps(tiny[stage]))
        cfg.update(steps=3, log_every=1, ckpt_every=2, batch_size=8)
        if stage == "ar":
            cfg["model"]["num_classes"] = len(SYNSETS)
            cfg["data"] = {**inet["ar"]["data"], "image_size": 32, "workers": 2}
        else:
            cfg["data"] = {**inet[stage]["data"], "workers": 2}
        if stage == "stage1":
            cfg["loss"]["vq_warmup_steps"] = 1
        inet[stage] = cfg
    inet.update(launcher=[], device="cpu", imagenet_root=None if root is None else str(root))
    inet["eval"].update(image_size=32, per_class=2, inception="random:0", batch_size=64, kid_subset_size=4, workers=2)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_imagenet_preset_plan_reports_nothing_missing_with_a_root(fake_root, tmp_path):
    from harness.suites import ablation

    suite = ablation.load_suite(SUITE, "imagenet", imagenet_root=str(fake_root))
    report = ablation.validate(suite, tmp_path / "run")
    assert report["missing"] == [] and report["world_size"] == 8
    jobs = ablation.plan(suite, tmp_path / "run")
    for job in jobs:  # every stage and the evaluation read the root
        root = job.config.get("imagenet_root") if job.stage == "eval" else job.config["data"]["root"]
        assert root == str(fake_root), job
    r = python(
        "-m",
        "harness",
        "ablate",
        str(SUITE),
        "--preset",
        "imagenet",
        "--out",
        str(tmp_path / "run"),
        "--plan",
        "--imagenet-root",
        str(fake_root),
        "--json",
    )
    assert r.returncode == 0 and json.loads(r.stdout)["missing"] == []
    assert ablation.command_line(suite, "run").endswith(f"--imagenet-root {fake_root}")  # the table's rerun line
    missing = ablation.validate(ablation.load_suite(SUITE, "imagenet", imagenet_root=str(tmp_path / "no")), tmp_path)
    assert any("no such folder" in m for m in missing["missing"])
    assert not (tmp_path / "run").exists()  # validation writes nothing


def test_imagenet_preset_runs_end_to_end_on_a_folder(fake_root, tmp_path):
    suite = _tiny_imagenet_suite(tmp_path, fake_root)
    out = tmp_path / "run"
    r = python("-m", "harness", "ablate", str(suite), "--preset", "imagenet", "--out", str(out), "--rows", "A")
    assert r.returncode == 0, r.stderr[-3000:]
    s1 = json.loads((out / "seed0/A/stage1/train_record.json").read_text())
    assert s1["spec"]["data"]["root"] == str(fake_root) and s1["spec"]["data"]["classes"] == len(SYNSETS)
    ar = json.loads((out / "seed0/A/ar/train_record.json").read_text())
    assert ar["spec"]["data"]["val_images"] == 2 * len(SYNSETS)
    ev = json.loads((out / "seed0/A/eval/eval_record.json").read_text())
    assert ev["spec"]["heldout"] == {
        "description": ev["spec"]["heldout"]["description"],
        "images": 2 * len(SYNSETS),
        "classes": len(SYNSETS),
    }
    assert "val" in ev["spec"]["heldout"]["description"]
    for key in ("fid", "kid", "prec", "recall", "rfid", "psnr", "ssim", "ar_acc", "ar_ce_gain_positional"):
        assert np.isfinite(ev["metrics"][key]), key
    # the samples are class-balanced over the folder's classes
    with np.load(out / "seed0/A/eval/samples.npz") as z:
        assert z["arr_0"].shape == (2 * len(SYNSETS), 32, 32, 3)
        assert np.bincount(z["labels"]).tolist() == [2] * len(SYNSETS)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["preset"] == "imagenet"
    # the imagenet preset without its root: one line, exit 2 before any training
    bad = _tiny_imagenet_suite(tmp_path, tmp_path / "missing")
    r = python(
        "-m", "harness", "ablate", str(bad), "--preset", "imagenet", "--out", str(tmp_path / "run2"), "--rows", "A"
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    assert f"imagenet_root: {tmp_path / 'missing'}: no such folder" in r.stderr
    assert not (tmp_path / "run2" / "seed0").exists()


# ----------------------------------------------------------------------------------------------
# Data parallel on the folder source (torchrun, gloo)
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow  # four torchrun processes in turn: ~60 s on 2 shared cores
def test_two_processes_equal_one_on_the_folder(fake_root, tmp_path):
    """Stage 1 and the AR trainer (whose pretokenisation chunks are shared out over the ranks) on the
    folder: 2 processes with the same global batch give the 1-process weights."""
    data = {"source": "imagenet", "root": str(fake_root), "workers": 1}
    s1 = _write(
        tmp_path / "s1.yaml",
        {
            "trainer": "alitok-stage1",
            "steps": 3,
            "batch_size": 4,
            "log_every": 1,
            "model": {**MICRO_MODEL, "clustering_vq": False},
            "data": data,
            "optim": {"lr": 1e-3},
        },
    )
    assert main(["train", str(s1), "--out", str(tmp_path / "s1_one"), "--device", "cpu"]) == 0
    proc = python(
        "-m", "harness", "train", str(s1), "--out", str(tmp_path / "s1_two"), "--device", "cpu", nproc=2, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert max_weight_diff(tmp_path / "s1_one/last.safetensors", tmp_path / "s1_two/last.safetensors") <= 1e-5
    ar = _write(
        tmp_path / "ar.yaml",
        {
            "trainer": "alitok-ar",
            "tokenizer": str(tmp_path / "s1_one/last.safetensors"),
            "steps": 3,
            "batch_size": 8,
            "log_every": 1,
            "ckpt_every": 3,
            "label_dropout": 0.1,
            "model": {
                "depth": 1,
                "width": 32,
                "num_heads": 2,
                "codebook_size": 64,
                "num_classes": len(SYNSETS),
                "num_prefix_tokens": 5,
                "grid": 4,
                "resid_dropout": 0.0,
                "attn_dropout": 0.0,
                "token_dropout": 0.0,
            },
            "data": {**data, "image_size": 32, "per_class_train": None, "per_class_val": None, "ten_crop": True},
            "optim": {"warmup_steps": 1},
        },
    )
    assert main(["train", str(ar), "--out", str(tmp_path / "ar_one"), "--device", "cpu"]) == 0
    proc = python(
        "-m", "harness", "train", str(ar), "--out", str(tmp_path / "ar_two"), "--device", "cpu", nproc=2, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert max_weight_diff(tmp_path / "ar_one/last.safetensors", tmp_path / "ar_two/last.safetensors") <= 1e-5
    one, two = (json.loads((tmp_path / d / "train_record.json").read_text()) for d in ("ar_one", "ar_two"))
    assert two["env"]["world_size"] == 2 and one["metrics"]["val_ce"] == pytest.approx(
        two["metrics"]["val_ce"], abs=1e-6
    )


def test_code_chunks_resume_and_index_across_chunk_boundaries(fake_root, tmp_path, monkeypatch):
    """Small chunks: the store's (image, view) lookup equals indexing the concatenated codes; a deleted
    chunk (a killed pretokenisation) is re-encoded alone and equals the first encoding."""
    from alitok.train import ar_data
    from alitok.train.ar import DataConfig, load_tokenizer, tokenizer_identity
    from harness.runs.training import Parallel

    monkeypatch.setattr(ar_data, "CHUNK", 5)  # 12 train images -> chunks of 5, 5, 2
    data = DataConfig(
        source="imagenet",
        root=str(fake_root),
        image_size=32,
        per_class_train=None,
        per_class_val=None,
        ten_crop=True,
        workers=0,
    )
    tok = load_tokenizer("random-tiny", torch.device("cpu"))
    codes = ar_data.imagenet_codes(data, tok, tmp_path, tokenizer_identity(tok), 0, Parallel())
    folder = Path(codes["describe"]["codes_folder"])
    assert sorted(p.name for p in folder.iterdir()) == [
        "train_00000.npy",
        "train_00001.npy",
        "train_00002.npy",
        "val_00000.npy",
        "val_00001.npy",
    ]
    store = codes["train_store"]
    full = np.concatenate([np.load(folder / f"train_{i:05d}.npy") for i in range(3)])
    assert store.shape == (12, 10, tok.num_tokens) == full.shape
    idx, view = torch.tensor([0, 4, 5, 9, 10, 11, 3]), torch.tensor([0, 9, 1, 5, 2, 7, 3])
    np.testing.assert_array_equal(store.take(idx, view).numpy(), full[idx.numpy(), view.numpy()])
    assert codes["train_labels"].tolist() == [c for c in range(len(SYNSETS)) for _ in range(3)]
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    (folder / "train_00001.npy").unlink()
    again = ar_data.imagenet_codes(data, tok, tmp_path, tokenizer_identity(tok), 0, Parallel())
    after = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert {k for k in before if before[k] != after[k]} == {"train_00001.npy"}
    np.testing.assert_array_equal(np.load(folder / "train_00001.npy"), full[5:10])
    torch.testing.assert_close(again["val_codes"], codes["val_codes"], rtol=0, atol=0)
