"""``tsdiff bench run SUITE.yaml`` and ``tsdiff bench report`` (wired into :mod:`tsdiff.cli`)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    b = sub.add_parser("bench", help="run benchmark suites and render the leaderboard", description=(
        "run: every (entry, task, seed) of a suite writes one JSON record (finished runs are skipped, so a killed "
        "run resumes). report: render benchmarks/LEADERBOARD.md and PNG plots from the records."))
    bsub = b.add_subparsers(dest="bench_command", required=True)
    r = bsub.add_parser("run", help="run a suite (resumable)")
    r.add_argument("suite", help="suite YAML, e.g. benchmarks/suites/smoke.yaml")
    r.add_argument("--out", default=None, help="records folder (default: benchmarks/records/<suite name>)")
    r.add_argument("--data-dir", default=None, help="data directory (default: $TSDIFF_DATA or the user cache)")
    r.add_argument("--runs-dir", default="runs/bench", help="where model entries keep their trained models")
    r.add_argument("--kind", choices=["all", "baseline", "model"], default="all", help="run only baselines or models")
    r.add_argument("--tasks", nargs="+", default=None, help="run only these tasks of the suite")
    r.add_argument("--entries", nargs="+", default=None, help="run only these entries of the suite")
    r.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="run only these seeds (e.g. to split one entry's seeds across processes)")
    r.add_argument("--dry-run", action="store_true", help="list the grid and what is done, run nothing")
    p = bsub.add_parser("report", help="render the leaderboard from records")
    p.add_argument("--records", default="benchmarks/records", help="records folder (searched recursively)")
    p.add_argument("--out", default="benchmarks/LEADERBOARD.md", help="markdown file to write")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    b.set_defaults(run=main)
    return b


def main(args: argparse.Namespace) -> int:
    if args.bench_command == "run":
        from tsdiff.bench.runner import default_out_dir, run_suite
        from tsdiff.bench.suite import load_suite

        suite = load_suite(args.suite)
        kinds = ("baseline", "model") if args.kind == "all" else (args.kind,)
        summary = run_suite(suite, args.out or default_out_dir(suite), data_dir=args.data_dir,
                            runs_dir=args.runs_dir, kinds=kinds, tasks=args.tasks, entries=args.entries,
                            seeds=args.seeds,
                            dry_run=args.dry_run)
        print(f"done {len(summary['done'])}, already done {len(summary['skipped'])}, "
              f"skipped optional {len(summary['optional_skipped'])}, failed {len(summary['failed'])}")
        for run_id, msg in summary["failed"]:
            print(f"FAILED {run_id}: {msg}")
        return 1 if summary["failed"] else 0
    from tsdiff.bench.report import render_leaderboard

    render_leaderboard(args.records, args.out, plots=not args.no_plots)
    return 0
