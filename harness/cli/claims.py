"""``alitok-bench claims [RESULTS...]``: the paper's claims against measured records, one table."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common_args import add_json_arg, frame_rows, print_json

DEFAULT_CLAIMS = Path(__file__).resolve().parents[2] / "results" / "claims" / "alitok.yaml"


def add_arguments(p) -> None:
    p.add_argument("results", nargs="*", help="record files or folders (none: every claim is 'not run')")
    p.add_argument("--claims", default=str(DEFAULT_CLAIMS), help="claims YAML")
    p.add_argument("--out", help="also write claims.md and claims.csv into this folder")
    p.add_argument(
        "--fail-on-not-reproduced", action="store_true", help="exit 1 when a measured claim is outside its tolerance"
    )
    add_json_arg(p)


def run(args) -> int:
    from harness.report.claims import NOT_REPRODUCED, check, load_claims, to_frame, to_markdown
    from harness.report.collect import collect

    claims = load_claims(args.claims)
    verdicts = check(claims, collect(args.results))
    text = to_markdown(claims, verdicts)
    if args.json:
        print_json({"claims": args.claims, "verdicts": frame_rows(to_frame(verdicts))})
    else:
        print(text, end="")
    if args.out:
        from harness.core.io import write_text_atomic

        out = Path(args.out)
        write_text_atomic(out / "claims.md", text)
        write_text_atomic(out / "claims.csv", to_frame(verdicts).to_csv(index=False, lineterminator="\n"))
        if not args.json:
            print(f"wrote {out / 'claims.md'} and {out / 'claims.csv'}")
    if args.fail_on_not_reproduced and any(v.verdict == NOT_REPRODUCED and v.claim.scale == "paper" for v in verdicts):
        return 1
    return 0
