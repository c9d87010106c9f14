"""Claims are checked from records alone: missing inputs -> not run; out of tolerance -> not reproduced."""

import json

import pytest

from harness.cli.claims import DEFAULT_CLAIMS
from harness.core.config import ConfigError
from harness.report.claims import (
    NOT_REPRODUCED,
    NOT_RUN,
    OPPOSITE_DIRECTION,
    REPRODUCED,
    SAME_DIRECTION,
    WITHIN_NOISE,
    check,
    load_claims,
)
from harness.report.collect import collect
from harness.runs.records import RunRecord


@pytest.fixture(scope="module")
def claims():
    return load_claims(DEFAULT_CLAIMS)


def _by_id(claims, verdicts):
    return {v.claim.id: v for v in verdicts}


def _gfid_record(fid, comparable=True, n=50000, reference_kind="adm-virtual-imagenet256", official=True, **sampling):
    # the provenance harness/metrics/evaluate.py records for a paper-comparable gFID
    return RunRecord(
        kind="eval",
        model={
            "name": "alitok-b",
            "checkpoint": "/data/weights/alitok_b.bin",
            "sampling": {"cfg_scale": 16.0, "cfg_power": 1.8, **sampling},
        },
        spec={"protocol": {"name": "imagenet256-gfid50k", "num_samples": n}},
        samples={"n": n},
        metric_provenance={
            "weights": {"official": official, "sha256": "6726825d" * 8},
            "samples": {"n": n},
            "reference": {"kind": reference_kind},
        },
        metrics={"fid": fid},
        paper_comparable=comparable,
    ).to_dict()


A800 = {"cpu_model": "Intel(R) Xeon(R) Platinum 8358", "gpu_name": "NVIDIA A800-SXM4-80GB"}


def _bench(model, ips, machine=A800, run="bench-run-1", **extra):
    # sampling as the bench CLI records it (CFG on unless extra says cfg_scale=1); one bench_run_id per invocation
    d = RunRecord(
        kind="bench",
        model={"name": model, "sampling": {"cfg_scale": 4.0, **extra}},
        spec={"bench_run_id": run},
        env={"device_name": (machine or {}).get("gpu_name") or "x86_64"},
        speed={"images_per_s": ips, "batch_size": 64, "dtype": "fp32"},
    ).to_dict()
    if machine is not None:
        d["machine"] = dict(machine)
    return d


def _variant(name, acc, preset="tiny", seed=0, comparable=False):
    # the shape harness.suites.ablation writes: spec.variant, spec.protocol.name = ablation-<preset>, seeds.seed
    return RunRecord(
        kind="eval",
        model={"name": f"ablation-{name}", "variant": name},
        metrics={"ar_acc": acc},
        spec={"variant": name, "protocol": {"name": f"ablation-{preset}"}},
        seeds={"seed": seed},
        paper_comparable=comparable,
    ).to_dict()


def test_file_holds_the_papers_numbers(claims):
    c = {x.id: x for x in claims.claims}
    # the README's released checkpoints and the paper's later numbers are kept apart
    assert (c["v1-b-gfid-cfg"].value, c["v1-l-gfid-cfg"].value, c["v1-xl-gfid-cfg"].value) == (1.50, 1.42, 1.35)
    assert (c["v3-b-gfid-cfg"].value, c["v3-l-gfid-cfg"].value, c["v3-xl-gfid-cfg"].value) == (1.44, 1.38, 1.28)
    assert c["v1-b-gfid-cfg"].source != c["v3-b-gfid-cfg"].source
    # a ratio claim equals the ratio of the throughputs the same table states
    assert c["ratio-l-mar-h"].value == pytest.approx(c["speed-l"].value / c["speed-mar-h"].value, rel=1e-3)
    assert c["ratio-xl-lightningdit"].value == pytest.approx(c["speed-xl"].value / c["speed-lightningdit"].value)


def test_missing_inputs_are_not_run_and_name_what_is_missing(claims):
    verdicts = check(claims, [])
    assert {v.verdict for v in verdicts} == {NOT_RUN}
    v = _by_id(claims, verdicts)["v1-b-gfid-cfg"]
    assert v.measured is None and "alitok_b.bin" in " ".join(v.claim.requires) and "no record with" in v.detail


