"""The known-mistake guard wired into evaluation: facts gathered from what an eval knows, findings in the record."""

import json

import numpy as np

from harness.metrics import eval_facts, guards
from harness.report import fields

VIRTUAL = {"kind": guards.ADM_VIRTUAL_KIND, "split": "train", "preprocessing": None, "path": "VIRTUAL.npz"}


def clean_record(**model):
    """A sample_record.json as the sample verb writes it, for a 50k chunk-seeded run at the plugin preset."""
    return {
        "kind": "sample",
        "model": {
            "name": "alitok-b",
            "sampling": {"cfg_scale": 1.5, "temperature": 1.0},
            "quantization": "round",
            **model,
        },
        "spec": {
            "model": {"name": "alitok-b", "sampling": {}},
            "protocol": {"num_classes": 1000, "image_size": 256, "seed_scheme": "chunk"},
        },
        "seeds": {"seed_scheme": "chunk"},
    }


def clean_spec():
    return {"sampling_identity": {"numerics": {"device_type": "cuda", "dtype": "fp32", "tf32": False}}}


def balanced(n=50_000, c=1000):
    return np.arange(n) % c


def test_clean_50k_run_has_no_findings():
    facts = eval_facts.build_facts(
        n=50_000,
        labels=balanced(),
        reference=VIRTUAL,
        image_size=(256, 256),
        record=clean_record(),
        folder_spec=clean_spec(),
    )
    found = guards.run_guards(facts)
    assert found == [] and guards.paper_comparable(found)
    block = guards.render_protocol_block(found, eval_facts.printable(facts))
    assert "N=50,000" in block and "50-50/class over 1000" in block and block.endswith("paper_comparable: yes")


def test_planted_mistakes_are_found():
    # 220 samples, random-looking unbalanced labels, legacy seeds, an overridden cfg, truncation, no numerics
    rec = clean_record(quantization="truncate")
    rec["spec"]["model"]["sampling"] = {"cfg_scale": 4.0}
    rec["spec"]["protocol"]["seed_scheme"] = rec["seeds"]["seed_scheme"] = "legacy_rank"
    facts = eval_facts.build_facts(
        n=220, labels=np.zeros(220, int), reference=VIRTUAL, image_size=(256, 256), record=rec, folder_spec=None
    )
    found = {f.code: f.severity for f in guards.run_guards(facts)}
    assert found == {
        "fewer-than-50k": "fatal",
        "labels-unbalanced": "fatal",
        "seed-layout-gpu-count": "warn",
        "preset-overridden": "warn",
        "uint8-truncate": "warn",
        "sampling-numerics-unknown": "warn",
    }
    # with the plugin's preset recorded the difference is named and fatal
    rec["model"]["published_sampling"] = {"cfg_scale": 1.5}
    rec["model"]["sampling"]["cfg_scale"] = 4.0
    facts = eval_facts.build_facts(
        n=50_000, labels=balanced(), reference=VIRTUAL, image_size=(256, 256), record=rec, folder_spec=clean_spec()
    )
    (preset,) = [f for f in guards.run_guards(facts) if f.code == "preset-differs"]
    assert preset.severity == "fatal" and "cfg_scale 4.0" in preset.message


def test_rfid_against_the_gfid_reference_is_fatal():
    facts = eval_facts.build_facts(n=50_000, labels=None, reference=VIRTUAL, image_size=(256, 256), metric="rfid")
    codes = {f.code: f.severity for f in guards.run_guards(facts)}
    assert codes["rfid-vs-gfid-reference"] == "fatal" and codes["labels-unknown"] == "warn"
    assert codes["uint8-rule-unknown"] == "warn"  # an npz from elsewhere


def test_sample_run_files_are_found_beside_an_npz_and_in_a_folder(tmp_path):
    (tmp_path / "sample_record.json").write_text(json.dumps(clean_record()))
    (tmp_path / "spec.json").write_text(json.dumps(clean_spec()))
    for where in (tmp_path / "samples.npz", tmp_path):
        rec, spec = eval_facts.sampling_run_files(where)
        assert rec["model"]["name"] == "alitok-b" and spec["sampling_identity"]["numerics"]["dtype"] == "fp32"
    assert eval_facts.sampling_run_files(np.zeros(3)) == (None, None)


def test_report_fields_read_findings_and_uncertainty():
    rec = {
        "protocol_findings": [{"code": "fewer-than-50k", "severity": "fatal", "message": "220 samples"}, "old text"],
        "uncertainty": {"fid": {"std": 0.25, "method": "disjoint-subsets(k=5,seed=0)"}},
    }
    assert fields.protocol_findings(rec) == ["FATAL fewer-than-50k: 220 samples", "old text"]
    assert fields.uncertainty(rec, "fid") == 0.25 and fields.uncertainty(rec, "is") is None


