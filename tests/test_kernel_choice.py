"""harness/nn/kernels/kernel_choice: the CPU kernel is the one measured faster on the machine at hand (on a fake
clock here), cached per machine and shapes, and a generator in "auto" mode runs what was chosen."""

import json
import types

import pytest
import torch

from harness.nn.kernels import decode_attention, kernel_choice, packed_linear


class Clock:
    now = 0.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def clock(monkeypatch, tmp_path):
    c = Clock()
    monkeypatch.setattr(
        kernel_choice,
        "time",
        types.SimpleNamespace(perf_counter=c.perf_counter, strftime=lambda *a: "t", gmtime=lambda: None),
    )
    monkeypatch.setenv("ALITOK_BENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("ALITOK_BENCH_KERNELS", raising=False)
    kernel_choice.forget()
    yield c
    kernel_choice.forget()


def candidates(clock, costs, calls):
    def make(name):
        def fn():
            calls.append(name)
            clock.now += costs[name]

        return fn

    return {name: make(name) for name in costs}


def test_the_fastest_candidate_wins_and_the_choice_is_cached_per_machine(clock, tmp_path, monkeypatch):
    calls = []
    assert kernel_choice.choose("linear", "s", candidates(clock, {"a": 2.0, "b": 1.0}, calls), rounds=3) == "b"
    assert calls == ["a", "b"] * 4  # one warm-up and 3 interleaved rounds each
    (entry,) = json.loads((tmp_path / kernel_choice.CACHE_NAME).read_text()).values()
    assert entry["choice"] == "b" and entry["seconds"] == {"a": 2.0, "b": 1.0}
    (rec,) = kernel_choice.recorded()
    assert rec["source"] == "measured" and rec["machine"] == kernel_choice.machine_key()
    assert kernel_choice.cpu_model() in rec["machine"] and torch.__version__ in rec["machine"]

    # a new process on the same machine reads the cache; costs have flipped, but nothing is measured
    kernel_choice.forget()
    calls.clear()
    assert kernel_choice.choose("linear", "s", candidates(clock, {"a": 1.0, "b": 2.0}, calls)) == "b" and not calls
    assert kernel_choice.recorded()[0]["source"].startswith("cached")
    # another shapes class, or another machine (a different CPU model), measures afresh
    assert kernel_choice.choose("linear", "t", candidates(clock, {"a": 1.0, "b": 2.0}, calls), rounds=1) == "a"
    kernel_choice.forget()
    monkeypatch.setattr(kernel_choice, "cpu_model", lambda: "Another CPU")
    assert kernel_choice.choose("linear", "s", candidates(clock, {"a": 1.0, "b": 2.0}, calls), rounds=1) == "a"
    # ALITOK_BENCH_KERNELS=measure ignores the cache
    kernel_choice.forget()
    monkeypatch.setenv("ALITOK_BENCH_KERNELS", "measure")
    calls.clear()
    assert kernel_choice.choose("linear", "s", candidates(clock, {"a": 3.0, "b": 2.0}, calls), rounds=1) == "b"
    assert calls


def test_a_minimum_ignores_one_slow_round_from_machine_load(clock):
    costs = iter([1.0, 1.5, 9.0, 1.5, 1.0, 1.5])  # warm-up a, b; round 1: a hit by load; round 2: a clean

    def fn():
        clock.now += next(costs)

    assert kernel_choice.choose("k", "s", {"a": fn, "b": fn}, rounds=2) == "a"
    seconds = kernel_choice.recorded()[0]["seconds"]
    assert seconds == {"a": 1.0, "b": 1.5}


@pytest.mark.skipif(decode_attention.build_error() is not None, reason="no C compiler")
@pytest.mark.parametrize("winner", ["c-decode", "sdpa"])
def test_generator_auto_runs_the_attention_kernel_only_where_it_won(winner, monkeypatch):
    from alitok.plugin import tiny_generator

    monkeypatch.setattr(decode_attention, "_chosen", {})
    monkeypatch.setattr(
        kernel_choice, "choose", lambda kind, shapes, cands, rounds=5: winner if kind == "decode-attention" else "aten"
    )
    used = []
    real = decode_attention.attend
    monkeypatch.setattr(decode_attention, "attend", lambda *a, **k: used.append(1) or real(*a, **k))
    g = tiny_generator(device="cpu")
    assert g.attention_kernel() == winner and g.linear_kernel() == "aten"
    g.generate_codes(torch.tensor([1, 2]), torch.Generator().manual_seed(0))
    assert bool(used) == (winner == "c-decode")


@pytest.mark.skipif(not packed_linear.available("cpu", torch.float32), reason="no oneDNN")
def test_linear_choice_measures_the_models_own_shapes(clock, monkeypatch):
    seen = {}

    def choose(kind, shapes, cands, rounds=5):
        seen[kind] = shapes
        for fn in cands.values():
            fn()  # both workloads run (no error) at the model's shapes
        return "onednn-packed"

    monkeypatch.setattr(kernel_choice, "choose", choose)
    model = torch.nn.Sequential(torch.nn.Linear(8, 24), torch.nn.Linear(24, 8), torch.nn.Linear(8, 24))
    assert packed_linear.prefers_packed(model, torch.float32)
    assert seen["linear"] == "float32 8x24 24x8, rows 4/32"  # each in x out once, sorted


@pytest.mark.skipif(not packed_linear.available("cpu", torch.float32), reason="no oneDNN")
def test_a_made_choice_costs_no_workload(monkeypatch):
    """ARGenerator asks for the Linear choice at every sampling call; once made (cached), asking must not
    build the measurement's random weights again (it did: ~0.2 s of randn and weight packing per call for
    AliTok-B, inside every timed run)."""
    made = []
    real = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *a, **k: made.append(1) or real(*a, **k))
    monkeypatch.setattr(kernel_choice, "choose", lambda kind, shapes, cands, rounds=5: "onednn-packed")
    model = torch.nn.Sequential(torch.nn.Linear(8, 24), torch.nn.Linear(24, 8))
    assert packed_linear.prefers_packed(model, torch.float32)
    assert not made