def test_planted_out_of_tolerance_is_not_reproduced_and_in_tolerance_is_reproduced(claims):
    paper = {x.id: x for x in claims.claims}["v1-b-gfid-cfg"].value
    bad = _by_id(claims, check(claims, [_gfid_record(paper + 0.30)]))["v1-b-gfid-cfg"]
    assert bad.verdict == NOT_REPRODUCED and bad.delta == pytest.approx(0.30)
    good = _by_id(claims, check(claims, [_gfid_record(paper + 0.02)]))["v1-b-gfid-cfg"]
    assert good.verdict == REPRODUCED and good.measured == pytest.approx(paper + 0.02)


def test_a_record_off_protocol_does_not_count(claims):
    paper = {x.id: x for x in claims.claims}["v1-b-gfid-cfg"].value
    for rec in (_gfid_record(paper, comparable=False), _gfid_record(paper, cfg_scale=4.0)):
        assert _by_id(claims, check(claims, [rec]))["v1-b-gfid-cfg"].verdict == NOT_RUN


def test_speed_ratio_from_two_records(claims):
    recs = [_bench("alitok-xl", 63.0), _bench("lightningdit-xl-1", 6.0)]
    v = _by_id(claims, check(claims, recs))["ratio-xl-lightningdit"]
    assert v.measured == pytest.approx(63.0 / 6.0) and v.verdict == REPRODUCED
    v = _by_id(claims, check(claims, [_bench("alitok-xl", 30.0), _bench("lightningdit-xl-1", 6.0)]))[
        "ratio-xl-lightningdit"
    ]
    assert v.measured == pytest.approx(5.0) and v.verdict == NOT_REPRODUCED


CPU = {"cpu_model": "AMD EPYC 7B13", "gpu_name": None}


@pytest.mark.parametrize(
    "b_kwargs",
    [
        {"machine": CPU},  # an A800 record over a CPU record
        {"run": "bench-run-2"},  # one machine, two bench runs
        {"machine": None},
    ],
)  # a record that names no CPU model
def test_speed_ratio_only_from_one_machine_and_one_bench_run(claims, b_kwargs):
    recs = [_bench("alitok-xl", 6.3), _bench("lightningdit-xl-1", 0.6, **b_kwargs)]
    v = _by_id(claims, check(claims, recs))["ratio-xl-lightningdit"]
    assert v.verdict == NOT_RUN and v.measured is None and "one machine" in v.detail


@pytest.mark.parametrize(
    "bad",
    [
        {"comparable": "false"},  # a string is not JSON true
        {"n": 50},  # N=50 under a 50k protocol
        {"reference_kind": "alitok-bench"},  # not the paper's reference
        {"official": False},
    ],
)  # not the official weights
def test_paper_claim_only_from_strictly_comparable_records(claims, bad):
    paper = {x.id: x for x in claims.claims}["v1-b-gfid-cfg"].value
    kwargs = {"comparable": True, **bad}
    v = _by_id(claims, check(claims, [_gfid_record(paper, **kwargs)]))["v1-b-gfid-cfg"]
    assert v.verdict == NOT_RUN and v.measured is None and "comparable with the paper" in v.detail


def test_string_false_is_not_comparable_anywhere():
    from harness.report import fields
    from harness.report.collect import frame

    rec = _gfid_record(1.5, comparable="false")
    assert fields.paper_comparable(rec) is False and not frame([rec])["paper_comparable"][0]


def test_full_scale_ablation_claims_need_comparable_records(claims):
    full = [_variant("B", 0.107, "imagenet"), _variant("A", 0.054, "imagenet")]
    assert _by_id(claims, check(claims, full))["abl-b-acc"].verdict == NOT_RUN
    every_paper_query = [
        q for c in claims.claims if c.scale == "paper" and c.metric != "images_per_s" for q in c.queries()
    ]
    assert every_paper_query and all(q.paper_comparable is True for q in every_paper_query)


def test_stage_two_claim_compares_f_with_e(claims):
    c = {x.id: x for x in claims.claims}["tiny-two-stage-rfid"]
    assert "E -> F" in c.claim and [q.variant for q in c.measure.difference] == ["F", "E"]


