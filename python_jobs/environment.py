"""Configuration from the environment: the one way every job reads its variables (Athena,
Bedrock, an OpenAI-compatible endpoint, the S3 client).

A job names every variable it needs with what it is for; `require` lists all of the missing
ones in one error, so a user fixes the environment once rather than once per variable. The
AWS region and profile are read the same way everywhere, so the CLI, the assistant and the
dbt `athena` target (profiles.yml.example) cannot point at different places.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

PROFILE_VARIABLE = "BANKLAKE_AWS_PROFILE"


def environment(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """`env`, or the process environment when None (tests pass their own mapping)."""
    return os.environ if env is None else env


def aws_region(env: Mapping[str, str]) -> str | None:
    """AWS_REGION, else AWS_DEFAULT_REGION, else None (boto3's own chain)."""
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def aws_profile(env: Mapping[str, str]) -> str | None:
    """$BANKLAKE_AWS_PROFILE, else None (boto3's own chain)."""
    return env.get(PROFILE_VARIABLE) or None


def require(
    env: Mapping[str, str],
    required: Mapping[str, str],
    *,
    error: type[Exception],
    heading: str,
    region: str | None = None,
) -> None:
    """Raises `error`, `heading` then one line per missing variable with what it is for,
    when a variable of `required` (name -> what it is) is unset or empty, or, when `region`
    is given (an example of one), neither AWS_REGION nor AWS_DEFAULT_REGION is set."""
    missing = [f"  {name}: {what}" for name, what in required.items() if not env.get(name)]
    if region is not None and not aws_region(env):
        missing.append(f"  AWS_REGION (or AWS_DEFAULT_REGION): {region}")
    if missing:
        raise error(heading + "\n" + "\n".join(missing))


def parsed(
    env: Mapping[str, str],
    name: str,
    default: str,
    parse: Callable[[str], T],
    *,
    error: type[Exception],
) -> T:
    """The variable `name` (or `default` when unset) read by `parse` (int, float, ...); a
    value `parse` refuses raises `error` naming the variable."""
    try:
        return parse(env.get(name, default))
    except ValueError as problem:
        raise error(f"{name}: {problem}") from None


@contextmanager
def variables_set(values: Mapping[str, str]) -> Iterator[None]:
    """The process environment with `values` set, restored as it was on leaving (a variable
    that was unset is unset again): for in-process runs that read their settings from it,
    such as dbt (BANKLAKE_LAKE_DIR, DBT_PROFILES_DIR) or Streamlit's AppTest."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
