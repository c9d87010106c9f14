"""alitok-bench bench: statistics against numpy, the agreement rule, interleaving, step extrapolation,
the CLI's records, and the AliTok speed hooks. Timing logic runs on a fake clock, so nothing here
depends on how loaded the machine is."""

import dataclasses
import json
import types
from typing import ClassVar

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.core.errors import UserError
from harness.core.interfaces import ARSampling, Generator, PhasedGenerator
from harness.speed import bench as bench_mod
from harness.speed import timing
from harness.speed.bench import BenchSettings, bench_interleaved, ratios


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=c.perf_counter))
    return c


@dataclasses.dataclass(frozen=True)
class FakeSampling(ARSampling):
    family: ClassVar[str] = "fake"


class FakeGenerator(Generator):
    """Costs ``step_s`` per network call (x1.0..1.0+jitter, a fixed sequence) and ``decode_s`` per decode."""

    sampling_cls = FakeSampling

    def __init__(
        self, clock, name="fake", steps=10, step_s=0.01, decode_s=0.005, jitter=(0.0, 0.1, 0.05, 0.02), log=None
    ):
        self.clock, self.name, self.steps, self.step_s, self.decode_s = clock, name, steps, step_s, decode_s
        self.jitter, self.calls, self.log = jitter, 0, log if log is not None else []
        self.image_size, self.num_classes, self.quantization = 8, 10, "round"

    @property
    def default_sampling(self):
        return FakeSampling(cfg_scale=4.0)

    def _cost(self, n):
        self.calls += 1
        self.log.append(self.name)
        self.clock.now += n * self.step_s * (1.0 + self.jitter[self.calls % len(self.jitter)])

    def generate(self, labels, generator, params=None):
        return self.decode_codes(self.generate_codes(labels, generator, params))

    def generate_codes(self, labels, generator, params=None):
        self._cost(self.steps)
        return torch.zeros(len(labels), self.steps, dtype=torch.long)

    def decode_codes(self, codes):
        self.clock.now += self.decode_s
        return torch.zeros(codes.shape[0], 8, 8, 3, dtype=torch.uint8)

    def total_steps(self, params=None):
        return self.steps

    def run_steps(self, labels, generator, params, n_steps):
        self._cost(n_steps)
        return torch.zeros(len(labels), self.steps, dtype=torch.long)


class OnePhaseGenerator(FakeGenerator):
    """Only ``generate``: not a PhasedGenerator."""

    generate_codes = decode_codes = total_steps = run_steps = None

    def generate(self, labels, generator, params=None):
        self._cost(self.steps)
        self.clock.now += self.decode_s
        return torch.zeros(len(labels), 8, 8, 3, dtype=torch.uint8)


def test_spread_matches_numpy():
    xs = [0.31, 0.29, 0.5, 0.33, 0.30, 0.41]
    s = timing.spread(xs)
    assert s.median == pytest.approx(np.median(xs))
    assert (s.q1, s.q3) == pytest.approx(tuple(np.percentile(xs, [25, 75])))
    assert s.iqr == pytest.approx(np.subtract(*np.percentile(xs, [75, 25])))
    assert (s.min, s.max, s.mean) == pytest.approx((min(xs), max(xs), np.mean(xs)))
    with pytest.raises(ValueError):
        timing.spread([])


def test_agree_rule():
    a, b = timing.spread([1.0, 1.1, 1.2]), timing.spread([1.15, 1.2, 1.3])
    assert timing.agree(a, b)  # medians 0.1 apart, ranges 0.2 / 0.15
    assert not timing.agree(a, timing.spread([1.5, 1.51, 1.52]))


def test_two_identical_runs_agree_within_their_spread_and_a_slower_one_does_not(clock):
    settings = BenchSettings(batch_size=4, repeats=5, warmup=1)
    run1 = bench_interleaved([FakeGenerator(clock)], settings, "cpu")[0]
    run2 = bench_interleaved([FakeGenerator(clock, jitter=(0.1, 0.0, 0.02, 0.05))], settings, "cpu")[0]
    assert run1.spread().range > 0
    assert timing.agree(run1.spread(), run2.spread())
    slower = bench_interleaved([FakeGenerator(clock, step_s=0.015)], settings, "cpu")[0]
    assert not timing.agree(run1.spread(), slower.spread())


