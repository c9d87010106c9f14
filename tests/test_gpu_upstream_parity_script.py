"""scripts/gpu_upstream_parity.py (official code against the project on a lent GPU) run on the CPU as a
dry run for AliTok, so the script a GPU machine gets once does not fail there on a typo. It needs the
official checkouts: set UPSTREAM=/path/to/checkouts (the folder `make upstream-fixtures` reads);
without it the test is skipped. Slow (a few minutes on 2 busy cores): `make test-slow`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = os.environ.get("UPSTREAM")


@pytest.mark.slow
@pytest.mark.skipif(
    not UPSTREAM or not (Path(UPSTREAM) / "alitok").is_dir(),
    reason="set UPSTREAM to a folder holding the official alitok checkout",
)
def test_official_alitok_and_the_project_agree_on_cpu_with_both_generators():
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/gpu_upstream_parity.py",
            "--upstream",
            UPSTREAM,
            "--device",
            "cpu",
            "--families",
            "alitok",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (line,) = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert line["ok"] and line["family"] == "alitok"
    for how in ("device_generator", "cpu_generator"):
        assert line[how] == {"tokens_differing": 0, "uint8_differing": 0}


def test_an_unknown_family_or_a_missing_checkout_is_one_line_and_exit_2(tmp_path):
    for extra in (["--families", "dit"], ["--families", "alitok"]):
        proc = subprocess.run(
            [sys.executable, "scripts/gpu_upstream_parity.py", "--upstream", str(tmp_path), "--device", "cpu", *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
