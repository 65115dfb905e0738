"""`banklake`: one command in front of the Python jobs. Thin on purpose: parse, call, report."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from python_jobs.lake.layout import Lake, default_lake_dir


def _lake(args: argparse.Namespace) -> Lake:
    return Lake(Path(args.lake))


def _add_lake(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lake",
        default=str(default_lake_dir()),
        help="lake folder (default: $BANKLAKE_LAKE_DIR or ./lake)",
    )


def _add_generator_options(parser: argparse.ArgumentParser, *, days_default: int) -> None:
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--days", type=int, default=days_default, help="days to generate")
    parser.add_argument(
        "--start-date",
        type=date.fromisoformat,
        default=None,
        help="first day, YYYY-MM-DD (default: so that the last day is yesterday)",
    )
    parser.add_argument("--customers", type=int, default=10_000, help="customers at the start")
    parser.add_argument(
        "--tx-per-customer-day", type=float, default=3.0, help="mean transactions a day"
    )
    parser.add_argument("--fraud-rate", type=float, default=0.007, help="share of fraud")
    parser.add_argument("--fault-rate", type=float, default=0.01, help="share of dirty rows")


def _generator_config(args: argparse.Namespace):
    from python_jobs.generate import GeneratorConfig

    return GeneratorConfig(
        seed=args.seed,
        start_date=args.start_date,
        days=args.days,
        customers=args.customers,
        tx_per_customer_day=args.tx_per_customer_day,
        fraud_rate=args.fraud_rate,
        fault_rate=args.fault_rate,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from python_jobs.generate import generate
    from python_jobs.pipeline import describe_generation

    result = generate(_lake(args), _generator_config(args), append=args.append, progress=print)
    print(describe_generation(result))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from python_jobs.lake.validate import validate_lake

    report = validate_lake(_lake(args))
    for item in report.quarantined:
        print(f"quarantined {item.original}: {item.reason}")
    print(report.summary())
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from python_jobs.pipeline import build

    build(_lake(args), say=print, select=args.select)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from python_jobs.pipeline import export

    export(_lake(args), say=print)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from python_jobs.pipeline import build_docs

    print(f"docs: {build_docs(_lake(args), say=print)}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from python_jobs.summary import render, summarize

    lake = _lake(args)
    print(render(summarize(lake), lake))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from python_jobs.pipeline import demo

    demo(_lake(args), _generator_config(args), say=print)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from python_jobs.pipeline import daily_run

    daily_run(_lake(args), args.days, say=print)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banklake",
        description="Synthetic bank data, a local lake and the dbt medallion around it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    generate = commands.add_parser("generate", help="write synthetic raw data into the lake")
    _add_lake(generate)
    _add_generator_options(generate, days_default=30)
    generate.add_argument(
        "--append",
        action="store_true",
        help="continue an existing lake with the next --days days (same customers and cases)",
    )
    generate.set_defaults(handler=cmd_generate)

    validate = commands.add_parser("validate", help="check raw files, quarantine bad ones")
    _add_lake(validate)
    validate.set_defaults(handler=cmd_validate)

    build = commands.add_parser("build", help="validate raw files, then dbt build")
    _add_lake(build)
    build.add_argument("--select", nargs="+", help="dbt selection (default: everything)")
    build.set_defaults(handler=cmd_build)

    export = commands.add_parser("export", help="export curated marts to lake/curated/")
    _add_lake(export)
    export.set_defaults(handler=cmd_export)

    docs = commands.add_parser("docs", help="build the static dbt docs site")
    _add_lake(docs)
    docs.set_defaults(handler=cmd_docs)

    summary = commands.add_parser("summary", help="rows per layer, rejections, marts")
    _add_lake(summary)
    summary.set_defaults(handler=cmd_summary)

    demo = commands.add_parser("demo", help="the main job: generate, build, export, docs")
    _add_lake(demo)
    _add_generator_options(demo, days_default=30)
    demo.set_defaults(handler=cmd_demo)

    run = commands.add_parser("run", help="daily pipeline: next day(s), build, export")
    _add_lake(run)
    run.add_argument("--days", type=int, default=1, help="days to deliver (default 1)")
    run.set_defaults(handler=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f"banklake {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
