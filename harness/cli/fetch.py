"""``alitok-bench fetch NAME... | --suite SUITE | --all [--dry-run] [--root DIR]``: download the official
files into the weights root (``$ALITOK_BENCH_WEIGHTS``, default ``~/.cache/alitok-bench/weights``), verified.

A NAME is a registry entry (``alitok-b``, ``dit-xl-2``: its checkpoints), a metric (``fid``: its feature
network), a protocol (its reference batch) or a file name from the catalog. ``--suite`` takes the union
of its entries', metrics' and protocol's files. Exit 0 when every file is present and verified, 1 when
some need a manual step (Google Drive), 2 on a failed download or a refused digest (each one line).
"""

from __future__ import annotations

import sys

from harness.cli.common_args import add_json_arg, print_json


def add_arguments(p) -> None:
    p.add_argument(
        "names", nargs="*", metavar="NAME", help="registry entries, metrics, protocols or catalog file names"
    )
    p.add_argument("--suite", action="append", default=[], metavar="SUITE", help="every file a suite needs")
    p.add_argument("--all", action="store_true", help="every file in the catalog")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list each file with its source, size where known and digest status; download nothing",
    )
    p.add_argument(
        "--root", default=None, help="weights root (default: $ALITOK_BENCH_WEIGHTS or ~/.cache/alitok-bench/weights)"
    )
    p.add_argument("--retries", type=int, default=3, help="resumed attempts after an interrupted transfer")
    add_json_arg(p)


def suite_files(name: str) -> list[str]:
    """Catalog names a suite needs: its entries' checkpoints, its metrics' networks, its protocols' references."""
    from harness.fetch.catalog import files_of
    from harness.fetch.needs import files_for, official_name
    from harness.metrics import table
    from harness.suites.entries import expand
    from harness.suites.suite import RECON_METRICS, get_suite, sample_metrics

    suite = get_suite(name)
    runs = expand(suite.entries)
    features = [m.features for m in table.parse(sample_metrics(suite))] if sample_metrics(suite) else []
    if any(r.task == "recon" for r in runs) or any(m in RECON_METRICS for m in suite.metrics):
        features.append("inception")
    protocols = {suite.protocol, *(r.protocol for r in runs if r.protocol)}
    explicit = [official_name(p) for r in runs for p in (r.model.checkpoint, r.model.tokenizer_checkpoint, r.reference)]
    explicit += [official_name(suite.reference), official_name(suite.inception)]
    names = files_for([r.model.name for r in runs], features, sorted(protocols))
    names += [f for n in explicit if n for f in files_of(n)]
    return list(dict.fromkeys(names))


def resolve_names(names: list[str]) -> list[str]:
    from harness.core.errors import UserError
    from harness.core.registry import load_plugins, metrics, protocols
    from harness.fetch import catalog
    from harness.fetch.needs import files_for
    from harness.metrics import table  # fills the metrics registry

    load_plugins()
    out: list[str] = []
    for name in names:
        if name in catalog.FILES or catalog.files_of(name.rstrip("/") + "/"):
            out += catalog.files_of(name) if name in catalog.FILES else catalog.files_of(name.rstrip("/") + "/")
        elif name in catalog.NEEDS:
            out += files_for(models=[name])
        elif name in metrics:
            out += files_for(features=[table.parse([name])[0].features])
        elif name in protocols:
            out += files_for(protocols=[name])
        else:
            known = sorted(set(catalog.NEEDS) | set(catalog.FILES))
            import difflib

            close = difflib.get_close_matches(name, known, n=3)
            raise UserError(
                f"fetch: {name!r} is not a registry entry with official files, a metric, a protocol or a "
                f"catalog file"
                + (
                    f" (did you mean {', '.join(close)}?)"
                    if close
                    else "; `alitok-bench fetch --all --dry-run` lists them"
                )
            )
    return list(dict.fromkeys(out))


def _size(n: int | None) -> str:
    return "size unknown until fetched" if n is None else f"{n / 2**20:.1f} MiB"


def plan_rows(names: list[str], root) -> list[dict]:
    """Each file: source, who named it, size where known, digest status, present or not."""
    from harness.fetch import catalog, store

    ledger = store.read_ledger(root)
    rows = []
    for name in names:
        entry = catalog.FILES[name]
        rec = ledger.get(name, {})
        present = (root / name).is_file()
        size = rec.get("size") or entry.size or ((root / name).stat().st_size if present else None)
        digest = entry.digest_rule()
        if rec.get("sha256"):
            digest += f": recorded {rec['sha256'][:16]}..."
        elif not entry.sha256:
            digest += ": not yet recorded"
        state = "present" if present else ("MANUAL (Google Drive)" if entry.kind == "gdrive" else "to fetch")
        rows.append(
            {"name": name, "state": state, "what": entry.what, "source": entry.source(), "named_by": entry.cited,
             "size_bytes": size, "digest": digest}
        )  # fmt: skip
    return rows


def dry_run(names: list[str], root, as_json: bool = False) -> int:
    rows = plan_rows(names, root)
    if as_json:
        print_json({"weights_root": str(root), "files": rows})
        return 0
    print(f"weights root: {root}")
    for r in rows:
        print(
            f"{r['name']}  [{r['state']}]\n  what: {r['what']}\n  source: {r['source']}\n  named by: {r['named_by']}\n"
            f"  size: {_size(r['size_bytes'])}\n  digest: {r['digest']}"
        )
    print(f"{len(names)} files; {sum(r['state'] == 'present' for r in rows)} present")
    return 0


def run(args) -> int:
    from harness.core.errors import UserError, one_line
    from harness.fetch import catalog, store
    from harness.fetch.files import fetch_file

    if not (args.names or args.suite or args.all):
        raise UserError("fetch: give NAME..., --suite SUITE or --all")
    if args.retries < 0:
        raise UserError(f"--retries must be >= 0, got {args.retries}")
    names = list(catalog.FILES) if args.all else []
    for s in args.suite:
        names += suite_files(s)
    names += resolve_names(args.names)
    names = list(dict.fromkeys(names))
    root = store.weights_root(args.root)
    if args.dry_run:
        return dry_run(names, root, args.json)
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print  # stdout holds the JSON alone
    if not names:
        say("nothing to fetch: these need no official files")
        if args.json:
            print_json({"weights_root": str(root), "files": []})
        return 0
    failed, manual, done = 0, 0, []
    for name in names:
        try:
            out = fetch_file(catalog.FILES[name], root, retries=args.retries)
        except (UserError, OSError) as e:
            failed += 1
            print(f"alitok-bench fetch: error: {name}: {one_line(e)}", file=sys.stderr)
            done.append({"name": name, "status": "error", "detail": one_line(e)})
            continue
        done.append({"name": name, "status": out.status, "path": str(out.path), "detail": out.detail})
        if out.status == "manual":
            manual += 1
            say(out.detail)
        else:
            say(f"{name}: {out.status} at {out.path} ({out.detail})")
    if args.json:
        print_json({"weights_root": str(root), "files": done})
    if failed:
        return 2
    if manual:
        say(f"{manual} file(s) need the manual step above; the others are in place")
        return 1
    say(f"all {len(names)} files present and verified in {root}")
    return 0
