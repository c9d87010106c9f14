"""``alitok-bench claims [RESULTS...]``: the papers' claims against measured records, one table per paper.

By default every claims file in results/claims/ is checked: the AliTok paper's (``alitok.yaml``) first, then
each baseline's published numbers (DiT, SiT, LightningDiT, RAR, LlamaGen, TiTok, MaskGIT-VQGAN). A claim
that is not run names what it needs and the ``alitok-bench fetch`` command for its official files.
"""

from __future__ import annotations

from pathlib import Path

from harness.cli.common_args import add_json_arg, frame_rows, print_json

CLAIMS_DIR = Path(__file__).resolve().parents[2] / "results" / "claims"
DEFAULT_CLAIMS = CLAIMS_DIR / "alitok.yaml"


def default_claims_files() -> list[Path]:
    """alitok.yaml, then the other claims files of results/claims/ in name order."""
    return [DEFAULT_CLAIMS] + sorted(p for p in CLAIMS_DIR.glob("*.yaml") if p != DEFAULT_CLAIMS)


def add_arguments(p) -> None:
    p.add_argument("results", nargs="*", help="record files or folders (none: every claim is 'not run')")
    p.add_argument(
        "--claims",
        action="append",
        default=[],
        metavar="YAML",
        help="a claims file; repeatable (default: every file in results/claims/, alitok.yaml first)",
    )
    p.add_argument("--out", help="also write claims.md and claims.csv into this folder")
    p.add_argument(
        "--fail-on-not-reproduced", action="store_true", help="exit 1 when a measured claim is outside its tolerance"
    )
    add_json_arg(p)


def run(args) -> int:
    import pandas as pd

    from harness.report.claims import NOT_REPRODUCED, check, load_claims, to_frame, to_markdown
    from harness.report.collect import collect

    records = collect(args.results)
    files = args.claims or default_claims_files()
    texts, frames, verdicts = [], [], []
    for path in files:
        claims = load_claims(path)
        found = check(claims, records)
        texts.append(to_markdown(claims, found))
        frames.append(to_frame(found))
        verdicts += found
    text = "\n".join(texts)
    if args.json:
        print_json({"claims": [str(p) for p in files], "verdicts": frame_rows(pd.concat(frames, ignore_index=True))})
    else:
        print(text, end="")
    if args.out:
        from harness.core.io import write_text_atomic

        out = Path(args.out)
        table = pd.concat(frames, ignore_index=True)
        write_text_atomic(out / "claims.md", text)
        write_text_atomic(out / "claims.csv", table.to_csv(index=False, lineterminator="\n"))
        if not args.json:
            print(f"wrote {out / 'claims.md'} and {out / 'claims.csv'}")
    if args.fail_on_not_reproduced and any(v.verdict == NOT_REPRODUCED and v.claim.scale == "paper" for v in verdicts):
        return 1
    return 0