def test_phases_apart_and_images_per_s(clock):
    g = FakeGenerator(clock, jitter=(0.0,))
    res = bench_interleaved([g], BenchSettings(batch_size=4, repeats=3, warmup=2), "cpu")[0].summary()
    assert res["phases_apart"] and not res["extrapolated"]
    assert res["generation_s"]["median"] == pytest.approx(10 * 0.01)
    assert res["decode_s"]["median"] == pytest.approx(0.005)
    assert res["images_per_s"] == pytest.approx(4 / 0.105)
    assert g.calls == 5  # 2 warm-up + 3 timed


def test_extrapolation_equals_the_full_run_for_a_linear_cost(clock):
    full = bench_interleaved([FakeGenerator(clock, steps=273, jitter=(0.0,))], BenchSettings(batch_size=2), "cpu")
    part = bench_interleaved(
        [FakeGenerator(clock, steps=273, jitter=(0.0,))], BenchSettings(batch_size=2, steps_limit=4), "cpu"
    )
    f, p = full[0].summary(), part[0].summary()
    assert p["extrapolated"] and not f["extrapolated"]
    assert (p["steps_measured"], p["total_steps"]) == (4, 273)
    assert p["per_step_s"]["median"] == pytest.approx(0.01)
    assert p["total_s"]["median"] == pytest.approx(f["total_s"]["median"])
    assert "273 steps" in p["method"]
    # a generator that does not say its calls cost alike gets its figure marked indicative; one that does, not
    assert p["uniform_step_cost"] is None and "indicative only" in p["method"]

    class Uniform(FakeGenerator):
        uniform_step_cost = True

    u = bench_interleaved([Uniform(clock, steps=273)], BenchSettings(batch_size=2, steps_limit=4), "cpu")[0].summary()
    assert u["uniform_step_cost"] is True and "indicative" not in u["method"]


def test_a_per_model_limit_extrapolates_that_model_only(clock):
    gens = [
        FakeGenerator(clock, name="ar", steps=273, jitter=(0.0,)),
        FakeGenerator(clock, name="diffusion", steps=250, step_s=0.5, jitter=(0.0,)),
    ]
    settings = BenchSettings(batch_size=2, repeats=2, model_steps_limits=(("diffusion-xl", 4),))
    ar, diff = bench_interleaved(gens, settings, "cpu", names=["ar-b", "diffusion-xl"])
    assert not ar.extrapolated and ar.summary()["generation_s"]["median"] == pytest.approx(273 * 0.01)
    assert diff.extrapolated and diff.steps_measured == 4
    assert diff.summary()["generation_s"]["median"] == pytest.approx(250 * 0.5)
    assert gens[1].calls == 3 and gens[0].calls == 3  # one warm-up + two repeats each
    # a per-model limit overrides the one for every model; unknown names are refused, not ignored
    both = BenchSettings(batch_size=2, repeats=1, steps_limit=5, model_steps_limits=(("diffusion-xl", 4),))
    assert [both.steps_limit_for(n) for n in ("ar-b", "diffusion-xl")] == [5, 4]
    with pytest.raises(UserError, match="dit-typo"):
        bench_interleaved(gens, BenchSettings(model_steps_limits=(("dit-typo", 4),)), "cpu", names=["ar-b", "x"])


def test_models_are_interleaved(clock):
    log = []
    gens = [FakeGenerator(clock, name="a", log=log), FakeGenerator(clock, name="b", log=log)]
    bench_interleaved(gens, BenchSettings(batch_size=1, repeats=3, warmup=1), "cpu")
    assert log == ["a", "b"] + ["a", "b"] * 3


