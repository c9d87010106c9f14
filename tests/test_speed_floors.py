"""harness/speed: in-process hardware floors and the replica loop (a model of upstream's structure) of the floor report."""

import dataclasses

import pytest
import torch

from alitok.generator import PRESETS, build
from harness.nn.kernels import decode_attention
from harness.nn.layers.attention import set_decode_kernel
from harness.speed import floors
from harness.speed.ar_floor_report import (
    _ours,
    floor_range,
    floor_seconds,
    kv_bytes,
    markdown,
    replica_loop,
    step_flops,
    summarise,
    weight_bytes,
)


def test_floors_are_positive_and_matmul_counts_flops():
    assert floors.matmul_gflops(n=128, repeats=2) > 0
    assert floors.read_gbps(megabytes=8, repeats=2) > 0


@pytest.fixture(scope="module")
def small():
    cfg = dataclasses.replace(PRESETS["alitok-b"].config, depth=2, width=64, num_heads=4)
    model = build(cfg, generator=torch.Generator().manual_seed(0)).eval()
    torch.nn.init.normal_(model.output.weight, std=0.5, generator=torch.Generator().manual_seed(1))
    return model


@pytest.mark.parametrize("attention", decode_attention.KERNELS)
def test_replica_loop_replica_draws_the_tokens_of_our_sampler(small, attention):
    # the replica concatenates its KV cache and embeds the whole sequence every step, as upstream;
    # same random calls and architecture, so the tokens must be ours exactly (SDPA or the C kernel)
    params = PRESETS["alitok-b"].sampling
    labels = torch.tensor([207, 1, 999])
    a = replica_loop(small, labels, params, 40, torch.Generator().manual_seed(0))
    set_decode_kernel(small, attention)
    b = _ours(small, labels, params, 40, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and len(torch.unique(a)) > 10


def test_floor_arithmetic_counts_the_model(small):
    linear = sum(m.weight.numel() for m in small.modules() if isinstance(m, torch.nn.Linear))
    cfg = small.cfg
    assert step_flops(small, rows=4, kv=10) == 2 * 4 * linear + 4 * 4 * cfg.depth * cfg.width * 10
    non_embedding = sum(p.numel() for p in small.parameters()) - small.embeddings.weight.numel()
    assert weight_bytes(small) == 4 * non_embedding
    # K and V of every layer: the cache the model itself allocates, read up to kv positions
    small.reset_cache(6)  # the 6 rows of a CFG batch of 3
    cache = [blk.attn.kv_cache for blk in small.blocks]
    assert kv_bytes(small, rows=6, kv=cache[0].shape[2]) == sum(c.k.numel() + c.v.numel() for c in cache) * 4
    small.free_cache()


def test_floor_seconds_are_the_closed_forms(small):
    fl = {"read_gbps": 2.0, "matmul_fp32_gflops": 3.0}
    f = floor_seconds(small, batch=2, steps=5, fl=fl, scale=2.0)
    flops = sum(step_flops(small, 4, 1 + t) for t in range(5))
    assert f["weight_read_s"] == pytest.approx(2.0 * 5 * weight_bytes(small) / 2e9)
    assert f["matmul_s"] == pytest.approx(2.0 * flops / 3e9)
    per_step = [
        max((weight_bytes(small) + kv_bytes(small, 4, 1 + t)) / 2e9, step_flops(small, 4, 1 + t) / 3e9)
        for t in range(5)
    ]
    assert f["roofline_s"] == pytest.approx(2.0 * sum(per_step))


def test_each_run_is_judged_by_the_floor_measured_before_it():
    # the machine halves its bandwidth between the runs and the sampler slows with it: 2x its floor both times
    per_run = [
        {"weight_read_s": 1.0, "matmul_s": 9.0, "roofline_s": 1.0},
        {"weight_read_s": 2.0, "matmul_s": 9.0, "roofline_s": 2.0},
        {"weight_read_s": 1.5, "matmul_s": 9.0, "roofline_s": 1.5},
    ]
    row = summarise([2.0, 4.0, 3.3], per_run, batch=2, scale=1.0)
    assert row["floor"] == "weight_read_s" and row["floor_s"] == 1.5
    assert row["x_floor"] == pytest.approx(2.0) and row["x_floor_min"] == pytest.approx(2.0)
    assert row["x_floor_max"] == pytest.approx(2.2)
    assert row["median_s"] / row["floor_s"] == pytest.approx(2.2)  # one floor for all: a different answer
    assert summarise([18.0], per_run[:1], batch=16, scale=1.0)["x_floor"] == 2.0  # batch 16: the matmul floor
    paired = {
        "a": {2: [{"read_gbps": 50.0, "matmul_fp32_gflops": 400.0}]},
        "b": {2: [{"read_gbps": 70.0, "matmul_fp32_gflops": 380.0}]},
    }
    assert floor_range(paired) == {"read_gbps": [50.0, 70.0], "matmul_fp32_gflops": [380.0, 400.0]}


def test_markdown_names_every_row():
    row = {
        "variant": "ours-eager",
        "batch": 2,
        "median_s": 1.0,
        "min_s": 0.9,
        "max_s": 1.2,
        "spread": 0.3,
        "floor": "weight_read_s",
        "floor_s": 0.5,
        "x_floor": 2.0,
        "x_floor_min": 1.9,
        "x_floor_max": 2.1,
        "x_roofline": 2.5,
        "speedup": 1.5,
        "speedup_per_repeat": [1.4, 1.5, 1.6],
    }
    rec = {
        "floors": {"matmul_fp32_gflops": 1.0, "matmul_bf16_gflops": 2.0, "read_gbps": 3.0},
        "threads": {"torch": 1},
        "load_average_start": [],
        "load_average_end": [],
        "torch": "x",
        "repeats": 1,
        "steps_measured": 5,
        "extrapolated": True,
        "compile_s": None,
        "replica_matches_ours": True,
        "rows": [row],
        "floor_range": {"read_gbps": [2.5, 3.0], "matmul_fp32_gflops": [0.9, 1.0]},
    }
    text = markdown({**rec, "speedup_against": "replica-loop"})
    assert (
        "| ours-eager | 2 | 1.00 | 0.90-1.20 | 30% | weight_read | 0.50 | 2.00 | 1.90-2.10 | 2.50 | "
        "1.50 (1.40, 1.50, 1.60) |"
    ) in text
    assert "extrapolated" in text and "read 2.5-3.0 GB/s" in text
    # without --upstream nothing is called official: the speed-up names the replica and says it is not upstream's
    assert "speed-up vs the replica loop (not upstream's code)" in text and "did not run" in text
    prov = {"function": "modeling.ar.ARModel.generate", "checkout": "/u/alitok", "commit": "093e957", "dirty": False}
    text = markdown({**rec, "speedup_against": "official-generate", "upstream": prov, "official_matches_ours": True})
    assert "speed-up vs upstream's generate" in text and "`modeling.ar.ARModel.generate` from /u/alitok" in text
    # a load average above the timed threads: the report says its timings are not representative
    assert "machine was loaded" in markdown({**rec, "load_average_start": [3.5, 3.0, 2.0]})
    assert "machine was loaded" not in markdown({**rec, "load_average_start": [0.5, 0.4, 0.3]})
