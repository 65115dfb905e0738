"""`banklake`: one command in front of the Python jobs. Thin on purpose: parse, call, report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from python_jobs import cli_json
from python_jobs.assistant.providers import PROVIDERS
from python_jobs.lake.layout import Lake, default_lake_dir

if TYPE_CHECKING:
    from python_jobs.generate import GeneratorConfig
    from python_jobs.ingest.run import Kind

    # what add_subparsers returns (argparse names the type privately)
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def _lake(args: argparse.Namespace) -> Lake:
    return Lake(Path(args.lake))


# --- options several commands take, declared once ----------------------------------------

Handler = Callable[[argparse.Namespace], int]
TARGETS = ("duckdb", "athena")
ASSISTANT_TARGET_HELP = (
    "duckdb: the lake's database, read-only (default); athena: the assistant's "
    "work group ($BANKLAKE_ASSISTANT_ATHENA_WORKGROUP)"
)


def _add_lake(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lake",
        default=str(default_lake_dir()),
        help="lake folder (default: $BANKLAKE_LAKE_DIR or ./lake)",
    )


def _add_target(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--target: where the command reads (duckdb, the default, or athena)."""
    parser.add_argument("--target", choices=TARGETS, default="duckdb", help=help_text)


def _add_date(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--date YYYY-MM-DD, None when not given (the command picks its default day)."""
    parser.add_argument("--date", type=date.fromisoformat, default=None, help=help_text)


def _add_lang(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=("pt", "en"), default="pt", help="language (pt)")


def _add_provider(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--provider: the assistant's language model, None: $BANKLAKE_ASSISTANT_PROVIDER."""
    parser.add_argument("--provider", choices=PROVIDERS, default=None, help=help_text)


def _add_max_rows(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--max-rows", type=int, default=100, help=help_text)


def _add_json(parser: argparse.ArgumentParser) -> None:
    """--json: one JSON document on stdout for a scheduler (python_jobs/cli_json.py)."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document on stdout (keys: docs/operations.md), progress on stderr",
    )


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a command's human text goes: stdout, or stderr when stdout carries --json."""
    return cli_json.to_stderr if args.json else print


def _quiet(_: str) -> None:
    return None


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's, via `make venv`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("banklake")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed: pip install -e .)"


# Two months: the slowest-reported fraud (compromised terminals, about 18 days) needs that long
# to have labels in training once the newest week is left to its reports and the week
# before it tests (ml/protocol.py); on 30 days the model barely sees it.
DEMO_DAYS = 60


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


def _generator_config(args: argparse.Namespace) -> GeneratorConfig:
    """The generator options (_add_generator_options: one per GeneratorConfig field, by name)."""
    from python_jobs.generate import GeneratorConfig

    return GeneratorConfig(
        **{field.name: getattr(args, field.name) for field in fields(GeneratorConfig)}
    )


def cmd_generate(args: argparse.Namespace) -> int:
    """write synthetic raw data into the lake"""
    from python_jobs.generate import generate
    from python_jobs.pipeline import describe_generation

    result = generate(_lake(args), _generator_config(args), append=args.append, progress=print)
    print(describe_generation(result))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """check raw files, quarantine bad ones"""
    from python_jobs.lake.validate import validate_lake

    report = validate_lake(_lake(args), recheck=args.all)
    for item in report.quarantined:
        print(f"quarantined {item.original}: {item.reason}")
    print(report.summary())
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """validate raw files, dbt build, then publish the curated marts (lake/curated/)"""
    from python_jobs.pipeline import build, export

    build(_lake(args), say=print, select=args.select)
    export(_lake(args), say=print)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """publish the curated marts to lake/curated/ as Parquet (what readers read)"""
    if args.target == "athena":
        from python_jobs.aws.athena_export import export_from_athena_job

        export_from_athena_job(_lake(args), say=print)
        return 0
    from python_jobs.pipeline import export

    export(_lake(args), say=print)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """build the static dbt docs site"""
    from python_jobs.pipeline import build_docs

    print(f"docs: {build_docs(_lake(args), say=print)}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """rows per layer, rejections, marts"""
    if args.target == "athena":
        from python_jobs.aws.athena_summary import summary_on_athena

        on_athena = summary_on_athena(say=_quiet if args.json else print)
        if args.json:
            args.document.emit({"command": "summary", "target": "athena", **on_athena.to_dict()})
        return 0
    from python_jobs.pipeline import summarize_and_emit
    from python_jobs.summary import render

    lake = _lake(args)
    summary = summarize_and_emit(lake)
    if args.json:
        args.document.emit(
            {
                "command": "summary",
                "target": "duckdb",
                "lake": str(lake.root),
                "database": str(lake.database),
                **summary.to_dict(),
            }
        )
    else:
        print(render(summary, lake))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """the main job: generate, build, export, docs"""
    from python_jobs.pipeline import demo

    demo(_lake(args), _generator_config(args), say=print)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """daily pipeline: next day(s), build, export"""
    from python_jobs.pipeline import daily_run

    daily_run(_lake(args), args.days, say=print)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """import your own transactions file (CSV or Parquet) with a YAML mapping"""
    from python_jobs.importer import import_file, load_mapping

    mapping = load_mapping(Path(args.mapping))
    result = import_file(
        _lake(args), Path(args.source), mapping, ingestion_date=args.ingestion_date
    )
    print(result.describe())
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """upload the raw partitions (or --scores, --monitoring, --model) to s3://.../raw/"""
    from python_jobs.aws.s3_location import S3Location
    from python_jobs.ingest import ingest

    destination = S3Location.parse(args.to)
    if args.force_champion and not args.model:
        raise ValueError("--force-champion goes with --model")
    extra: tuple[Kind, ...] = ("scores", "monitoring", "model")
    kinds: list[Kind] = [kind for kind in extra if getattr(args, kind)] or ["raw"]
    for kind in kinds:
        ingest(
            _lake(args),
            destination,
            kind=kind,
            force_champion=args.force_champion and kind == "model",
            dry_run=args.dry_run,
            say=print,
        )
    return 0


def cmd_athena_register(args: argparse.Namespace) -> int:
    """create the Glue databases, the raw and scores tables (partition projection)"""
    from python_jobs.aws.athena import runner_from_env
    from python_jobs.aws.athena_jobs import register

    runner = runner_from_env(need_raw_location=True)
    register(runner.config, runner, say=print)
    return 0


def cmd_athena_query(args: argparse.Namespace) -> int:
    """run an analysis on Athena: rows, bytes scanned, cost"""
    from python_jobs.aws.athena import runner_from_env
    from python_jobs.aws.athena_jobs import query

    runner = runner_from_env()
    query(runner.config, runner, Path(args.analysis), args.max_rows, say=print)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    """train the fraud model, compare it with the baselines, promote if better"""
    from ml.booster import BoosterParams
    from ml.jobs import train_job
    from ml.train import TrainConfig, TrainOutcome, WindowRequest

    pinned = {
        name: getattr(args, name)
        for name in (
            "train_start",
            "train_end",
            "gap_days",
            "test_start",
            "test_end",
            "label_horizon_days",
        )
        if getattr(args, name) is not None
    }
    booster = BoosterParams()
    if args.max_fit_rows is not None:
        booster = BoosterParams(max_fit_rows=args.max_fit_rows)
    config = TrainConfig(alert_budget=args.alert_budget, folds=args.folds, booster=booster)
    result = train_job(
        _lake(args),
        WindowRequest(**pinned),
        config,
        backend=args.backend,
        wait=args.wait,
        collect=args.collect,
        say=_say(args),
    )
    if args.json:
        backend = "sagemaker" if args.collect else args.backend
        if isinstance(result, TrainOutcome):
            args.document.emit(cli_json.trained(result, backend))
        else:
            args.document.emit(cli_json.started(result))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """score a day's transactions with the champion"""
    if args.target == "athena":
        from python_jobs.aws.athena_score import score_on_athena_job

        if args.date is None:
            raise ValueError("--target athena needs --date YYYY-MM-DD (the day to score)")
        on_athena = score_on_athena_job(
            _lake(args), args.date, say=_say(args), reasons=args.reasons
        )
        if args.json:
            args.document.emit(cli_json.scored_on_athena(on_athena))
        else:
            print(on_athena.summary())
        return 0
    from ml.jobs import score_job

    result = score_job(_lake(args), args.date, say=_say(args), reasons=args.reasons)
    if args.json:
        args.document.emit(cli_json.scored(result, result.day, "duckdb"))
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """drift, alert rate, realized precision"""
    from ml.jobs import monitor_job
    from ml.layout import MlLayout

    report = monitor_job(_lake(args), args.date, say=_say(args))
    if args.json:
        report_file = MlLayout(_lake(args)).monitoring_file(report.day)
        args.document.emit(cli_json.monitored(report, report_file))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    """run one SELECT through the assistant's SQL guard, read-only (exit 2: refused)"""
    from python_jobs.assistant.ask import sql_command

    statement = sys.stdin.read() if args.statement == "-" else args.statement
    return sql_command(statement, lake=_lake(args), target=args.target, max_rows=args.max_rows)


def cmd_ask(args: argparse.Namespace) -> int:
    """ask the curated marts a question: SQL, rows and a reading (exit 2: refused)"""
    from python_jobs.assistant.ask import ask_command
    from python_jobs.assistant.providers import make_provider

    return ask_command(
        args.question,
        lake=_lake(args),
        provider=make_provider(args.provider),
        target=args.target,
        max_rows=args.max_rows,
        as_of=args.as_of,
    )


def cmd_report(args: argparse.Namespace) -> int:
    """the daily report: KPIs, anomalies, alerts, model health (Markdown+HTML)"""
    from python_jobs.assistant.report import write_daily_report

    result = write_daily_report(
        _lake(args),
        args.date,
        lang=args.lang,
        provider=args.provider,
        out_dir=Path(args.out),
        target=args.target,
    )
    print(result.summary())
    if result.narrative.ungrounded:
        print("  not in the facts: " + ", ".join(result.narrative.ungrounded), file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """why the fraud model scored a transaction: reasons and customer baseline"""
    from python_jobs.assistant.explain import explain

    print(explain(_lake(args), args.transaction_id, args.lang).text())
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """the analysts' and fraud team's dashboard (Streamlit) on http://127.0.0.1:8501"""
    if args.bench:
        from python_jobs.dashboard.bench import run_bench

        run_bench(_lake(args), runs=args.runs, out=Path(args.out))
        return 0
    from python_jobs.dashboard.server import serve

    return serve(
        _lake(args),
        target=args.target,
        host=args.host,
        port=args.port,
        investigator=args.investigator,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """real-time fraud scoring: the HTTP API on http://127.0.0.1:8000 (docs/serving.md)"""
    from python_jobs.serve.server import serve

    return serve(
        _lake(args),
        host=args.host,
        port=args.port,
        batch_rows=args.batch_rows,
        batch_seconds=args.batch_seconds,
        ingestion_day=args.ingestion_day,
        alert_webhook=args.alert_webhook,
        alert_sns_topic=args.alert_sns_topic,
        state_url=args.state,
        metrics_seconds=args.metrics_seconds,
        single_process=args.single_process,
        pin=not args.no_pin,
    )


def cmd_stream(args: argparse.Namespace) -> int:
    """replay a lake's raw day against `banklake serve` (127.0.0.1) or onto a Kinesis stream"""
    from python_jobs.lake.layout import Lake
    from python_jobs.serve.stream import stream_day

    if args.to is not None:
        from python_jobs.aws.kinesis_stream import stream_to_kinesis

        put = stream_to_kinesis(
            Lake(Path(args.source_lake)),
            args.date,
            args.to,
            limit=args.limit,
            max_seconds=args.max_seconds,
        )
        print(put.summary())
        return 0
    out = Path(args.out) if args.out else Path(f"stream-{args.date.isoformat()}.jsonl")
    result = stream_day(
        Lake(Path(args.source_lake)),
        args.date,
        args.url,
        out,
        rate=args.rate,
        limit=args.limit,
        max_seconds=args.max_seconds,
    )
    print(result.summary())
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    """run the Kinesis consumer's Lambda handler here over a stream (moto: AWS_ENDPOINT_URL)"""
    from python_jobs.aws import stream_consumer
    from python_jobs.aws.kinesis_stream import make_kinesis_client
    from python_jobs.aws.stream_local import consume

    result = consume(
        make_kinesis_client(),
        args.source,
        stream_consumer.handler,
        batch_size=args.batch_size,
        max_records=args.max_records,
    )
    print(result.summary())
    return 0


def cmd_state_load(args: argparse.Namespace) -> int:
    """load the lake's published export into a DynamoDB state, switched atomically (ADR 0021)

    The export goes into a new generation of the table while the Kinesis consumer and the API
    keep serving the active one; what they applied since the export's cut is applied to it
    again; then one conditional write switches them over (serve/dynamodb_generations.py)."""
    from python_jobs.serve.dynamodb_generations import load_state

    warmup = load_state(
        _lake(args),
        args.state,
        args.prefix,
        force=args.force,
        grace_seconds=args.grace_seconds,
    )
    if warmup.reused:
        print(f"{args.state} serves export {warmup.version} already: nothing loaded")
    else:
        print(
            f"{args.state}: export {warmup.version} ({warmup.rows:,} rows) loaded and switched "
            f"to in {warmup.seconds:.1f} s"
        )
    return 0


def cmd_verdict(args: argparse.Namespace) -> int:
    """record an investigator's verdict on an alert in raw, exactly once (fraud: a report too)"""
    from python_jobs.feedback import Alert, record_verdict

    alert = Alert(args.transaction_id, args.score_date, args.model_version)
    outcome = record_verdict(_lake(args), alert, args.verdict, args.by)
    print(outcome.summary())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """scale benchmark: the whole pipeline timed per stage, pandas alongside (`bench serve`:
    the real-time service; `bench daily`: the daily run against the history's length)"""
    if args.stage == "serve":
        from python_jobs.lake.layout import Lake
        from python_jobs.serve.bench import run_serve_bench

        if not args.lake:
            raise ValueError("bench serve needs --lake: a built lake with a champion")
        _, record = run_serve_bench(
            Lake(Path(args.lake)),
            rates=tuple(args.rates),
            seconds=args.seconds,
            out=Path(args.out),
        )
        print(f"record: {record} and {record.with_suffix('.md')}")
        return 0
    if args.stage == "daily":
        from python_jobs.bench.daily import DailyBenchConfig, run_daily_bench

        result, markdown = run_daily_bench(
            DailyBenchConfig(
                daily_volume=args.daily_volume,
                history_days=tuple(args.history_days),
                seed=args.seed,
                out=Path(args.out),
            ),
            say=_say(args),
        )
        if args.json:
            args.document.emit(cli_json.benched_daily(result, markdown))
        else:
            print(f"record: {markdown.with_suffix('.json')} and {markdown}")
        return 0
    from python_jobs.bench.config import BenchConfig
    from python_jobs.bench.run import run_bench

    config = BenchConfig(
        transactions=args.transactions,
        days=args.days,
        seed=args.seed,
        lake=Path(args.lake) if args.lake else None,
        out=Path(args.out),
        skip_pandas=args.skip_pandas,
        keep_lake=args.keep_lake,
    )
    outcome = run_bench(config, say=_say(args))
    if args.json:
        args.document.emit(cli_json.benched(outcome))
    return 0


def cmd_mechanisms(args: argparse.Namespace) -> int:
    """mechanisms benchmark: one lake per fraud mechanism, the model against its baselines"""
    from ml.generalization import run_benchmark, write_record
    from ml.mechanisms import MECHANISMS, WorldConfig

    sizes = {"customers": args.customers, "terminals": args.terminals, "days": args.days}
    world = replace(WorldConfig(), **{k: v for k, v in sizes.items() if v is not None})
    results = run_benchmark(
        args.seeds,
        args.mechanism or MECHANISMS,
        world,
        work=Path(args.work) if args.work else None,
        say=_say(args),
    )
    json_path, md_path = write_record(results, Path(args.out))
    missed = [r for r in results if r.failures()]
    _say(args)(
        f"{len(results) - len(missed)} of {len(results)} lakes meet the bar; "
        f"record: {md_path} and {json_path.name}"
    )
    if args.json:
        args.document.emit(cli_json.mechanisms(results, json_path))
    return 1 if missed else 0


# --- the parser: options several commands share are declared once, above; each command's
# parser is built by its own function, below, in the order `banklake --help` lists them.


def _command(
    commands: Commands, handler: Handler, *, name: str | None = None, lake: bool = True
) -> argparse.ArgumentParser:
    """A subcommand running `handler`: named after it (cmd_<name>) unless `name` is given,
    its help the first line of the handler's docstring, with --lake unless `lake` is False."""
    parser = commands.add_parser(name or handler.__name__.removeprefix("cmd_"), help=_help(handler))
    parser.set_defaults(handler=handler)
    if lake:
        _add_lake(parser)
    return parser


def _help(handler: Handler) -> str:
    """The handler's docstring up to its first blank line, as one line."""
    return " ".join((handler.__doc__ or "").split("\n\n")[0].split())


def _lake_commands(commands: Commands) -> None:
    generate = _command(commands, cmd_generate)
    _add_generator_options(generate, days_default=30)
    generate.add_argument(
        "--append",
        action="store_true",
        help="continue an existing lake with the next --days days (same customers and cases)",
    )
    validate = _command(commands, cmd_validate)
    validate.add_argument(
        "--all",
        action="store_true",
        help="check every raw file again, also those found valid before and unchanged since "
        "(by default only new or changed files are read)",
    )
    build = _command(commands, cmd_build)
    build.add_argument("--select", nargs="+", help="dbt selection (default: everything)")
    export = _command(commands, cmd_export)
    _add_target(
        export,
        "duckdb: the marts of the lake's banklake.duckdb (default); athena: the columns of "
        "fct_transactions and ml_features the online state warms from, UNLOADed from the Glue "
        "tables into --lake, a lake of its own (README's 'Run on AWS' variables; "
        "docs/aws.md)",
    )
    _command(commands, cmd_docs)
    summary = _command(commands, cmd_summary)
    _add_json(summary)
    _add_target(
        summary,
        "duckdb: the local lake (default); athena: the Glue tables, with the README's "
        "'Run on AWS' variables (--lake is then not used)",
    )
    demo = _command(commands, cmd_demo)
    _add_generator_options(demo, days_default=DEMO_DAYS)
    run = _command(commands, cmd_run)
    run.add_argument("--days", type=int, default=1, help="days to deliver (default 1)")


def _ingest_command(commands: Commands) -> None:
    ingest = _command(commands, cmd_ingest)
    ingest.add_argument("--to", required=True, help="s3://BUCKET/[PREFIX/]raw/")
    ingest.add_argument("--dry-run", action="store_true", help="show what would be uploaded")
    ingest.add_argument(
        "--scores",
        action="store_true",
        help="upload the fraud scores (lake/processed/fraud_scores/) instead, to "
        "processed/fraud_scores/ beside the --to raw/ prefix, where `athena register` reads them",
    )
    ingest.add_argument(
        "--monitoring",
        action="store_true",
        help="upload the monitoring reports (lake/monitoring/<day>.json) instead (with --scores: "
        "as well), to monitoring/ beside the --to raw/ prefix, where `report --target athena` "
        "reads model health; a day re-monitored since its upload is replaced",
    )
    ingest.add_argument(
        "--model",
        action="store_true",
        help="publish the local champion (with --scores/--monitoring: as well): its version "
        "folder to models/fraud_xgb/<version>/ beside the --to raw/ prefix, verified, then the "
        "pointer models/fraud_xgb/champion.json, where the daily pipeline's Score step reads it",
    )
    ingest.add_argument(
        "--force-champion",
        action="store_true",
        help="with --model: move the pointer even to a model older than the one it names "
        "(a deliberate rollback)",
    )


def _import_command(commands: Commands) -> None:
    imports = _command(commands, cmd_import)
    imports.add_argument("--source", required=True, help="FILE.csv or FILE.parquet")
    imports.add_argument("--mapping", required=True, help="MAPPING.yml (see examples/)")
    imports.add_argument(
        "--ingestion-date",
        type=date.fromisoformat,
        default=None,
        help="land everything in this day's partition (default: each row's event date)",
    )


def _athena_command(commands: Commands) -> None:
    athena = commands.add_parser("athena", help="run on AWS Athena (README: Run on AWS)")
    steps = athena.add_subparsers(dest="athena_command", required=True, metavar="step")
    _command(steps, cmd_athena_register, name="register", lake=False)
    query = _command(steps, cmd_athena_query, name="query", lake=False)
    query.add_argument("analysis", help="analyses/<name>.sql")
    _add_max_rows(query, "rows to print")


def _train_command(commands: Commands) -> None:
    train = _command(commands, cmd_train)
    _add_json(train)
    for flag, meaning in (
        ("--train-start", "first training day (default: the first day of the features)"),
        ("--train-end", "last training day (default: test start - gap - 1)"),
        ("--test-start", "first test day (default: the 7 days before the label horizon)"),
        ("--test-end", "last test day (default: the label horizon's eve)"),
    ):
        train.add_argument(flag, type=date.fromisoformat, default=None, help=meaning)
    train.add_argument("--gap-days", type=int, default=None, help="unused days (default 7)")
    train.add_argument(
        "--label-horizon-days",
        type=int,
        default=None,
        help="newest days left out of the default test while their frauds are reported "
        "(default 7; 0 tests on the newest days)",
    )
    train.add_argument(
        "--alert-budget",
        type=float,
        default=100.0,
        help="cases (customers alerted on a day) a day -> threshold (100)",
    )
    train.add_argument("--folds", type=int, default=1, help="prequential folds (default 1)")
    train.add_argument(
        "--max-fit-rows",
        type=_positive_int,
        default=None,
        help="rows the XGBoost fit uses at most: above it, every known fraud and a weighted "
        "sample of the rest (default 1,000,000)",
    )
    train.add_argument("--backend", choices=("local", "sagemaker"), default="local")
    train.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sagemaker: wait for the job and register its model (default), or return once "
        "it has started (--no-wait; collect it later)",
    )
    train.add_argument(
        "--collect",
        metavar="JOB_NAME",
        default=None,
        help="register a SageMaker training job's model as a challenger (waits for it "
        "unless --no-wait)",
    )


def _score_and_monitor_commands(commands: Commands) -> None:
    score = _command(commands, cmd_score)
    _add_date(score, "day to score (default: the last)")
    score.add_argument(
        "--reasons",
        choices=("alerts", "all"),
        default="alerts",
        help="which transactions get exact TreeSHAP reasons: the alerted ones (default; the "
        "others get path attributions, as real-time approvals do) or every one (slower)",
    )
    _add_json(score)
    _add_target(
        score,
        "duckdb: features from the lake's DuckDB file (default); athena: from "
        "<schema>_curated.ml_features through an Athena UNLOAD (needs --date and the README's "
        "'Run on AWS' variables), scores written to --lake and uploaded beside "
        "$BANKLAKE_S3_RAW_DIR",
    )
    monitor = _command(commands, cmd_monitor)
    _add_date(monitor, "scored day (default: the last)")
    _add_json(monitor)


def _assistant_commands(commands: Commands) -> None:
    sql = _command(commands, cmd_sql)
    sql.add_argument("statement", help="one SELECT over the curated marts ('-': read stdin)")
    _add_max_rows(sql, "LIMIT injected or capped (100)")
    _add_target(sql, ASSISTANT_TARGET_HELP)

    ask = _command(commands, cmd_ask)
    ask.add_argument("question", help='e.g. "taxa de fraude por canal nos últimos 7 dias"')
    _add_provider(
        ask,
        "offline (default; supported questions only), bedrock or openai "
        "(default: $BANKLAKE_ASSISTANT_PROVIDER)",
    )
    _add_target(ask, ASSISTANT_TARGET_HELP)
    _add_max_rows(ask, "rows at most (100)")
    ask.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=None,
        help='"today" for relative periods (default: the day after the last data day)',
    )

    report = _command(commands, cmd_report)
    _add_date(report, "day (default: the last with data)")
    _add_lang(report)
    _add_provider(
        report,
        "who writes the summary: offline (template, default) or a model whose numbers "
        "are checked against the facts (default: $BANKLAKE_ASSISTANT_PROVIDER)",
    )
    report.add_argument("--out", default="reports", help="output folder (default: ./reports)")
    _add_target(report, ASSISTANT_TARGET_HELP)

    explain = _command(commands, cmd_explain)
    explain.add_argument("transaction_id", help="a scored transaction, e.g. T20260924000000189")
    _add_lang(explain)


def _dashboard_command(commands: Commands) -> None:
    dashboard = _command(commands, cmd_dashboard)
    _add_target(
        dashboard,
        "duckdb: what the lake has published (default); athena: the assistant's work group "
        "($BANKLAKE_ASSISTANT_ATHENA_WORKGROUP), each query's bytes and cost shown",
    )
    dashboard.add_argument("--host", default="127.0.0.1", help="address (127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8501, help="port (8501)")
    dashboard.add_argument(
        "--investigator",
        default=None,
        help="the name verdicts are given under by default ($BANKLAKE_INVESTIGATOR, else "
        "the login name)",
    )
    dashboard.add_argument(
        "--bench",
        action="store_true",
        help="instead of serving: time every page on this lake (server and browser), record "
        "it under --out (docs/performance.md)",
    )
    dashboard.add_argument("--runs", type=_positive_int, default=3, help="--bench: runs (3)")
    dashboard.add_argument(
        "--out", default="bench/results", help="--bench: results folder (bench/results)"
    )


def _serve_commands(commands: Commands) -> None:
    serve = _command(commands, cmd_serve)
    serve.add_argument("--host", default="127.0.0.1", help="address (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (8000)")
    serve.add_argument(
        "--batch-rows",
        type=_positive_int,
        default=1_000,
        help="land a micro-batch in the lake every N acknowledged records (1000) ...",
    )
    serve.add_argument(
        "--batch-seconds", type=float, default=5.0, help="... or every T seconds (5)"
    )
    serve.add_argument(
        "--ingestion-day",
        type=date.fromisoformat,
        default=None,
        help="replays of history: land every row in this raw ingestion day, YYYY-MM-DD "
        "(default: the bank's calendar day when it arrives)",
    )
    serve.add_argument(
        "--alert-webhook",
        default=None,
        help="also POST every alert to this URL (retried, then kept in lake/_stream/)",
    )
    serve.add_argument(
        "--alert-sns-topic",
        default=None,
        help="also publish every alert to this SNS topic ARN (AWS credentials and region "
        "from the environment)",
    )
    serve.add_argument(
        "--state",
        default=None,
        metavar="URL",
        help="the online state: in this process (default), on a Redis server "
        "(redis://host:port/db or unix:///path/redis.sock) or in a DynamoDB table "
        "(dynamodb://TABLE: region and credentials from the environment, endpoint from "
        "AWS_ENDPOINT_URL when set); rebuilt from the lake at start",
    )
    serve.add_argument(
        "--metrics-seconds",
        type=float,
        default=60.0,
        help="emit the service's figures (latency p50/p99, decisions, refusals, flush lag) as "
        "EMF every N seconds and at shutdown (60; docs/operations.md, Job metrics)",
    )
    serve.add_argument(
        "--single-process",
        action="store_true",
        help="serve HTTP in the scoring process itself (default: in a process of its own, "
        "on another core; docs/serving.md)",
    )
    serve.add_argument(
        "--no-pin",
        action="store_true",
        help="let the system run the processes on any core (default on Linux with 2+ cores: "
        "the scoring process on one core of its own, HTTP and landing on the others)",
    )
    stream = _command(commands, cmd_stream, lake=False)
    stream.add_argument("--source-lake", required=True, help="the lake whose raw day is replayed")
    stream.add_argument(
        "--date", type=date.fromisoformat, required=True, help="the raw ingestion day, YYYY-MM-DD"
    )
    target = stream.add_mutually_exclusive_group()
    target.add_argument("--url", default="http://127.0.0.1:8000", help="the API (127.0.0.1 only)")
    target.add_argument(
        "--to",
        default=None,
        metavar="kinesis://STREAM",
        help="put the day's transactions on this Kinesis stream instead (PutRecords; "
        "endpoint: AWS_ENDPOINT_URL when set)",
    )
    stream.add_argument(
        "--rate", type=float, default=None, help="requests a second (as fast as answered)"
    )
    stream.add_argument("--limit", type=_positive_int, default=None, help="at most N requests")
    stream.add_argument(
        "--max-seconds", type=float, default=600.0, help="stop after this many seconds (600)"
    )
    stream.add_argument(
        "--out", default=None, help="answers, JSON lines (default: stream-<date>.jsonl)"
    )
    state = commands.add_parser("state", help="the shared online state (DynamoDB)")
    state_steps = state.add_subparsers(dest="state_command", required=True, metavar="step")
    load = _command(state_steps, cmd_state_load, name="load")
    load.add_argument(
        "--state", required=True, metavar="dynamodb://TABLE", help="the state's table"
    )
    load.add_argument("--prefix", default="banklake:", help="its key prefix (banklake:)")
    load.add_argument(
        "--force",
        action="store_true",
        help="load even when the table serves this export already",
    )
    load.add_argument(
        "--grace-seconds",
        type=float,
        default=30.0,
        help="wait this long after the switch before deleting the old generation (30)",
    )
    consume = _command(commands, cmd_consume, lake=False)
    consume.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="kinesis://STREAM",
        help="the stream; the handler reads BANKLAKE_LAKE_URI and the rest from the environment",
    )
    consume.add_argument(
        "--batch-size", type=_positive_int, default=1000, help="records per invocation (1000)"
    )
    consume.add_argument(
        "--max-records", type=_positive_int, default=1_000_000, help="at most N records a shard"
    )


def _verdict_command(commands: Commands) -> None:
    verdict = _command(commands, cmd_verdict)
    verdict.add_argument("transaction_id", help="the alerted transaction, e.g. T20261127000012345")
    verdict.add_argument("verdict", choices=("fraud", "legitimate"))
    verdict.add_argument("--by", required=True, help="the investigator (a name or login)")
    verdict.add_argument(
        "--score-date",
        type=date.fromisoformat,
        required=True,
        help="the alert's scoring day, YYYY-MM-DD (fct_fraud_alerts.score_date)",
    )
    verdict.add_argument(
        "--model-version", required=True, help="the model version that raised the alert"
    )


def _bench_command(commands: Commands) -> None:
    bench = _command(commands, cmd_bench, lake=False)
    _add_json(bench)
    bench.add_argument(
        "stage",
        nargs="?",
        choices=("pipeline", "serve", "daily"),
        default="pipeline",
        help="pipeline (default): generate, build, train, score at scale; serve: the "
        "real-time service's latency and throughput on the built --lake; daily: the daily "
        "run's time on lakes of different history at one daily volume",
    )
    bench.add_argument(
        "--daily-volume",
        type=_positive_int,
        default=330_000,
        help="daily: transactions a day (330,000: the 10M, 30-day bench's day)",
    )
    bench.add_argument(
        "--history-days",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[10, 20, 30],
        help="daily: history lengths in days, one fresh lake each (10,20,30)",
    )
    bench.add_argument(
        "--rates",
        type=lambda text: [float(part) for part in text.split(",")],
        default=[100.0, 250.0, 500.0, 1000.0, 1500.0, 2000.0],
        help="serve: offered loads, requests a second (100,250,500,1000,1500,2000)",
    )
    bench.add_argument(
        "--seconds", type=float, default=10.0, help="serve: seconds each load lasts (10)"
    )
    bench.add_argument(
        "--transactions", type=int, default=10_000_000, help="raw transactions (10,000,000)"
    )
    bench.add_argument("--days", type=int, default=30, help="days they span (30)")
    bench.add_argument("--seed", type=int, default=42, help="random seed (42)")
    bench.add_argument(
        "--lake",
        default=None,
        help="pipeline: a new, empty lake folder (default: a temporary one); serve: the "
        "built lake to serve from (required)",
    )
    bench.add_argument(
        "--keep-lake", action="store_true", help="keep the temporary lake (a given --lake is kept)"
    )
    bench.add_argument("--out", default="bench/results", help="results folder (bench/results)")
    bench.add_argument(
        "--skip-pandas", action="store_true", help="skip the pandas reference and its check"
    )


def _mechanisms_command(commands: Commands) -> None:
    mechanisms = _command(commands, cmd_mechanisms, lake=False)
    _add_json(mechanisms)
    mechanisms.add_argument(
        "--seeds",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[1, 2, 3],
        help="comma-separated seeds; each draws every mechanism's parameters (1,2,3)",
    )
    mechanisms.add_argument(
        "--mechanism",
        action="append",
        default=None,
        help="only this mechanism (repeatable): amount_threshold, compromised_counterparty, "
        "compromised_customer, account_takeover (default: all)",
    )
    # None: ml/mechanisms.py's WorldConfig default (1,000 customers, 2,000 terminals, 49 days)
    mechanisms.add_argument("--customers", type=int, default=None, help="card holders")
    mechanisms.add_argument("--terminals", type=int, default=None, help="terminals")
    mechanisms.add_argument("--days", type=int, default=None, help="days each lake spans")
    mechanisms.add_argument(
        "--work", default=None, help="keep the lakes in this folder (default: a temporary one)"
    )
    mechanisms.add_argument("--out", default="bench/results", help="results folder (bench/results)")


_COMMANDS = (
    _lake_commands,
    _ingest_command,
    _import_command,
    _athena_command,
    _train_command,
    _score_and_monitor_commands,
    _assistant_commands,
    _dashboard_command,
    _serve_commands,
    _verdict_command,
    _bench_command,
    _mechanisms_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banklake",
        description="Synthetic bank data, a local lake and the dbt medallion around it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add_commands in _COMMANDS:
        add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not getattr(args, "json", False):
            return args.handler(args)
        args.document = cli_json.Document()
        with cli_json.stdout_to_stderr():
            code = args.handler(args)
        if args.document.value is not None:
            cli_json.write(args.document.value)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f"banklake {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