def test_one_phase_generator_is_timed_whole_and_cannot_extrapolate(clock):
    g = OnePhaseGenerator(clock, jitter=(0.0,))
    assert not isinstance(g, PhasedGenerator) and isinstance(FakeGenerator(clock), PhasedGenerator)
    res = bench_interleaved([g], BenchSettings(batch_size=4), "cpu")[0].summary()
    assert "generation_s" not in res and res["total_s"]["median"] == pytest.approx(0.105)
    with pytest.raises(UserError, match="steps-limit"):
        bench_interleaved([g], BenchSettings(batch_size=4, steps_limit=2), "cpu")


def test_no_cfg_and_steps_applied_or_recorded_na(clock):
    params, applied = bench_mod.sampling_params(FakeGenerator(clock), BenchSettings(cfg=False, steps=5))
    assert params.cfg_scale == 1.0 and applied == {
        "cfg_scale": 1.0,
        "steps": "n/a",
        "kv_cache": "n/a",
        "linear_kernel": "n/a",
        "attention_kernel": "n/a",
    }


def test_no_kv_cache_recomputes_the_same_tokens_and_refuses_extrapolation():
    from alitok.plugin import tiny_generator

    g = tiny_generator(device="cpu")
    labels = torch.tensor([1, 5])
    cached = g.generate_codes(labels, torch.Generator().manual_seed(2))
    off = bench_interleaved([g], BenchSettings(batch_size=2, repeats=1, warmup=0, kv_cache=False), "cpu")[0]
    assert off.applied["kv_cache"] == "off" and g.info()["kv_cache"] == "off"
    assert torch.equal(g.generate_codes(labels, torch.Generator().manual_seed(2)), cached)  # full recompute
    with pytest.raises(UserError, match="--no-kv-cache"):
        bench_interleaved([g], BenchSettings(batch_size=2, kv_cache=False, steps_limit=3), "cpu")
    on = bench_interleaved([g], BenchSettings(batch_size=2, repeats=1, warmup=0), "cpu")[0]
    assert on.applied["kv_cache"] == "static"


def test_no_kv_cache_leaves_generators_without_the_switch_alone(clock):
    # diffusion / fake generators have no KV cache: extrapolation stays allowed and kv_cache is "n/a"
    res = bench_interleaved(
        [FakeGenerator(clock)], BenchSettings(batch_size=2, repeats=1, warmup=0, kv_cache=False, steps_limit=3), "cpu"
    )[0]
    assert res.extrapolated and res.applied["kv_cache"] == "n/a"


def test_prepare_is_untimed_and_release_follows_every_run(clock):
    class Packing(FakeGenerator):
        def prepare(self):
            self.log.append("prepare")
            self.clock.now += 100.0  # weight packing: must not reach the timings

        def release(self):
            self.log.append("release")

    g = Packing(clock)
    res = bench_interleaved([g], BenchSettings(batch_size=4, repeats=2, warmup=1), "cpu")[0]
    assert max(res.total) < 1.0  # 10 steps x 0.01 s + decode, never the 100 s of prepare()
    assert g.log == ["prepare", "fake", "release"] * 3  # warm-up + 2 repeats, each prepared then released


