"""bench --upstream: the official-code row is timed on upstream's own function, imported from the folder
the user names, not on a replica. A stand-in upstream checkout is written into tmp_path (demo_util.py,
configs/alitok_b.yaml, modeling/ar.py with an ``ARModel``); its ``generate`` logs every call and costs a
known time on the fake clock, so the official row can only show that cost if the stand-in ran."""

import json
import textwrap
import types

import pytest
import torch
from torch import nn

from harness.cli import main
from harness.core.interfaces import ARSampling, Generator
from harness.speed import timing, upstream_load
from harness.speed import upstream as up

STAND_IN_COST = 0.37  # fake seconds per upstream generate call
PROJECT_COST = 0.11  # fake seconds per project generate_codes call
STEPS = 6

AR_PY = """
import torch
from torch import nn

CALLS = []       # (labels, kwargs, image_seq_len) of every generate call
ON_CALL = None   # set by the test: advances its fake clock


class ARModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.w = nn.Linear(config["width"], config["width"])
        self.image_seq_len = config["steps"]

    def disable_kv_cache(self):
        pass

    @torch.no_grad()
    def generate(self, condition, guidance_scale, randomize_temperature, guidance_scale_pow, **kwargs):
        CALLS.append((condition.tolist(), guidance_scale, randomize_temperature, guidance_scale_pow,
                      self.image_seq_len))
        ON_CALL()
        return torch.randint(0, 8, (condition.shape[0], self.image_seq_len))  # the global RNG, as upstream
"""
DEMO_UTIL_PY = """
import json

def get_config(path):
    return json.loads(open(path).read())
"""


def write_stand_in(root, width=4):
    pkg = root / "alitok"
    (pkg / "modeling").mkdir(parents=True)
    (pkg / "configs").mkdir()
    (pkg / "modeling" / "ar.py").write_text(textwrap.dedent(AR_PY))
    (pkg / "demo_util.py").write_text(textwrap.dedent(DEMO_UTIL_PY))
    (pkg / "configs" / "alitok_b.yaml").write_text(json.dumps({"width": width, "steps": STEPS}))  # JSON is YAML
    return pkg


class FakeClock:
    now = 0.0

    def perf_counter(self):
        return self.now


class Project(Generator):
    """The project's side: a one-Linear "model" with the stand-in's key names."""

    def __init__(self, clock):
        self.clock, self.name = clock, "fake-up"
        self.model = nn.Sequential()
        self.model.w = nn.Linear(4, 4)
        self.tokenizer = types.SimpleNamespace(name="fake-tokenizer")
        self.num_classes, self.image_size, self.quantization = 10, 8, "round"
        self.calls = 0

    @property
    def default_sampling(self):
        return ARSampling(cfg_scale=16.0, cfg_schedule="power-cosine", cfg_power=1.8)

    @property
    def device(self):
        return torch.device("cpu")

    def generate_codes(self, labels, generator, params=None):
        self.calls += 1
        self.clock.now += PROJECT_COST
        return torch.zeros(len(labels), STEPS, dtype=torch.long)

    def decode_codes(self, codes):
        return torch.zeros(codes.shape[0], 8, 8, 3, dtype=torch.uint8)

    def generate(self, labels, generator, params=None):
        return self.decode_codes(self.generate_codes(labels, generator, params))

    def total_steps(self, params=None):
        return STEPS

    def run_steps(self, labels, generator, params, n_steps):
        return self.generate_codes(labels, generator, params)


@pytest.fixture
def setup(monkeypatch, tmp_path):
    from harness.core.registry import generators, load_plugins

    clock = FakeClock()
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    load_plugins()
    made = []
    monkeypatch.setitem(generators._entries, "fake-up", lambda *, device, **o: made.append(Project(clock)) or made[-1])
    monkeypatch.setitem(up.ADAPTERS, "fake-up", up.ADAPTERS["alitok-b"])
    return clock, made, write_stand_in(tmp_path / "upstream")


