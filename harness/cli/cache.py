"""``alitok-bench cache list|clear``: the feature and weights cache (``$ALITOK_BENCH_CACHE`` or
``~/.cache/alitok-bench``; about 600 MB of features per 50k-image set).

``list`` shows each feature entry (input, weights, N, size) and each converted weights file; with
``--verify`` it re-hashes them against their recorded sha256 and exits 1 naming any damaged one. ``clear`` removes feature entries (``--all``: also converted
Inception weights) under the cache lock, so a running ``eval`` never loses a file it is writing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.core.errors import UserError


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list cached feature sets (and the cache folder)")
    ls.add_argument("--verify", action="store_true", help="re-hash every entry's files")
    ls.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    cl = sub.add_parser("clear", help="delete cached feature sets")
    cl.add_argument("--all", action="store_true", help="also delete converted Inception weights")
    cl.add_argument("--wait", action="store_true", help="wait for a running eval instead of failing")


def _size(paths) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def entries(root: Path, verify: bool = False) -> list[dict]:
    from harness.core.io import read_json, sha256_file

    out = []
    d = root / "features"
    for index in sorted(d.glob("v*-index.json")) if d.is_dir() else []:
        stem = index.name[: -len("-index.json")]
        files = sorted(d.glob(stem + "-*"))
        row = {"entry": stem, "bytes": _size(files), "files": len(files)}
        try:
            meta = read_json(index)
            row.update(n=meta.get("n"), image_size=meta.get("image_size"), layers=sorted(meta.get("files", {})))
            if verify:
                row["intact"] = all(
                    (d / f"{stem}-{k}{'.npz' if k == 'stats' else '.npy'}").is_file()
                    and sha256_file(d / f"{stem}-{k}{'.npz' if k == 'stats' else '.npy'}", fresh=True) == sha
                    for k, sha in meta.get("files", {}).items()
                )
        except (OSError, UserError, ValueError, AttributeError):
            row["intact"] = False
        out.append(row)
    return out


def weight_entries(root: Path, verify: bool = False) -> list[dict]:
    """Converted Inception weights (``*.pth``) and, with ``verify``, whether each matches its recorded digest."""
    from harness.core.io import sha256_file
    from harness.metrics.weights import digest_path

    out = []
    for p in sorted(root.glob("*.pth")):
        row = {"entry": p.name, "bytes": p.stat().st_size}
        if verify:
            record = digest_path(p)
            row["intact"] = record.is_file() and sha256_file(p, fresh=True) == record.read_text().strip()
        out.append(row)
    return out


def run(args) -> int:
    from harness.core.locks import acquire, remove_stale_temps
    from harness.metrics.weights import cache_dir

    root = cache_dir()
    if args.action == "list":
        rows, weights = entries(root, args.verify), weight_entries(root, args.verify)
        total = _size(p for p in root.rglob("*"))
        damaged = [r["entry"] for r in rows + weights if r.get("intact") is False]
        if args.json:
            sys.stdout.write(
                json.dumps(
                    {"cache": str(root), "bytes": total, "entries": rows, "weights": weights, "damaged": damaged},
                    indent=1,
                )
                + "\n"
            )
            return 1 if damaged else 0
        print(f"cache: {root}  ({total / 1e6:.1f} MB in all)")
        for r in rows:
            intact = "" if "intact" not in r else ("  intact" if r["intact"] else "  DAMAGED (recomputed on next use)")
            print(f"  {r['entry']}  n={r.get('n')}  size={r.get('image_size')}  {r['bytes'] / 1e6:.1f} MB{intact}")
        if not rows:
            print("  (no feature sets)")
        for r in weights:
            intact = "" if "intact" not in r else ("  intact" if r["intact"] else "  DAMAGED (rebuilt on next use)")
            print(f"  weights {r['entry']}  {r['bytes'] / 1e6:.1f} MB{intact}")
        if damaged:
            print(f"cache: {len(damaged)} damaged: {', '.join(damaged)}", file=sys.stderr)
            return 1
        return 0
    removed = 0
    with acquire(root, wait=args.wait, what="feature cache") as lock:
        remove_stale_temps(lock, root / "features")
        targets = list((root / "features").glob("v*")) if (root / "features").is_dir() else []
        if args.all:
            targets += [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
        for p in targets:
            removed += p.stat().st_size
            p.unlink()
    print(f"cleared {removed / 1e6:.1f} MB from {root}")
    return 0