@pytest.mark.parametrize(
    "switch, record, on, on_kernel, off, unknown",
    [
        ("linear", "linear_kernel", "onednn", "onednn-packed", "aten", "mkl"),
        ("attention", "attention_kernel", "c", "c-decode", "sdpa", "flash"),
    ],
)
def test_kernel_switch_turns_the_cpu_kernel_on_or_off_and_is_recorded(switch, record, on, on_kernel, off, unknown):
    from alitok.plugin import tiny_generator
    from harness.nn.kernels import decode_attention

    g = tiny_generator(device="cpu")
    if switch == "attention" and decode_attention.build_error():
        pytest.skip(f"no C compiler here: {decode_attention.build_error()}")
    # auto: whichever the measurement on this machine chose (harness/nn/kernels/kernel_choice.py), recorded as run
    auto = bench_interleaved([g], BenchSettings(batch_size=2, repeats=1, warmup=0), "cpu")[0]
    assert auto.applied[record] == getattr(g, record)() in (on_kernel, off)
    forced = bench_interleaved([g], BenchSettings(batch_size=2, repeats=1, warmup=0, **{switch: on}), "cpu")[0]
    assert forced.applied[record] == on_kernel
    codes = g.generate_codes(torch.tensor([0, 3]), torch.Generator().manual_seed(1))
    plain = bench_interleaved([g], BenchSettings(batch_size=2, repeats=1, warmup=0, **{switch: off}), "cpu")[0]
    assert plain.applied[record] == off and g.info()[record] == off
    # the same tokens either way on the tiny model (kernels differ by float rounding only)
    assert torch.equal(g.generate_codes(torch.tensor([0, 3]), torch.Generator().manual_seed(1)), codes)
    with pytest.raises(UserError, match=f"--{switch}"):
        BenchSettings(**{switch: unknown})


def test_ratios_pair_only_like_settings():
    rows = [
        {"model": "a", "batch_size": 2, "dtype": "fp32", "images_per_s": 6.0, "extrapolated": False},
        {"model": "b", "batch_size": 2, "dtype": "fp32", "images_per_s": 2.0, "extrapolated": True},
        {"model": "c", "batch_size": 4, "dtype": "fp32", "images_per_s": 1.0, "extrapolated": False},
    ]
    assert ratios(rows) == [
        {
            "a": "a",
            "b": "b",
            "batch_size": 2,
            "dtype": "fp32",
            "implementations": "project:project",
            "images_per_s_ratio": 3.0,
            "extrapolated": True,
            "extrapolated_models": ["b"],
        }
    ]


def test_settings_reject_bad_values():
    with pytest.raises(UserError, match="--dtype"):
        BenchSettings(dtype="fp8")
    with pytest.raises(UserError, match="--batch-size"):
        BenchSettings(batch_size=0)
    with pytest.raises(UserError, match="dit=0"):
        BenchSettings(model_steps_limits=(("dit", 0),))
    with pytest.raises(UserError, match="named twice"):
        BenchSettings(model_steps_limits=(("dit", 2), ("dit", 3)))
    assert BenchSettings().factory_options() == {}
    assert BenchSettings(dtype="bf16", compile=True, random_weights=True).factory_options() == {
        "dtype": torch.bfloat16,
        "compile": True,
        "random_weights": True,
    }


@pytest.fixture
def fake_models(clock):
    from harness.core.registry import generators, load_plugins

    load_plugins()
    names = ["fake-bench-a", "fake-bench-b"]
    for i, n in enumerate(names):
        generators.register(n, lambda *, device, _n=n, _i=i, **o: FakeGenerator(clock, name=_n, step_s=0.01 * (1 + _i)))
    yield names
    for n in names:
        generators._entries.pop(n, None)


