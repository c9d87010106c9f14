"""The known-mistake guard: every check fires on a planted case and stays silent on a clean one."""

import numpy as np
import pytest
import torch

from harness.metrics import guards as g

VIRTUAL = {"kind": g.ADM_VIRTUAL_KIND, "path": "VIRTUAL_imagenet256_labeled.npz", "split": "train"}
VAL_CROP = {"kind": "alitok-bench", "path": "val256.npz", "split": "val", "preprocessing": g.ADM_CENTER_CROP}


def codes(findings):
    return {(f.code, f.severity) for f in findings}


def test_reference_guards():
    assert codes(g.check_reference("rfid", VIRTUAL)) == {("rfid-vs-gfid-reference", "fatal")}
    uncropped = {**VAL_CROP, "preprocessing": "resize-256-no-crop"}
    assert codes(g.check_reference("rfid", uncropped)) == {("rfid-reference-not-center-crop", "fatal")}
    assert codes(g.check_reference("rfid", {**VAL_CROP, "preprocessing": None})) == {
        ("rfid-reference-not-center-crop", "warn")
    }
    assert codes(g.check_reference("gfid", VAL_CROP)) == {("gfid-reference-not-virtual", "fatal")}
    assert g.check_reference("rfid", VAL_CROP) == []
    assert g.check_reference("gfid", VIRTUAL) == []
    with pytest.raises(ValueError):
        g.check_reference("fid", VIRTUAL)


def test_sample_count_guard():
    assert codes(g.check_sample_count(10_000)) == {("fewer-than-50k", "fatal")}
    assert codes(g.check_sample_count(50_001)) == {("more-than-50k", "warn")}
    assert g.check_sample_count(50_000) == []


def test_label_guards():
    balanced = np.arange(50_000) % 1000
    assert g.check_labels(balanced, 1000, label_rule="balanced") == []
    random = np.random.default_rng(0).integers(0, 1000, 50_000)
    assert codes(g.check_labels(random, 1000)) == {("labels-unbalanced", "fatal")}
    assert ("labels-random", "fatal") in codes(g.check_labels(balanced, 1000, label_rule="random"))
    assert g.check_labels(balanced, 1000, label_rule="random", protocol_rule="random") == []
    assert codes(g.check_labels(np.sort(balanced), 1000)) == {("labels-class-sorted", "warn")}
    assert codes(g.check_labels(None, 1000)) == {("labels-unknown", "warn")}
    assert codes(g.check_labels(balanced[:-1], 1000)) == {("labels-unbalanced", "fatal")}
    assert codes(g.check_labels(balanced + 1, 1000)) == {("labels-out-of-range", "fatal")}


def test_seed_layout_guard():
    f = g.check_seed_layout("legacy_rank", world_size=8, batch_size=125)
    assert codes(f) == {("seed-layout-gpu-count", "warn")} and "world size 8" in f[0].message
    assert g.check_seed_layout("chunk") == []


def test_sampling_preset_guard_names_the_difference():
    published = {"cfg_scale": 1.5, "steps": 250, "schedule": "linear"}
    f = g.check_sampling_preset({"cfg_scale": 4.0, "steps": 250, "schedule": "linear"}, published, "DiT-XL/2")
    assert codes(f) == {("preset-differs", "fatal")}
    assert "cfg_scale 4.0 (published 1.5)" in f[0].message and "steps" not in f[0].message
    assert g.check_sampling_preset({"cfg_scale": 1.5, "steps": 250, "schedule": "linear", "extra": 1}, published) == []
    assert "temperature 'unset'" in g.check_sampling_preset({}, {"temperature": 1.0})[0].message
    assert codes(g.check_sampling_preset({"cfg_scale": 1.5}, None)) == {("preset-unknown", "warn")}


def test_resize_guards():
    r384 = [{"from": 384, "to": 256, "method": "PIL bicubic"}]
    f = g.check_resize("llamagen_gpt_xl_384", r384, sample_size=384, eval_size=256)
    assert codes(f) == {("llamagen-384-resize", "warn")} and "384x384 -> 256x256 (PIL bicubic)" in f[0].message
    assert codes(g.check_resize("llamagen_gpt_xl_384", [], sample_size=384, eval_size=384)) == {
        ("llamagen-384-not-resized", "fatal")
    }
    assert codes(g.check_resize("dit_xl_2", [{"from": [512, 512], "to": [256, 256]}])) == {("resized", "warn")}
    assert g.check_resize("alitok_b", [], sample_size=256, eval_size=256) == []