def test_direction_claim_uses_the_paired_standard_error(claims):
    import statistics

    causal, bidir = [0.20, 0.23, 0.22], [0.15, 0.16, 0.19]  # seed s of B pairs with seed s of A
    recs = [_variant("B", a, seed=s) for s, a in enumerate(causal)] + [
        _variant("A", a, seed=s) for s, a in enumerate(bidir)
    ]
    v = _by_id(claims, check(claims, recs))["tiny-causal-decoder-acc"]
    diffs = [b - a for b, a in zip(causal, bidir)]
    assert v.measured == pytest.approx(statistics.mean(diffs)) and v.verdict == SAME_DIRECTION
    assert v.unc == pytest.approx(statistics.stdev(diffs) / 3**0.5)


def test_a_direction_needs_the_95_percent_t_interval_to_exclude_zero(claims):
    from scipy import stats

    # differences +0.02, +0.05, +0.08: the mean is 2.9 paired SE from 0, but scipy's 95 % t interval
    # (2 df) holds 0, so there is no direction; the ablation table reads the same numbers the same way
    bidir = [0.15, 0.16, 0.19]
    recs = [_variant("B", a + d, seed=s) for s, (a, d) in enumerate(zip(bidir, [0.02, 0.05, 0.08]))] + [
        _variant("A", a, seed=s) for s, a in enumerate(bidir)
    ]
    v = _by_id(claims, check(claims, recs))["tiny-causal-decoder-acc"]
    ci = stats.ttest_1samp([0.02, 0.05, 0.08], 0.0).confidence_interval(0.95)
    assert v.measured > 2 * v.unc and ci.low < 0 < ci.high
    assert v.verdict == WITHIN_NOISE and f"{ci.low:.4g}" in v.detail
    one = _by_id(claims, check(claims, [_variant("B", 0.3, seed=0), _variant("A", 0.1, seed=0)]))
    assert one["tiny-causal-decoder-acc"].verdict == WITHIN_NOISE  # one seed: no spread, no direction


def test_pairing_removes_the_shared_seed_noise(claims):
    # B = A + 0.01 on every seed while seeds spread A by 0.4: unpaired, the effect drowns in the spread
    bidir = [0.10, 0.50, 0.90]
    recs = [_variant("B", a + 0.01, seed=s) for s, a in enumerate(bidir)] + [
        _variant("A", a, seed=s) for s, a in enumerate(bidir)
    ]
    v = _by_id(claims, check(claims, recs))["tiny-causal-decoder-acc"]
    assert v.measured == pytest.approx(0.01) and v.unc == pytest.approx(0.0, abs=1e-12)
    assert v.verdict == SAME_DIRECTION


def test_direction_answers_are_never_paper_verdicts(claims):
    recs = [_variant("B", a, seed=s) for s, a in enumerate([0.1, 0.11, 0.12])] + [
        _variant("A", a, seed=s) for s, a in enumerate([0.2, 0.21, 0.23])
    ]
    verdicts = check(claims, recs)
    tiny = [v for v in verdicts if v.claim.scale == "tiny"]
    assert tiny and all(v.verdict in (SAME_DIRECTION, OPPOSITE_DIRECTION, WITHIN_NOISE, NOT_RUN) for v in tiny)
    assert _by_id(claims, verdicts)["tiny-causal-decoder-acc"].verdict == OPPOSITE_DIRECTION
    from harness.report.claims import to_frame, to_markdown

    df = to_frame(verdicts)
    assert (df[df["section"] != "paper"]["verdict"] == "").all()
    text = to_markdown(claims, verdicts)
    paper_table, tiny_section = text.split("## Directions at tiny scale (ablation-tiny, ablation-small)")
    assert "causal decoder raises AR accuracy" not in paper_table and "opposite direction" in tiny_section


def test_tiny_and_full_scale_rows_of_the_same_name_stay_apart(claims):
    tiny = [_variant("B", 0.20), _variant("A", 0.15)]
    full = [_variant("B", 0.107, "imagenet", comparable=True), _variant("A", 0.054, "imagenet", comparable=True)]
    verdicts = _by_id(claims, check(claims, tiny + full))
    assert verdicts["tiny-causal-decoder-acc"].measured == pytest.approx(0.05)  # tiny records only
    assert verdicts["abl-b-acc"].measured == pytest.approx(0.107) and verdicts["abl-b-acc"].verdict == REPRODUCED
    only_tiny = _by_id(claims, check(claims, tiny))
    assert only_tiny["abl-b-acc"].verdict == NOT_RUN  # a tiny row never answers a full-scale claim