def test_fid_subset_spread_equals_an_independent_computation():
    from scipy import linalg

    from harness.metrics.uncertainty import fid_subset_spread, subset_indices

    rng = np.random.default_rng(0)
    pool = rng.normal(size=(60, 6))
    ref = rng.normal(loc=0.3, size=(500, 6))
    mu_r, sigma_r = ref.mean(0), np.cov(ref, rowvar=False)

    def fd(x):  # the Fréchet formula with scipy's matrix square root
        mu, sigma = x.mean(0), np.cov(x, rowvar=False)
        covmean = linalg.sqrtm(sigma @ sigma_r).real
        return float(((mu - mu_r) ** 2).sum() + np.trace(sigma + sigma_r - 2 * covmean))

    got = fid_subset_spread(pool, mu_r, sigma_r, k=5, seed=3)
    values = [fd(pool[idx]) for idx in subset_indices(60, 5, seed=3)]
    assert np.allclose(got["values"], values, rtol=1e-7)
    assert np.isclose(got["subset_std"], np.std(values, ddof=1))
    assert np.isclose(got["std"], np.std(values, ddof=1) / np.sqrt(5))
    assert got["method"] == "disjoint-subsets(k=5,seed=3)" and got["subset_size"] == 12


def test_compare_sigma_gate_reads_the_recorded_spread():
    from harness.report.compare import compare, parse_gate
    from harness.runs.records import RunRecord

    def rec(fid, std):
        d = RunRecord(
            kind="eval",
            model={"name": "m"},
            metrics={"fid": fid},
            uncertainty={"fid": {"std": std, "method": "disjoint-subsets(k=10,seed=0)"}},
        ).to_dict()
        return {**d, "label": "m"}

    gate = [parse_gate("fid:+2sigma")]
    sd = (0.3**2 + 0.4**2) ** 0.5
    assert compare([rec(10.0, 0.3)], [rec(10.0 + 2 * sd - 1e-6, 0.4)], gate)[0].passed
    assert not compare([rec(10.0, 0.3)], [rec(10.0 + 2 * sd + 1e-6, 0.4)], gate)[0].passed


SUITE = """
name: w
protocol: demo
num_samples: 11
metrics: [fid]
reference: "embedded:val"
reference_per_class: 1
inception: "random:0"
entries:
  - label: tiny
    model: {name: alitok-tiny, sampling: {cfg_scale: 2.5}}
"""


def test_suite_records_carry_findings_and_run_prints_the_block(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("ALITOK_BENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "w.yaml").write_text(SUITE)
    assert (
        main(["run", str(tmp_path / "w.yaml"), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]) == 0
    )
    text = capsys.readouterr().out
    rec = json.loads((tmp_path / "out" / "tiny" / "run_record.json").read_text())
    codes = {f["code"]: f["severity"] for f in rec["protocol_findings"]}
    assert codes["fewer-than-50k"] == "fatal" and rec["paper_comparable"] is False
    assert codes["preset-overridden"] == "warn"  # cfg_scale set over the plugin's preset
    assert "seed-layout-gpu-count" not in codes and "sampling-numerics-unknown" not in codes  # spec.json says
    assert "not kept" in rec["metric_provenance"]["uncertainty_skipped"]["fid"]  # FID alone streams moments
    table_end = text.index("paper_comparable")  # the table's column header comes before the block
    assert text.index("tiny: protocol: N=11") > table_end and "FATAL fewer-than-50k" in text


def test_eval_checks_once_that_features_do_not_depend_on_the_batch_size(tmp_path, monkeypatch):
    """The guard runs inside every eval that extracts: silent for the real extractor, FATAL (and
    paper_comparable false) for one whose features see the rest of the batch."""
    import numpy as np

    from harness.metrics.evaluate import EvalOptions, evaluate_samples
    from harness.metrics.inception import InceptionExtractor
    from harness.metrics.refstats import build_reference_from_images
    from harness.metrics.weights import resolve_weights

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    ex = InceptionExtractor(resolve_weights("random:0"), "cpu")
    ref = build_reference_from_images(imgs[6:], tmp_path / "ref.npz", inception=ex, batch_size=6, cache=False)
    clean = evaluate_samples(imgs[:6], ref, EvalOptions(metrics="fid", inception=ex, cache=False))
    assert "features-depend-on-batch-size" not in [f["code"] for f in clean.findings]
    assert clean.provenance["batch_size_check"]["n_images"] == 4

    real_call = InceptionExtractor.__call__

    def batch_dependent(self, batch):  # a planted extractor that leaks batch statistics into every row
        out = real_call(self, batch)
        return {k: v + v.mean(axis=0, keepdims=True) for k, v in out.items()}

    monkeypatch.setattr(InceptionExtractor, "__call__", batch_dependent)
    bad = evaluate_samples(imgs[:6], ref, EvalOptions(metrics="fid", inception=ex, cache=False))
    assert "features-depend-on-batch-size" in [f["code"] for f in bad.findings]
    assert bad.paper_comparable is False