def test_uint8_and_numerics_guards():
    assert codes(g.check_uint8("truncate")) == {("uint8-truncate", "warn")}
    assert codes(g.check_uint8(None)) == {("uint8-rule-unknown", "warn")}
    assert codes(g.check_uint8("round", dtype="float32")) == {("samples-not-uint8", "fatal")}
    assert g.check_uint8("round") == [] and g.check_uint8("offset_half") == []
    cuda_bf16 = {"device_type": "cuda", "dtype": "bf16", "tf32": True}
    assert g.check_numerics(cuda_bf16, {"dtype": "fp32", "tf32": False}) == []
    assert codes(g.check_numerics(cuda_bf16, {"dtype": "fp32", "tf32": True})) == {("features-not-fp32", "fatal")}
    assert codes(g.check_numerics(cuda_bf16, {"dtype": "bf16", "tf32": False})) == {("features-not-fp32", "fatal")}
    assert codes(g.check_numerics(None, None)) == {("sampling-numerics-unknown", "warn")}


def test_batch_size_guard_on_real_and_planted_extractors():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    ).eval()

    @torch.no_grad()
    def clean(batch):
        return net(torch.as_tensor(batch).permute(0, 3, 1, 2).float() / 255).numpy()

    def planted(batch):  # batch statistics leak into each image's features (e.g. BatchNorm left in train mode)
        f = clean(batch)
        return {"pool": f - f.mean(0, keepdims=True)}

    images = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    findings, details = g.batch_size_check(clean, images, (1, 6))
    assert findings == [] and details["max_rel_diff"]["features"] < 1e-5
    findings, details = g.batch_size_check(planted, images, (1, 6))
    assert codes(findings) == {("features-depend-on-batch-size", "fatal")} and details["max_rel_diff"]["pool"] > 0.1


def test_protocol_block_and_verdict():
    findings = g.check_sample_count(220) + g.check_uint8("truncate")
    text = g.render_protocol_block(
        findings,
        {
            "n": 220,
            "labels": "balanced 20/class",
            "seed_scheme": "chunk",
            "uint8": "truncate",
            "sampling_numerics": {"dtype": "fp32", "tf32": False},
        },
    )
    lines = text.splitlines()
    assert lines[0] == (
        "protocol: N=220, labels=balanced 20/class, seeds=chunk, uint8=truncate, sampling=dtype=fp32 tf32=off"
    )
    assert lines[1].startswith("  FATAL fewer-than-50k: 220 samples") and lines[2].startswith("  warn  uint8-truncate")
    assert lines[-1] == "paper_comparable: NO (1 fatal)"
    assert not g.paper_comparable(findings)
    assert g.render_protocol_block([]).splitlines()[-1] == "paper_comparable: yes" and g.paper_comparable([])
    with pytest.raises(ValueError):
        g.Finding("x", "error", "bad severity")


def test_run_guards_combines_the_checks_present():
    clean = {
        "metric": "gfid",
        "reference": VIRTUAL,
        "n": 50_000,
        "labels": np.arange(50_000) % 1000,
        "num_classes": 1000,
        "label_rule": "balanced",
        "seed_scheme": "chunk",
        "model": "alitok_b",
        "sampling": {"cfg": 2.0},
        "published_sampling": {"cfg": 2.0},
        "resizes": [],
        "uint8": "round",
        "sampling_numerics": {"device_type": "cuda", "dtype": "bf16", "tf32": True},
        "feature_numerics": {"dtype": "fp32", "tf32": False},
    }
    assert g.run_guards(clean) == []
    planted = {
        **clean,
        "metric": "rfid",
        "n": 10_000,
        "labels": None,
        "seed_scheme": "legacy_rank",
        "sampling": {"cfg": 4.0},
        "uint8": "truncate",
    }
    assert {f.code for f in g.run_guards(planted)} == {
        "rfid-vs-gfid-reference",
        "fewer-than-50k",
        "labels-unknown",
        "seed-layout-gpu-count",
        "preset-differs",
        "uint8-truncate",
    }
    assert g.run_guards({}) == []