def test_cli_writes_records_summary_and_prints_table_last(fake_models, tmp_path, capsys):
    out = tmp_path / "b"
    rc = main(
        [
            "bench",
            "--model",
            fake_models[0],
            "--model",
            fake_models[1],
            "--batch-size",
            "2",
            "--batch-size",
            "4",
            "--repeats",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    records = sorted(out.glob("*_record.json"))
    assert len(records) == 4
    rec = json.loads(records[0].read_text())
    assert rec["kind"] == "bench" and rec["speed"]["repeats"] == 2
    assert {"device_name", "torch_threads", "load_average_start", "load_average_end", "torch"} <= set(rec["env"])
    assert rec["spec"]["settings"]["dtype"] == "fp32" and rec["spec"]["models_compared"] == fake_models
    summary = json.loads((out / "bench_summary.json").read_text())
    r = {(x["a"], x["batch_size"]): x["images_per_s_ratio"] for x in summary["ratios"]}
    assert r[(fake_models[0], 2)] == pytest.approx((0.2 + 0.005) / (0.1 + 0.005), rel=0.2)
    assert (out / "bench_summary.md").read_text().count("| fake-bench-") == 4
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("| fake-bench-b | 4 |")


def test_cli_per_model_limit_is_recorded_and_named_in_the_ratio(fake_models, tmp_path):
    out = tmp_path / "b"
    assert (
        main(
            [
                "bench",
                "--model",
                fake_models[0],
                "--model",
                fake_models[1],
                "--batch-size",
                "2",
                "--repeats",
                "1",
                "--steps-limit",
                f"{fake_models[1]}=3",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads((out / "bench_summary.json").read_text())
    assert [r["extrapolated"] for r in summary["rows"]] == [False, True]
    assert f"(extrapolated: {fake_models[1]})" in (out / "bench_summary.md").read_text()
    rec = json.loads((out / f"bench_{fake_models[1]}_b2_fp32_record.json").read_text())
    assert rec["spec"]["settings"]["model_steps_limits"] == [[fake_models[1], 3]]


def test_cli_unknown_model_one_line_exit_2_or_skipped(fake_models, tmp_path, capsys):
    assert main(["bench", "--model", "no-such-model", "--device", "cpu", "--out", str(tmp_path)]) == 2
    assert "no-such-model" in capsys.readouterr().err
    rc = main(
        [
            "bench",
            "--model",
            "no-such-model",
            "--model",
            fake_models[0],
            "--skip-missing",
            "--repeats",
            "1",
            "--batch-size",
            "1",
            "--steps-limit",
            "no-such-model=2",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert rc == 0  # the skipped model's own step limit goes with it
    assert json.loads((tmp_path / "s/bench_summary.json").read_text())["skipped"].keys() == {"no-such-model"}


def test_alitok_tiny_speed_hooks_reproduce_generate():
    from alitok.plugin import tiny_generator

    g = tiny_generator(device="cpu")
    assert isinstance(g, PhasedGenerator)
    labels = torch.tensor([0, 3])
    codes = g.generate_codes(labels, torch.Generator().manual_seed(1))
    assert torch.equal(g.decode_codes(codes), g.generate(labels, torch.Generator().manual_seed(1)))
    n = g.total_steps()
    assert n == g.model.num_tokens
    assert torch.equal(g.run_steps(labels, torch.Generator().manual_seed(1), None, n), codes)
    part = g.run_steps(labels, torch.Generator().manual_seed(1), None, 3)
    assert part.shape == codes.shape  # padded to the full length, so decode_codes can time a full decode


def test_alitok_b_random_weights_official_architecture():
    from alitok.generator import PRESETS
    from alitok.plugin import alitok_b

    g = alitok_b(device="cpu", random_weights=True)
    assert g.info()["num_params"] == PRESETS["alitok-b"].num_params
    assert g.model.output.weight.std() > 0  # random logits, not the zero-initialised head
    assert g.tokenizer.num_tokens == 273 and g.image_size == 256
    with pytest.raises(UserError, match="random_weights"):
        alitok_b(device="cpu", random_weights=True, checkpoint="x.bin")


def test_preset_then_flags_on_top():
    import argparse

    from harness.cli.bench import add_arguments, resolve_settings

    p = argparse.ArgumentParser()
    add_arguments(p)
    models, sweep = resolve_settings(p.parse_args(["--preset", "cpu-smoke", "--out", "x"]))
    assert models == ["alitok-tiny"] and [s.batch_size for s in sweep] == [4] and sweep[0].cfg
    models, sweep = resolve_settings(
        p.parse_args(
            [
                "--preset",
                "paper",
                "--model",
                "m",
                "--batch-size",
                "8",
                "--batch-size",
                "16",
                "--dtype",
                "bf16",
                "--no-cfg",
                "--out",
                "x",
            ]
        )
    )
    assert models == ["m"] and [(s.batch_size, s.dtype, s.cfg) for s in sweep] == [
        (8, "bf16", False),
        (16, "bf16", False),
    ]
    with pytest.raises(UserError, match="--model"):
        resolve_settings(p.parse_args(["--preset", "paper", "--out", "x"]))
    _, sweep = resolve_settings(
        p.parse_args(["--model", "ar", "--model", "dit", "--steps-limit", "dit=4", "--steps-limit", "6", "--out", "x"])
    )
    assert (sweep[0].steps_limit, sweep[0].model_steps_limits) == (6, (("dit", 4),))
    for bad, why in (("other=4", "not among --model"), ("dit=four", "integer"), ("dit=", "integer")):
        with pytest.raises(UserError, match=why):
            resolve_settings(p.parse_args(["--model", "ar", "--model", "dit", "--steps-limit", bad, "--out", "x"]))


def test_factory_without_the_option_is_one_line_exit_2(tmp_path, capsys):
    assert main(["bench", "--model", "alitok-tiny", "--random-weights", "--device", "cpu", "--out", str(tmp_path)]) == 2
    assert "random_weights" in capsys.readouterr().err


def test_runs_agree_reads_two_cli_summaries(fake_models, tmp_path):
    from harness.speed.bench import runs_agree

    for run in ("r1", "r2"):
        assert (
            main(
                [
                    "bench",
                    "--model",
                    fake_models[0],
                    "--repeats",
                    "4",
                    "--batch-size",
                    "2",
                    "--device",
                    "cpu",
                    "--out",
                    str(tmp_path / run),
                ]
            )
            == 0
        )
    rows = [json.loads((tmp_path / r / "bench_summary.json").read_text())["rows"] for r in ("r1", "r2")]
    (res,) = runs_agree(*rows)
    assert res["agree"] and res["range_s"][0] > 0
    slow = [dict(rows[1][0], total_s={k: v * 2 if k not in ("n",) else v for k, v in rows[1][0]["total_s"].items()})]
    assert not runs_agree(rows[0], slow)[0]["agree"]
    # the CLI: --agree RUN1 RUN2 writes agreement.json and exits 0 / 1 with the verdict
    assert main(["bench", "--agree", str(tmp_path / "r1"), str(tmp_path / "r2"), "--out", str(tmp_path / "a")]) == 0
    written = json.loads((tmp_path / "a" / "agreement.json").read_text())
    assert written["rows"][0]["agree"] and written["commands"][0].startswith("alitok-bench bench --model")
    # written through the result writer: commit, dirty flag, CPU model and the agree command itself
    prov = written["provenance"]
    assert {"git_sha", "dirty"} <= set(prov["code"]) and prov["machine"]["cpu_model"]
    assert prov["command"].startswith("alitok-bench bench --agree")
    summary = json.loads((tmp_path / "r2" / "bench_summary.json").read_text())
    summary["rows"] = slow
    (tmp_path / "r2" / "bench_summary.json").write_text(json.dumps(summary))
    assert main(["bench", "--agree", str(tmp_path / "r1"), str(tmp_path / "r2"), "--out", str(tmp_path / "a")]) == 1
    (tmp_path / "r2" / "bench_summary.json").write_text("{")
    assert main(["bench", "--agree", str(tmp_path / "r1"), str(tmp_path / "r2"), "--out", str(tmp_path / "a")]) == 2


@pytest.mark.parametrize("name", ["dit-tiny", "flow-tiny"])
def test_diffusion_speed_hooks_reproduce_generate_and_count_calls(name):
    """decode_codes(generate_codes(...)) is generate(...); total_steps and run_steps count the model calls
    they claim (counted independently with a forward hook on the network)."""
    from harness.core.interfaces import PhasedGenerator
    from harness.core.registry import generators, load_plugins

    load_plugins()
    g = generators.get(name)(device="cpu")
    assert isinstance(g, PhasedGenerator)
    labels = torch.tensor([0, 3])
    calls = []
    handle = g.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        z = g.generate_codes(labels, torch.Generator().manual_seed(1))
        assert len(calls) == g.total_steps()
        assert torch.equal(g.decode_codes(z), g.generate(labels, torch.Generator().manual_seed(1)))
        calls.clear()
        part = g.run_steps(labels, torch.Generator().manual_seed(1), None, 4)
        assert len(calls) == 4 and part.shape == z.shape
    finally:
        handle.remove()


def test_calibrated_runs_compare_in_machine_units(fake_models, tmp_path, monkeypatch):
    """--calibrate records every repeat in units of the calibration timed just before it; --agree then
    forgives a machine that is slower as a whole between the runs, but not one slower code path."""
    from harness.speed.bench import runs_agree

    class FakeCalibration:  # the real workload, timed, would make this test depend on the machine
        def seconds(self):
            return 0.5

    monkeypatch.setattr(bench_mod, "Calibration", FakeCalibration)
    out = tmp_path / "r1"
    assert (
        main(
            [
                "bench",
                "--model",
                fake_models[0],
                "--repeats",
                "4",
                "--batch-size",
                "2",
                "--device",
                "cpu",
                "--calibrate",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    (row,) = json.loads((out / "bench_summary.json").read_text())["rows"]
    assert row["calibration_s"]["n"] == 4 and row["calibration_s"]["median"] == 0.5
    assert row["total_calibrations"]["median"] == pytest.approx(row["total_s"]["median"] / 0.5)

    def scaled(r, total, cal):
        return dict(
            r,
            total_s={k: v if k == "n" else v * total for k, v in r["total_s"].items()},
            total_calibrations={k: v if k == "n" else v * total / cal for k, v in r["total_calibrations"].items()},
        )

    whole_machine = runs_agree([row], [scaled(row, 2.0, 2.0)])[0]
    assert whole_machine["unit"] == "calibrations" and whole_machine["agree"]
    assert not runs_agree([row], [scaled(row, 2.0, 1.0)])[0]["agree"]  # slower code, same machine
    plain = {k: v for k, v in row.items() if k not in ("calibration_s", "total_calibrations")}
    seconds_only = runs_agree([plain], [scaled(row, 2.0, 2.0)])[0]  # one side uncalibrated: seconds
    assert seconds_only["unit"] == "s" and not seconds_only["agree"]


def test_bench_records_feed_the_speed_claims(clock, tmp_path, monkeypatch):
    """Records written by the CLI are what the claims table matches: by the registry name (a random-weight
    generator calls itself "<name>-random"), at batch 64 in fp32, with CFG-on and CFG-off runs kept apart."""
    from harness.cli.claims import DEFAULT_CLAIMS
    from harness.core.registry import generators, load_plugins
    from harness.report.claims import NOT_RUN, check, load_claims
    from harness.report.collect import collect

    load_plugins()
    step_s = {"alitok-l": 0.01, "alitok-xl": 0.02, "lightningdit-xl-1": 0.2}  # per call; 10 calls, no decode cost
    for name, s in step_s.items():
        made = name if name.startswith("lightningdit") else f"{name}-random"
        monkeypatch.setitem(
            generators._entries,
            name,
            lambda *, device, _n=made, _s=s, **o: FakeGenerator(clock, name=_n, step_s=_s, decode_s=0.0, jitter=(0.0,)),
        )
    args = [
        "bench",
        *[a for n in step_s for a in ("--model", n)],
        "--batch-size",
        "64",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--random-weights",
        "--device",
        "cpu",
    ]
    claims = load_claims(DEFAULT_CLAIMS)
    assert main([*args, "--out", str(tmp_path / "cfg")]) == 0
    v = {x.claim.id: x for x in check(claims, collect([tmp_path / "cfg"]))}
    assert v["ratio-xl-lightningdit"].measured == pytest.approx(0.2 / 0.02)
    assert v["ratio-nocfg-lightningdit"].verdict == NOT_RUN  # both ran with CFG
    assert v["ratio-l-rar-xxl"].verdict == NOT_RUN and v["speed-xl"].verdict == NOT_RUN  # no RAR record; not an A800
    assert main([*args, "--no-cfg", "--out", str(tmp_path / "nocfg")]) == 0
    v = {x.claim.id: x for x in check(claims, collect([tmp_path]))}
    assert v["ratio-nocfg-lightningdit"].measured == pytest.approx(0.2 / 0.01)
    assert v["ratio-xl-lightningdit"].measured == pytest.approx(0.2 / 0.02) and v["ratio-xl-lightningdit"].n == 1


def test_low_memory_builds_each_model_per_run_and_holds_one_at_a_time(clock, tmp_path, monkeypatch):
    import weakref

    from harness.core.registry import generators, load_plugins

    load_plugins()
    alive, builds, most = weakref.WeakSet(), [], []

    class Counted(FakeGenerator):
        def generate_codes(self, labels, generator, params=None):
            most.append(len(alive))  # generators alive while this one samples
            return super().generate_codes(labels, generator, params)

    def factory(name):
        def make(*, device, **options):
            g = Counted(clock, name=name, jitter=(0.0,))
            alive.add(g)
            builds.append(name)
            return g

        return make

    for name in ("fake-low-a", "fake-low-b"):
        monkeypatch.setitem(generators._entries, name, factory(name))
    args = [
        "bench",
        "--model",
        "fake-low-a",
        "--model",
        "fake-low-b",
        "--batch-size",
        "2",
        "--repeats",
        "2",
        "--warmup",
        "1",
        "--device",
        "cpu",
    ]
    assert main([*args, "--out", str(tmp_path / "held")]) == 0
    assert builds == ["fake-low-a", "fake-low-b"] and max(most) == 2
    builds.clear(), most.clear()
    assert main([*args, "--low-memory", "--out", str(tmp_path / "low")]) == 0
    assert builds == ["fake-low-a", "fake-low-b"] + ["fake-low-a", "fake-low-b"] * 3  # setup, warm-up, 2 repeats
    assert max(most) == 1  # one model in memory at a time
    rec = json.loads((tmp_path / "low/bench_fake-low-a_b2_fp32_record.json").read_text())
    assert rec["spec"]["low_memory"] and any("--low-memory" in n for n in rec["notes"])
    held = json.loads((tmp_path / "held/bench_summary.json").read_text())["rows"]
    low = json.loads((tmp_path / "low/bench_summary.json").read_text())["rows"]
    assert [r["total_s"]["median"] for r in low] == pytest.approx([r["total_s"]["median"] for r in held])


def _touch(mib):  # fresh anonymous pages (malloc may reuse resident memory freed by earlier tests)
    import mmap

    m = mmap.mmap(-1, mib * 2**20)
    for i in range(0, len(m), 4096):
        m[i] = 1
    m.close()


def test_cpu_peak_memory_of_a_block_even_below_an_earlier_peak():
    _touch(300)  # 300 MiB touched, then freed: the process's lifetime peak
    with timing.PeakMemory("cpu") as mem:
        _touch(100)
    if mem.kind == "cpu_peak_rss_growth":
        pytest.skip("this kernel does not let the peak RSS be reset (/proc/self/clear_refs)")
    assert mem.kind == "cpu_peak_rss_above_start" and 90 <= mem.mib <= 130


def test_diffusion_records_say_whose_network_call_count():
    """SiT's official SDE evaluates the network twice per step (drift and score, same input); this
    implementation once. The record carries both counts, named; an adaptive solver refuses a step limit."""
    from baselines.sit import flow_tiny

    g = flow_tiny(device="cpu")
    g._sampling = dataclasses.replace(g.default_sampling, solver="euler-maruyama", steps=3, cfg_scale=1.5)
    res = bench_interleaved([g], BenchSettings(batch_size=1, repeats=1, warmup=0), "cpu")[0].summary()
    calls = res["network_calls"]
    assert (calls["this_implementation"], calls["official_code"], calls["rows_per_call"]) == (3, 6, 2)
    g._sampling = dataclasses.replace(g.default_sampling, solver="dopri5")
    with pytest.raises(UserError, match="adaptive"):
        bench_interleaved([g], BenchSettings(batch_size=1, repeats=1, warmup=0, steps_limit=2), "cpu")
