"""Claims are checked from records alone: missing inputs -> not run; out of tolerance -> not reproduced."""
import json

import pytest

from harness.claims import NOT_REPRODUCED, NOT_RUN, REPRODUCED, check, load_claims
from harness.commands.claims import DEFAULT_CLAIMS
from harness.config import ConfigError
from harness.records import RunRecord
from harness.report.collect import collect


@pytest.fixture(scope="module")
def claims():
    return load_claims(DEFAULT_CLAIMS)


def _by_id(claims, verdicts):
    return {v.claim.id: v for v in verdicts}


def _gfid_record(fid, comparable=True, **sampling):
    return RunRecord(kind="eval", model={"name": "alitok-b", "checkpoint": "/data/weights/alitok_b.bin",
                                         "sampling": {"cfg_scale": 16.0, "cfg_power": 1.8, **sampling}},
                     spec={"protocol": {"name": "imagenet256-gfid50k", "num_samples": 50000}},
                     metrics={"fid": fid}, paper_comparable=comparable).to_dict()


def _bench(model, ips, **extra):  # sampling as the bench CLI records it; CFG on unless extra says cfg_scale=1
    return RunRecord(kind="bench", model={"name": model, "sampling": {"cfg_scale": 4.0, **extra}},
                     speed={"images_per_s": ips, "batch_size": 64, "dtype": "fp32"}).to_dict()


def _variant(name, acc, preset="tiny"):
    # the shape harness.ablation writes: spec.variant and spec.protocol.name = ablation-<preset>
    return RunRecord(kind="eval", model={"name": f"ablation-{name}", "variant": name}, metrics={"ar_acc": acc},
                     spec={"variant": name, "protocol": {"name": f"ablation-{preset}"}}).to_dict()


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
    v = _by_id(claims, check(claims, [_bench("alitok-xl", 30.0), _bench("lightningdit-xl-1", 6.0)]))["ratio-xl-lightningdit"]
    assert v.measured == pytest.approx(5.0) and v.verdict == NOT_REPRODUCED


def test_direction_claim_uses_seed_spread(claims):
    causal, bidir = [0.20, 0.21, 0.22], [0.15, 0.16, 0.17]
    recs = [_variant("B", a) for a in causal] + [_variant("A", a) for a in bidir]
    v = _by_id(claims, check(claims, recs))["tiny-causal-decoder-acc"]
    assert v.measured == pytest.approx(sum(causal) / 3 - sum(bidir) / 3) and v.verdict == REPRODUCED
    assert v.unc == pytest.approx((2 * (0.01 ** 2 / 3)) ** 0.5)   # sd of each mean, combined
    recs = [_variant("B", a) for a in bidir] + [_variant("A", a) for a in causal]
    assert _by_id(claims, check(claims, recs))["tiny-causal-decoder-acc"].verdict == NOT_REPRODUCED
    # same direction but inside the noise: not a reproduction
    recs = [_variant("B", a) for a in (0.10, 0.30)] + [_variant("A", a) for a in (0.15, 0.17)]
    assert _by_id(claims, check(claims, recs))["tiny-causal-decoder-acc"].verdict == NOT_REPRODUCED


def test_tiny_and_full_scale_rows_of_the_same_name_stay_apart(claims):
    tiny = [_variant("B", 0.20), _variant("A", 0.15)]
    full = [_variant("B", 0.107, "imagenet"), _variant("A", 0.054, "imagenet")]
    verdicts = _by_id(claims, check(claims, tiny + full))
    assert verdicts["tiny-causal-decoder-acc"].measured == pytest.approx(0.05)  # tiny records only
    assert verdicts["abl-b-acc"].measured == pytest.approx(0.107) and verdicts["abl-b-acc"].verdict == REPRODUCED
    only_tiny = _by_id(claims, check(claims, tiny))
    assert only_tiny["abl-b-acc"].verdict == NOT_RUN  # a tiny row never answers a full-scale claim


def test_claims_cli_reads_records_and_writes_tables(tmp_path, capsys, claims):
    from harness.cli import main

    paper = {x.id: x for x in claims.claims}["v1-b-gfid-cfg"].value
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "eval_record.json").write_text(json.dumps(_gfid_record(paper + 1.0)))
    assert main(["claims", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "| AliTok-B v1 gFID, CFG 16.0 pow 1.8 | readme-v1 | 1.5 | 2.5 | +1 | not reproduced |" in text
    assert (tmp_path / "o" / "claims.csv").read_text().count("\n") == len(claims.claims) + 1
    assert main(["claims", str(tmp_path / "r"), "--fail-on-not-reproduced"]) == 1
    assert collect([tmp_path / "r"])[0]["model"]["name"] == "alitok-b"


def test_bad_claims_file_is_a_config_error(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "paper: x\nsources: {a: b}\nclaims:\n  - {id: x, claim: y, source: nope, protocol: p, metric: fid,"
        " value: 1.0, tolerance: {abs: 0.1}, measure: {query: {model: m}}}\n")
    with pytest.raises(ConfigError, match="source 'nope'"):
        load_claims(tmp_path / "c.yaml")