def test_official_row_runs_upstreams_generate_not_a_replica(setup, tmp_path, monkeypatch):
    clock, made, checkout = setup
    stand_in = {}
    real_load = upstream_load.load_official

    def load_and_hook(*a, **k):  # the stand-in module's globals, through its (undecorated) __init__
        official = real_load(*a, **k)
        stand_in.update(type(official.model).__init__.__globals__)
        type(official.model).__init__.__globals__["ON_CALL"] = lambda: setattr(clock, "now", clock.now + STAND_IN_COST)
        return official

    monkeypatch.setattr(upstream_load, "load_official", load_and_hook)
    out = tmp_path / "b"
    assert (
        main(
            [
                "bench",
                "--model",
                "fake-up",
                "--upstream",
                str(tmp_path / "upstream"),
                "--batch-size",
                "2",
                "--repeats",
                "3",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )

    # the stand-in's generate ran once per warm-up and repeat, with the project's preset mapped to its arguments
    assert stand_in["CALLS"] == [([0, 1], 16.0, 1.0, 1.8, STEPS)] * 4
    rec = json.loads((out / "bench_fake-up-official_b2_fp32_record.json").read_text())
    assert rec["speed"]["generation_s"]["median"] == pytest.approx(STAND_IN_COST)  # its cost, nobody else's
    assert rec["model"]["implementation"] == "upstream" and rec["model"]["registry_name"] == "fake-up@upstream"
    prov = rec["model"]["upstream"]
    assert prov["files"]["modeling.ar"] == str((checkout / "modeling" / "ar.py").resolve())
    assert prov["function"] == "modeling.ar.ARModel.generate" and prov["commit"] is None  # not a git tree
    ours = json.loads((out / "bench_fake-up_b2_fp32_record.json").read_text())
    assert ours["speed"]["generation_s"]["median"] == pytest.approx(PROJECT_COST)
    assert ours["model"]["implementation"] == "project"
    summary = json.loads((out / "bench_summary.json").read_text())
    (pair,) = summary["ratios"]
    assert pair["implementations"] == "project:upstream"
    # the project's tokens per second over upstream's, from the two costs above (decode costs 0 here)
    assert pair["images_per_s_ratio"] == pytest.approx(STAND_IN_COST / PROJECT_COST)
    # the checkout's modules do not stay importable under their bare names after the load
    import sys

    assert "modeling" not in sys.modules and "demo_util" not in sys.modules


def test_upstream_draws_from_the_seeded_global_rng(setup):
    clock, made, checkout = setup
    project = Project(clock)
    off = up.official_generator(project, checkout.parent, "fake-up")
    type(off.model).__init__.__globals__["ON_CALL"] = lambda: None
    labels = torch.tensor([1, 2])
    a = off.generate_codes(labels, torch.Generator().manual_seed(5))
    torch.rand(3)  # moves the global RNG; the next call reseeds it from the run's generator
    b = off.generate_codes(labels, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and off.calls == 2
    assert torch.equal(off.model.w.weight, project.model.w.weight)  # the project's weights, loaded


def test_missing_checkout_or_mismatched_weights_is_one_line_exit_2(setup, tmp_path, capsys):
    clock, made, checkout = setup
    assert (
        main(
            [
                "bench",
                "--model",
                "fake-up",
                "--upstream",
                str(tmp_path / "nowhere"),
                "--repeats",
                "1",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    assert "configs/alitok_b.yaml: not found" in capsys.readouterr().err
    (checkout / "configs" / "alitok_b.yaml").write_text(json.dumps({"width": 5, "steps": STEPS}))
    assert (
        main(
            [
                "bench",
                "--model",
                "fake-up",
                "--upstream",
                str(checkout.parent),
                "--repeats",
                "1",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    assert "do not load into modeling.ar.ARModel" in capsys.readouterr().err
    assert not (tmp_path / "c" / "bench_summary.json").exists()
