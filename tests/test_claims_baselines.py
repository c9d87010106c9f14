"""Claims for every family (results/claims/*.yaml besides alitok.yaml): each baseline's published numbers name
the registry entry, protocol and sampling preset they hold at; synthetic records at that preset are reproduced or
not reproduced by their value, records at another preset are not comparable, and a claim that is not run prints
the exact `alitok-bench fetch` command for its official files."""

import dataclasses

import pytest

from harness.cli import main
from harness.cli.claims import DEFAULT_CLAIMS, default_claims_files
from harness.core import config
from harness.core.registry import generators, load_plugins, tokenizers
from harness.fetch import catalog
from harness.report.claims import (
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    check,
    claim_files,
    fetch_command,
    load_claims,
    why,
)
from harness.runs.records import RunRecord

BASELINE_FILES = [p for p in default_claims_files() if p != DEFAULT_CLAIMS]
FAMILIES = ("dit", "sit", "lightningdit", "rar", "llamagen", "titok", "maskgit-vqgan")


@pytest.fixture(scope="module")
def files():
    return {p.stem: load_claims(p) for p in BASELINE_FILES}


def _claim(files, family, claim_id):
    return next(c for c in files[family].claims if c.id == claim_id)


def test_one_claims_file_per_family_with_unique_ids_across_files(files):
    assert sorted(files) == sorted(FAMILIES)
    ids = [c.id for p in default_claims_files() for c in load_claims(p).claims]
    assert len(ids) == len(set(ids))  # the combined claims.csv keys rows by id


def test_every_baseline_claim_names_its_registry_entry_protocol_and_source(files):
    load_plugins()
    for family, cf in files.items():
        assert cf.claims, family
        for c in cf.claims:
            (q,) = c.queries()
            # a registered generator/tokenizer, or a claim that says its plugin is not written
            assert q.model in generators or q.model in tokenizers or any("not written" in r for r in c.requires), c.id
            if c.metric == "rfid":
                assert (q.kind, q.protocol, q.paper_comparable) == ("recon", "imagenet256-rfid50k", True), c.id
            elif c.metric == "images_per_s":
                assert q.kind == "bench" and q.hardware and q.guided, c.id
            else:
                assert (q.protocol, q.paper_comparable) == ("imagenet256-gfid50k", True), c.id
            assert c.source in cf.sources and cf.sources[c.source], c.id


def _plugin_presets():
    """The sampling preset each baseline plugin ships (what `run imagenet256-gfid50k` samples with)."""
    from baselines import dit, lightningdit, llamagen, rar, sit

    presets = {
        "dit-xl-2": dit.DIT_XL_SAMPLING,
        "sit-xl-2": sit.SIT_XL_SAMPLING,
        "lightningdit-xl-1": lightningdit.SAMPLING,
        **{f"rar-{s}": rar.rar_sampling(s) for s in ("b", "l", "xl", "xxl")},
        **{name: p.sampling for name, p in llamagen.GPT_PRESETS.items()},
    }
    return {k: config.to_dict(v) for k, v in presets.items()}


def test_each_guided_claim_preset_is_the_plugins_preset(files):
    """A plugin whose preset drifts from the published one (or a claim that names the wrong one) fails here,
    before any GPU hour: the guided claims name exactly the preset the plugin samples with. Claims without
    guidance (cfg_scale 1) share every other key with it."""
    presets = _plugin_presets()
    checked = 0
    for cf in files.values():
        for c in cf.claims:
            q = c.queries()[0]
            if not q.sampling or q.model not in presets:
                continue
            plugin = presets[q.model]
            want = dict(q.sampling)
            if want.get("cfg_scale") == 1.0:
                want.pop("cfg_scale")
                want.pop("cfg_interval", None)
            got = {k: plugin[k] for k in want}
            got = {k: list(v) if isinstance(v, tuple) else v for k, v in got.items()}
            assert got == want, (c.id, got, want)
            checked += 1
    assert checked >= 30  # every DiT, SiT, LightningDiT, RAR and LlamaGen gFID/IS/P/R claim


def _gfid_record(model, fid, sampling, checkpoint, **metrics):
    """The provenance harness/metrics/evaluate.py records for a paper-comparable 50k gFID."""
    return RunRecord(
        kind="run",
        model={"name": model, "checkpoint": f"/w/{checkpoint}", "sampling": dict(sampling)},
        spec={"protocol": {"name": "imagenet256-gfid50k", "num_samples": 50000}},
        samples={"n": 50000},
        metric_provenance={
            "weights": {"official": True, "sha256": "6726825d" * 8},
            "samples": {"n": 50000},
            "reference": {"kind": "adm-virtual-imagenet256"},
        },
        metrics={"fid": fid, **metrics},
        paper_comparable=True,
    ).to_dict()


DIT_PRESET = {"steps": 250, "solver": "ddpm", "cfg_scale": 1.5, "cfg_interval": [0.0, 1.0], "eta": 0.0}
RAR_B_PRESET = {"cfg_scale": 16.0, "cfg_schedule": "power-cosine", "cfg_power": 2.75, "temperature": 1.0, "top_k": 0}


