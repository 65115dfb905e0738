"""The scoring API's container entry point on ECS Fargate (infrastructure/images/Dockerfile,
target api): `banklake` with the champion brought in first.

    python -m python_jobs.aws.serve_task serve --host 0.0.0.0 --port 8000 --lake /lake ...

The task's lake folder starts empty (the task's ephemeral storage, ADR 0023) and `banklake
serve` reads the champion from <lake>/models/fraud_xgb/. When BANKLAKE_MODEL_URI is an s3://
prefix (the stack sets s3://<LakeBucket>/models/fraud_xgb/), the champion published there is
copied into that folder before the CLI runs; a local path or no variable leaves the lake as it
is (a local run). Any other command is `banklake`'s own, unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ml.layout import MlLayout
from python_jobs.aws.champion_copy import NoPublishedChampion, copy_champion
from python_jobs.aws.s3 import make_s3_client
from python_jobs.cli import build_parser
from python_jobs.cli import main as banklake
from python_jobs.lake.layout import Lake

MODEL_URI_ENV = "BANKLAKE_MODEL_URI"  # the consumer's variable (python_jobs/aws/stream_consumer.py)


def main(
    argv: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    s3_factory: Callable[[], Any] = make_s3_client,
) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    uri = env.get(MODEL_URI_ENV, "")
    if uri.startswith("s3://"):
        args = build_parser().parse_args(argv)
        if args.command == "serve":
            try:
                version = copy_champion(s3_factory(), uri, MlLayout(Lake(Path(args.lake))))
            except NoPublishedChampion as error:
                print(f"banklake serve: {error}", file=sys.stderr)
                return 1
            print(f"champion {version} copied from {uri} to {args.lake}", file=sys.stderr)
    return banklake(argv)


if __name__ == "__main__":
    sys.exit(main())
