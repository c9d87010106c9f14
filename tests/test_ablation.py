"""The ablation suite driver (harness.suites.ablation): suite file checks, the plan (paired seeds, F reusing
D's stage 1 and AR, AR geometry per row), resume by skipping finished folders, the paired statistics
against numpy, the ImageNet preset's validation without ImageNet; the whole loop at micro size (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.core.config import ConfigError
from harness.suites import ablation
from harness.suites.ablation import runner

SUITE = Path(__file__).resolve().parents[1] / "alitok" / "configs" / "ablation.yaml"


def test_committed_suite_plans_paired_rows():
    suite = ablation.load_suite(SUITE, "tiny")
    assert [r.name for r in suite.rows] == [
        "A",
        "ctrl_shuffle",
        "ctrl_noise",
        "ctrl_half_ar",
        "ctrl_blur",
        "ctrl_half_error",
        "B",
        "C",
        "D",
        "E",
        "F",
        "causal_encoder",
        "F_effnet",
        "F_gan",
        "F_effnet_gan",
    ]
    assert len(suite.seeds) >= 3
    jobs = ablation.plan(suite, "/o")
    by = {(j.seed, j.row, j.stage): j for j in jobs}
    s = suite.seeds[0]
    # F trains only its stage 2 (on D's stage 1) and evaluates with D's AR: upstream trains the AR on stage-1 codes
    assert (s, "F", "stage1") not in by and (s, "F", "ar") not in by
    assert by[(s, "F", "stage2")].config["init_from"] == str(by[(s, "D", "stage1")].out / "last.safetensors")
    assert by[(s, "F", "eval")].config["ar_checkpoint"] == by[(s, "D", "eval")].config["ar_checkpoint"]
    assert by[(s, "F", "eval")].config["tokenizer_checkpoint"].endswith("F/stage2/model.safetensors")
    # E (the paper's D with its AR on 800 epochs): D's tokenizer, its own AR on twice D's steps
    assert (s, "E", "stage1") not in by and by[(s, "E", "ar")].config["tokenizer"] == by[(s, "D", "ar")].config[
        "tokenizer"
    ]
    assert by[(s, "E", "ar")].config["steps"] == 2 * by[(s, "D", "ar")].config["steps"]
    assert by[(s, "E", "eval")].config["tokenizer_checkpoint"] == by[(s, "D", "eval")].config["tokenizer_checkpoint"]
    # every trainer of every row gets the seed (init + data order); data settings are the same for all rows
    for seed in suite.seeds:
        stage1 = [j.config for j in jobs if j.seed == seed and j.stage == "stage1"]
        assert {c["seed"] for c in stage1} == {seed}
        assert len({json.dumps(c["data"], sort_keys=True) for c in stage1}) == 1
    # the switches: A bidirectional without prefix/aux, B causal without prefix, C prefix without aux, D aux
    m = {r: by[(s, r, "stage1")].config for r in ("A", "B", "C", "D", "causal_encoder")}
    assert m["A"]["model"]["decoder_attention"] == "bidirectional" and m["B"]["model"]["decoder_attention"] == "causal"
    assert m["A"]["model"]["num_prefix_tokens"] == 0 == m["B"]["model"]["num_prefix_tokens"]
    assert m["C"]["model"]["num_prefix_tokens"] is None and m["C"]["loss"]["aux_loss_weight"] == 0.0
    assert m["D"]["loss"]["aux_loss_weight"] is None and m["causal_encoder"]["model"]["encoder_attention"] == "causal"
    # the AR model's geometry follows its tokenizer: K = 0 without prefix, 1 + G with
    grid = m["A"]["model"]["image_size"] // m["A"]["model"]["patch_size"]
    assert by[(s, "A", "ar")].config["model"]["num_prefix_tokens"] == 0
    assert by[(s, "D", "ar")].config["model"]["num_prefix_tokens"] == grid + 1
    # one AR size and step count for every row but the half-steps control
    ars = [j for j in jobs if j.stage == "ar" and j.row not in ("ctrl_half_ar", "E")]
    assert len({(j.config["steps"], json.dumps(j.config["model"].get("width"))) for j in ars}) == 1


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["rows"]["A"].update(colour=1), "rows.A.colour: unknown key"),
        (lambda d: d["rows"]["F"].update({"from": "F"}), "rows.F.from"),
        (lambda d: d["rows"]["F"].update(stage2=False), "would repeat row D"),
        (lambda d: d.update(baseline="Z"), "baseline: 'Z'"),
        (lambda d: d["presets"]["tiny"]["eval"].update(colour=1), "presets.tiny.eval.colour: unknown key"),
        (lambda d: d["paper_comparisons"]["causal_decoder"].update(row="Z"), "causal_decoder.row: 'Z' is not a row"),
        (lambda d: d["paper_comparisons"]["causal_decoder"]["paper"].update(colour=[1, 2]), "paper.colour"),
        (lambda d: d["paper_comparisons"]["causal_decoder"]["paper"].update(fid=[0, 2]), "non-zero first value"),
        (lambda d: d["paper_comparisons"]["causal_decoder"]["paper"].update(fid=[1, 2, 3]), "paper.fid"),
    ],
)
def test_bad_suite_files_are_config_errors(tmp_path, edit, match):
    data = yaml.safe_load(SUITE.read_text())
    edit(data)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=match):
        ablation.load_suite(path, "tiny")
    with pytest.raises(ConfigError, match="--preset nope"):
        ablation.load_suite(SUITE, "nope")


def test_paired_statistics_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 3.0, size=4)
    b = a + rng.normal(0.5, 0.1, size=4)  # shares the per-seed noise of a
    per_seed = {
        "A": {s: {"m": float(a[s])} for s in range(4)},
        "B": {s: {"m": float(b[s])} for s in range(4) if s != 2},
    }  # seed 2 missing: paired on 0,1,3
    d = ablation.paired_differences(per_seed, "A", "m")
    idx = [0, 1, 3]
    assert d["B"]["seeds"] == idx and d["B"]["n"] == 3
    assert d["B"]["mean"] == pytest.approx(np.mean(b[idx] - a[idx]))
    assert d["B"]["sd"] == pytest.approx(np.std(b[idx] - a[idx], ddof=1))
    # pairing removes the shared seed noise: the paired sd is far below the unpaired one
    assert d["B"]["sd"] < np.std(b[idx], ddof=1) / 3


def test_finished_folders_are_skipped_and_the_rest_resumes(tmp_path, monkeypatch):
    from harness.runs.records import RunRecord, write_record

    suite = ablation.load_suite(SUITE, "tiny", rows=["B"], seeds=[0, 1])
    calls = []

    def fake_train(suite, job):
        calls.append((job.seed, job.row, job.stage))
        job.out.mkdir(parents=True, exist_ok=True)
        (job.out / ablation.RECORD).write_text("{}")

    def fake_eval(job, device):
        calls.append((job.seed, job.row, job.stage))
        write_record(
            RunRecord(
                kind="eval",
                spec={"variant": job.row},
                seeds={"seed": job.seed},
                metrics={"fid": 10.0 + job.seed, "ar_acc": 0.1 * (job.seed + 1)},
            ),
            job.out,
            ablation.EVAL_RECORD,
        )

    monkeypatch.setattr(runner, "train_job", fake_train)
    monkeypatch.setattr(runner, "evaluate_job", fake_eval)
    done_dir = tmp_path / "seed0" / "B" / "stage1"  # finished before a kill
    done_dir.mkdir(parents=True)
    (done_dir / ablation.RECORD).write_text("{}")
    summary = ablation.run(suite, tmp_path, log=lambda *_: None)
    assert calls == [(0, "B", "ar"), (0, "B", "eval"), (1, "B", "stage1"), (1, "B", "ar"), (1, "B", "eval")]
    assert summary["complete"] and summary["rows"]["B"]["metrics"]["fid"]["mean"] == pytest.approx(10.5)
    assert (tmp_path / "ablation_table.md").read_text().count("10.500 ± 0.707") == 1
    assert (tmp_path / "ablation_bars.png").is_file()
    calls.clear()
    ablation.run(suite, tmp_path, log=lambda *_: None)  # a rerun of a finished suite trains nothing
    assert calls == []


def test_imagenet_preset_validates_without_imagenet(tmp_path):
    suite = ablation.load_suite(SUITE, "imagenet")
    report = ablation.validate(suite, tmp_path / "run")
    assert report["world_size"] == 8 and report["jobs_by_stage"]["stage1"] == 5 * len(suite.seeds)
    assert any("torchrun --nproc_per_node 8 -m harness train" in c for c in report["commands"])
    # the trainers and the evaluation read ImageNet folders: only the absent folder is missing
    assert report["missing"] == [
        f"imagenet_root: {suite.imagenet_root}: no such folder (ImageNet train and val class folders)"
    ]
    assert not (tmp_path / "run").exists()  # validation writes nothing
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "ablate",
            str(SUITE),
            "--preset",
            "imagenet",
            "--out",
            str(tmp_path / "run"),
            "--plan",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and json.loads(r.stdout)["missing"]
    tiny = ablation.validate(ablation.load_suite(SUITE, "tiny"), tmp_path / "t")
    assert tiny["missing"] == []


def _micro_suite(tmp_path, **preset):
    data = yaml.safe_load(SUITE.read_text())
    t = data["presets"]["tiny"]
    for k in ("stage1", "stage2", "ar"):
        t[k].update(steps=3, log_every=1, ckpt_every=2)
    t["stage1"]["loss"]["vq_warmup_steps"] = 1
    t["stage1"]["data"]["per_class"] = t["stage2"]["data"]["per_class"] = 2
    t["ar"]["data"].update(per_class_train=2, per_class_val=2)
    t["eval"].update(per_class=2, inception="random:0", kid_subset_size=10)
    t.update(preset)
    path = tmp_path / "micro.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_micro_suite_end_to_end(tmp_path, monkeypatch):
    """Two rows (D brings F's stage 1) x 2 seeds, a few steps each, random Inception weights."""
    monkeypatch.setenv("ALITOK_PROGRESS", "0")
    suite = ablation.load_suite(_micro_suite(tmp_path), "tiny", rows=["A", "F"], seeds=[0, 1])
    summary = ablation.run(suite, tmp_path / "run", log=lambda *_: None)
    assert summary["complete"] and set(summary["rows"]) == {"A", "D", "F"}
    rec = json.loads((tmp_path / "run" / "seed1" / "F" / "eval" / "eval_record.json").read_text())
    assert rec["spec"]["variant"] == "F" and rec["seeds"]["seed"] == 1
    for key in ("fid", "kid", "prec", "recall", "rfid", "psnr", "ssim", "ar_acc", "ar_ce_gain_positional_rest"):
        assert np.isfinite(rec["metrics"][key]), key
    # F shares D's AR model: identical next-token numbers, its own reconstructions
    d = summary["per_seed"]
    assert d["F"]["1"]["ar_acc"] == d["D"]["1"]["ar_acc"]
    assert summary["rows"]["A"]["metrics"]["fid"]["diff_to_baseline"]["mean"] == 0.0


def test_stage2_overrides_reach_only_that_rows_stage2():
    suite = ablation.load_suite(SUITE, "tiny", rows=["F", "F_effnet"], seeds=[0])
    by = {(j.row, j.stage): j.config for j in ablation.plan(suite, "/o")}
    assert by[("F_effnet", "stage2")]["loss"]["perceptual"]["effnet_weight"] > 0
    assert "perceptual" not in by[("F", "stage2")].get("loss", {})
    assert by[("F_effnet", "stage2")]["init_from"] == by[("F", "stage2")]["init_from"]  # both on D's stage 1
    assert by[("F_effnet", "stage2")]["optim"] == by[("F", "stage2")]["optim"]


def test_gan_rows_follow_the_official_stage2_schedule():
    """Upstream's stage 2 runs ~300 k steps with the hinge GAN on for the last ~100 k; the GAN rows scale
    that to the preset's step count and keep upstream's weights (0.1 x 0.05 generator, 0.1 x hinge D)."""
    suite = ablation.load_suite(SUITE, "tiny", rows=["F", "F_effnet", "F_gan", "F_effnet_gan"], seeds=[0])
    by = {(j.row, j.stage): j.config for j in ablation.plan(suite, "/o")}
    for row in ("F_gan", "F_effnet_gan"):
        cfg = by[(row, "stage2")]
        gan = cfg["loss"]["gan"]
        assert gan["enabled"] and gan["start_step"] == round(cfg["steps"] * 200_000 / 300_000)
        assert gan["generator_weight"] == pytest.approx(0.1 * 0.05) and gan["discriminator_weight"] == 0.1
        assert cfg["init_from"] == by[("F", "stage2")]["init_from"] and cfg["optim"] == by[("F", "stage2")]["optim"]
    # F_effnet_gan is F_effnet plus exactly the GAN of F_gan
    assert by[("F_effnet_gan", "stage2")]["loss"]["perceptual"] == by[("F_effnet", "stage2")]["loss"]["perceptual"]
    assert by[("F_effnet_gan", "stage2")]["loss"]["gan"] == by[("F_gan", "stage2")]["loss"]["gan"]
    assert "perceptual" not in by[("F_gan", "stage2")]["loss"]


@pytest.mark.slow
def test_launcher_runs_the_trainers_as_train_commands(tmp_path, monkeypatch):
    """With a launcher (here plain python; torchrun on a cluster) each stage is `python -m harness train`."""
    monkeypatch.setenv("ALITOK_PROGRESS", "0")
    monkeypatch.chdir(tmp_path)  # relative --out, as a user would type it
    suite = ablation.load_suite(_micro_suite(tmp_path, launcher=[sys.executable]), "tiny", rows=["B"], seeds=[0])
    jobs = [j for j in ablation.plan(suite, "run") if j.stage != "eval"]
    for job in jobs:
        ablation.train_job(suite, job)
        assert job.done
    rec = json.loads((tmp_path / "run" / "seed0" / "B" / "ar" / "train_record.json").read_text())
    assert rec["metrics"]["val_acc"] >= 0 and rec["spec"]["config"]["seed"] == 0


def test_paired_differences_carry_the_named_paired_standard_error(tmp_path, monkeypatch):
    from harness.report.paired import DESCRIPTION
    from harness.runs.records import RunRecord, write_record

    a, b = [0.60, 0.64, 0.61], [0.52, 0.58, 0.53]
    per_seed = {"A": {s: {"m": a[s]} for s in range(3)}, "B": {s: {"m": b[s]} for s in range(3)}}
    d = ablation.paired_differences(per_seed, "A", "m")["B"]
    diffs = np.array(b) - np.array(a)
    assert d["se"] == pytest.approx(np.std(diffs, ddof=1) / np.sqrt(3)) and d["statistic"] == DESCRIPTION

    # the table prints that statistic for differences, and summary.json goes through the record writer
    suite = ablation.load_suite(SUITE, "tiny", rows=["A", "B"], seeds=[0, 1, 2])
    monkeypatch.setattr(
        runner,
        "train_job",
        lambda suite, job: (job.out.mkdir(parents=True, exist_ok=True), (job.out / ablation.RECORD).write_text("{}")),
    )
    monkeypatch.setattr(
        runner,
        "evaluate_job",
        lambda job, device: write_record(
            RunRecord(
                kind="eval",
                spec={"variant": job.row},
                seeds={"seed": job.seed},
                metrics={"fid": 100.0 * (a if job.row == "A" else b)[job.seed]},
            ),
            job.out,
            ablation.EVAL_RECORD,
        ),
    )
    ablation.run(suite, tmp_path, log=lambda *_: None)
    table = (tmp_path / "ablation_table.md").read_text()
    se = 100 * np.std(diffs, ddof=1) / np.sqrt(3)
    # beside it the minimum detectable effect of that sd at 3 seeds: statsmodels' solved effect size x sd
    from statsmodels.stats.power import TTestPower

    mde = TTestPower().solve_power(nobs=3, alpha=0.05, power=0.8) * 100 * np.std(diffs, ddof=1)
    cell = f"| B: causal decoder | 3 | {100 * diffs.mean():.3f} ± {se:.3f} (MDE {mde:.3f}) |"
    assert cell in table and DESCRIPTION in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rows"]["B"]["metrics"]["fid"]["diff_to_baseline"]["mde"] == pytest.approx(mde, rel=1e-6)
    assert summary["sensitivity"]["fid"]["mde"] == pytest.approx(mde, rel=1e-6)  # one row: its sd is the pooled one
    prov = summary["provenance"]
    assert {"git_sha", "dirty"} <= set(prov["code"]) and prov["command"].endswith("--summarize")
    assert prov["machine"]["cpu_model"]


def _ar_record(acc):
    held = {"overall": {"acc": acc, "ce": 5.0}}
    base = {"unigram": {"acc": 0.01, "ce": 6.5}, "positional_unigram": {"acc": 0.02, "ce": 6.0}}
    return {"metric_provenance": {"heldout": held, "baselines": base}}


def _measured(gfid_comparable, n=50_000, official=True, description="ImageNet /data/imagenet/val: first 50 per class"):
    """What evaluate_reconstruction and evaluate_samples return for a full-scale row (their shapes, made up numbers)."""
    from harness.metrics.evaluate import EvalResult
    from harness.suites.ablation.evaluation import Measured

    weights = {"kind": "official" if official else "fid-helper", "official": official, "sha256": "6726825d" * 8}
    gfid = EvalResult(
        {"fid": 2.9},
        {
            "weights": weights,
            "samples": {"n": n},
            "reference": {"kind": "adm-virtual-imagenet256"},
            "not_comparable_because": [] if gfid_comparable else ["50 samples, not 50000"],
        },
        gfid_comparable,
    )
    held = EvalResult({"kid": 0.001, "prec": 0.8, "recall": 0.6}, {"kid_std": 1e-4}, False)
    recon = {
        "rfid": 1.0,
        "psnr": 20.0,
        "ssim": 0.6,
        "codebook_usage": 1.0,
        "codebook_perplexity": 4000.0,
        "n": n,
        "weights": weights,
    }
    return Measured(recon, gfid, held, description, "reference statistics VIRTUAL_imagenet256_labeled.npz")


def test_full_scale_eval_records_say_paper_comparable_as_a_suite_entry_would(tmp_path):
    """Before, the ablation's eval records never set paper_comparable, so the abl-* paper claims stayed "not
    run" after an ImageNet run. The flag is now the gFID evaluation's (evaluate_samples: paper rule + guards)
    and the rFID rule of `recon`, and the claims read the records."""
    from harness.cli.claims import DEFAULT_CLAIMS
    from harness.report.claims import NOT_RUN, check, load_claims
    from harness.suites.ablation.evaluation import eval_record

    suite = ablation.load_suite(SUITE, "imagenet", rows=["A"])
    job = next(j for j in ablation.plan(suite, tmp_path) if j.stage == "eval")

    def record(measured):
        return eval_record(
            job, measured, _ar_record(0.054), n_heldout=50_000, num_classes=1000, sampling=None, timings={}
        ).to_dict()

    good = record(_measured(True))
    assert good["paper_comparable"] is True and good["metric_provenance"]["not_comparable_because"] == []
    claims = load_claims(DEFAULT_CLAIMS)
    verdicts = {v.claim.id: v for v in check(claims, [good])}
    assert verdicts["abl-a-acc"].verdict != NOT_RUN and verdicts["abl-a-gfid"].verdict != NOT_RUN
    assert verdicts["abl-a-rfid"].verdict != NOT_RUN
    # either side not comparable -> the record is not, with the reason named
    for m, why in (
        (_measured(False), "gFID: 50 samples"),
        (_measured(True, official=False), "rFID: Inception weights"),
        (_measured(True, description="embedded val split, 8 per class"), "rFID: reconstructs embedded"),
    ):
        rec = record(m)
        assert rec["paper_comparable"] is False
        assert any(w.startswith(why) for w in rec["metric_provenance"]["not_comparable_because"]), why
        assert {v.claim.id: v for v in check(claims, [rec])}["abl-a-acc"].verdict == NOT_RUN