@pytest.mark.parametrize(
    "family, claim_id, model, checkpoint, preset, wrong",
    [
        ("dit", "dit-xl2-gfid-cfg", "dit-xl-2", "DiT-XL-2-256x256.pt", DIT_PRESET, {"cfg_scale": 4.0}),
        ("rar", "rar-b-gfid", "rar-b", "rar_b.bin", RAR_B_PRESET, {"cfg_power": 1.0}),
    ],
)
def test_baseline_claim_at_its_preset_reproduced_or_not_and_another_preset_not_comparable(
    files, family, claim_id, model, checkpoint, preset, wrong
):
    claim = _claim(files, family, claim_id)
    cf = dataclasses.replace(files[family], claims=(claim,))
    # tolerance abs 0.05 (+2 sd; one record without its own sd adds nothing): 0.04 off passes, 0.3 off fails
    (close,) = check(cf, [_gfid_record(model, claim.value + 0.04, preset, checkpoint)])
    (far,) = check(cf, [_gfid_record(model, claim.value + 0.3, preset, checkpoint)])
    assert close.verdict == REPRODUCED and far.verdict == NOT_REPRODUCED, (close.detail, far.detail)
    # a record at another preset, even with the paper's number or a far one, answers nothing
    for fid in (claim.value, claim.value + 0.3):
        (other,) = check(cf, [_gfid_record(model, fid, {**preset, **wrong}, checkpoint)])
        assert other.verdict == NOT_RUN and other.detail.startswith("not comparable: 1 record(s)"), other.detail
        key, value = next(iter(wrong.items()))
        assert f"{key} {value!r}, the claim's {preset[key]!r}" in other.detail
        assert why(other).startswith("not comparable")
    # another registry entry's record is not this claim's at all
    (stranger,) = check(cf, [_gfid_record("alitok-b", claim.value, preset, checkpoint)])
    assert stranger.verdict == NOT_RUN and stranger.detail.startswith("no record with")


def test_a_not_run_claim_names_the_fetch_command_of_its_entry_and_reference(files):
    claim = _claim(files, "dit", "dit-xl2-gfid-cfg")
    (v,) = check(dataclasses.replace(files["dit"], claims=(claim,)), [])
    cmd = "alitok-bench fetch dit-xl-2 weights-inception-2015-12-05-6726825d.pth VIRTUAL_imagenet256_labeled.npz"
    assert fetch_command(claim) == cmd and f"fetch: `{cmd}`" in why(v) and v.detail.endswith(f"fetch: {cmd}")
    # the files behind it: the entry's checkpoints (DiT weights + the SD VAE folder), the reference, Inception
    assert sorted(claim_files(claim)) == sorted(
        catalog.entry_files("dit-xl-2") + [catalog.INCEPTION, "VIRTUAL_imagenet256_labeled.npz"]
    )
    recon = _claim(files, "llamagen", "vq-16-rfid")  # rFID: the tokenizer and Inception, no ADM batch
    assert fetch_command(recon) == "alitok-bench fetch vq-16 weights-inception-2015-12-05-6726825d.pth"
    speed = _claim(files, "rar", "rar-b-speed")  # bench records may use random weights
    no_plugin = _claim(files, "titok", "titok-l-32-gfid")  # nothing to fetch makes it runnable
    assert fetch_command(speed) is None and fetch_command(no_plugin) is None


def test_the_printed_fetch_command_resolves_to_exactly_the_claims_files(files, tmp_path, capsys):
    """`claims` prints the command; that command, given to `fetch --dry-run`, lists the claim's files."""
    assert main(["claims", "--claims", str(BASELINE_FILES[0].parent / "rar.yaml")]) == 0
    out = capsys.readouterr().out
    cmd = "alitok-bench fetch rar-xxl weights-inception-2015-12-05-6726825d.pth VIRTUAL_imagenet256_labeled.npz"
    assert f"fetch: `{cmd}`" in out
    assert main(["fetch", *cmd.split()[2:], "--dry-run", "--root", str(tmp_path / "w")]) == 0
    listed = [line.split("  [")[0] for line in capsys.readouterr().out.splitlines() if "  [" in line]
    assert sorted(listed) == sorted(claim_files(_claim(files, "rar", "rar-xxl-gfid")))
    assert "rar_xxl.bin" in listed and "maskgit-vqgan-imagenet-f16-256.bin" in listed


def test_claims_cli_checks_every_family_by_default(capsys):
    assert main(["claims"]) == 0
    out = capsys.readouterr().out
    for paper in ("AliTok", "DiT", "SiT", "LightningDiT", "RAR", "LlamaGen", "TiTok", "MaskGIT-VQGAN"):
        assert f"# Claims: {paper} (" in out or f"# Claims: {paper} / " in out, paper


def test_the_baseline_suites_run_every_claim_a_registered_plugin_can_answer(files):
    """`run imagenet256-baselines-gfid50k` / `-rfid50k` then `claims OUT` answers each such claim: an entry of
    the claim's registry entry and protocol, sampling at the plugin's preset (no override) or with exactly the
    override the claim names (cfg_scale 1 for the unguided numbers)."""
    from harness.suites.entries import expand
    from harness.suites.suite import get_suite

    load_plugins()
    runs = {p: expand(get_suite(f"imagenet256-baselines-{p}").entries) for p in ("gfid50k", "rfid50k")}
    answered = 0
    for cf in files.values():
        for c in cf.claims:
            q = c.queries()[0]
            if c.metric == "images_per_s" or not (q.model in generators or q.model in tokenizers):
                continue
            suite = runs["rfid50k" if c.metric == "rfid" else "gfid50k"]
            unguided = {"cfg_scale": 1.0} if q.sampling.get("cfg_scale") == 1.0 else {}
            assert any(r.model.name == q.model and r.model.sampling == unguided for r in suite), c.id
            answered += 1
    assert answered >= 40
