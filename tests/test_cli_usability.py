"""A researcher's first hour at the command line (issue 24): finding suites, pointing them at one's own
weights, validate's verdicts, eval's one line, --json everywhere, one dtype vocabulary. Each test failed
before its fix."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main

SUITES_DIR = Path(__file__).resolve().parent.parent / "harness" / "suites"


def test_list_suites_names_every_shipped_suite_with_its_description(capsys):
    from harness.core import config

    assert main(["list", "suites"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shipped = sorted(SUITES_DIR.glob("*.yaml"))
    assert len(shipped) >= 6  # cfg-sweep, demo, golden, imagenet256-{gfid50k,rfid50k,smoke5k}
    for path in shipped:
        description = config.load_yaml(path)["description"]
        assert any(line.split() and line.split()[0] == path.stem and description in line for line in lines), path.stem
    assert main(["list", "suites", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["suites"]
    assert {p.stem for p in shipped} <= set(data)