def test_committed_claims_table_is_reproduced_byte_for_byte(tmp_path):
    from harness.cli import main

    root = DEFAULT_CLAIMS.parent.parent.parent
    assert main(["claims", str(root / "results"), "--out", str(tmp_path)]) == 0
    for name in ("claims.md", "claims.csv"):
        assert (tmp_path / name).read_bytes() == (DEFAULT_CLAIMS.parent / name).read_bytes(), name


def test_claims_cli_reads_records_and_writes_tables(tmp_path, capsys, claims):
    from harness.cli import main

    paper = {x.id: x for x in claims.claims}["v1-b-gfid-cfg"].value
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "eval_record.json").write_text(json.dumps(_gfid_record(paper + 1.0)))
    assert main(["claims", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "| AliTok-B v1 gFID, CFG 16.0 pow 1.8 | readme-v1 | 1.5 | 2.5 | +1 | not reproduced |" in text
    # one row per claim of every claims file (alitok.yaml and each baseline's), one header
    from harness.cli.claims import default_claims_files

    rows = sum(len(load_claims(p).claims) for p in default_claims_files())
    assert (tmp_path / "o" / "claims.csv").read_text().count("\n") == rows + 1 > len(claims.claims) + 1
    assert main(["claims", str(tmp_path / "r"), "--fail-on-not-reproduced"]) == 1
    assert collect([tmp_path / "r"])[0]["model"]["name"] == "alitok-b"


@pytest.mark.parametrize(
    "source,query,error",
    [
        ("nope", "{model: m}", "source 'nope'"),  # a source the file does not list
        ("a", "{model: m, variant: B}", "paper_comparable: true"),  # a paper-scale claim without the flag
    ],
)
def test_bad_claims_file_is_a_config_error(tmp_path, source, query, error):
    (tmp_path / "c.yaml").write_text(
        f"paper: x\nsources: {{a: b}}\nclaims:\n  - {{id: x, claim: y, source: {source}, protocol: p, metric: fid,"
        f" value: 1.0, tolerance: {{abs: 0.1}}, measure: {{query: {query}}}}}\n"
    )
    with pytest.raises(ConfigError, match=error):
        load_claims(tmp_path / "c.yaml")


def test_speed_ratios_of_several_bench_runs_average_per_run(claims):
    # each run's ratio is taken inside the run (its load is shared by both models), then averaged
    recs = [
        _bench("alitok-xl", 63.0, run="r1"),
        _bench("lightningdit-xl-1", 6.0, run="r1"),
        _bench("alitok-xl", 33.0, run="r2"),
        _bench("lightningdit-xl-1", 3.0, run="r2"),
    ]
    v = _by_id(claims, check(claims, recs))["ratio-xl-lightningdit"]
    assert v.measured == pytest.approx((63.0 / 6.0 + 33.0 / 3.0) / 2) and v.n == 2
    assert v.unc == pytest.approx(abs(63.0 / 6.0 - 33.0 / 3.0) / 2)  # sd of two values / sqrt(2)


@pytest.mark.parametrize("name", ["alitok-xl", "alitok-xl-official"])
def test_upstream_timings_never_answer_a_speed_claim(claims, name):
    # bench --upstream records upstream's own sampler beside the project's; a claim reads the harness's only,
    # whatever the upstream row happens to be called (an older writer named it like the project's model)
    official = _bench(name, 63.0)
    official["model"].update(implementation="upstream", registry_name="alitok-xl")
    v = _by_id(claims, check(claims, [official, _bench("lightningdit-xl-1", 6.0)]))["ratio-xl-lightningdit"]
    assert v.verdict == NOT_RUN and v.measured is None
    project = _bench("alitok-xl", 30.0)
    project["model"]["implementation"] = "project"
    v = _by_id(claims, check(claims, [official, project, _bench("lightningdit-xl-1", 6.0)]))["ratio-xl-lightningdit"]
    assert v.measured == pytest.approx(5.0)  # the project's 30 / 6, the official 63 left out
