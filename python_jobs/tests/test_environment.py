"""python_jobs/environment.py: how every job reads its configuration from the environment."""

from __future__ import annotations

import pytest

from python_jobs.environment import aws_profile, aws_region, environment, parsed, require


class Misconfigured(RuntimeError):
    pass


REQUIRED = {"BANKLAKE_A": "the first thing", "BANKLAKE_B": "the second thing"}


def test_every_missing_variable_is_named_at_once_with_what_it_is_for() -> None:
    with pytest.raises(Misconfigured) as raised:
        require({"BANKLAKE_B": ""}, REQUIRED, error=Misconfigured, heading="set:", region="eu")
    assert str(raised.value).splitlines() == [
        "set:",
        "  BANKLAKE_A: the first thing",
        "  BANKLAKE_B: the second thing",  # empty counts as unset
        "  AWS_REGION (or AWS_DEFAULT_REGION): eu",
    ]
    present = {"BANKLAKE_A": "a", "BANKLAKE_B": "b"}
    require(present, REQUIRED, error=Misconfigured, heading="set:")  # no region asked for
    with pytest.raises(Misconfigured, match="AWS_REGION"):
        require(present, REQUIRED, error=Misconfigured, heading="set:", region="eu")
    require({**present, "AWS_DEFAULT_REGION": "eu"}, REQUIRED, error=Misconfigured, heading="")


def test_region_and_profile_are_read_one_way() -> None:
    assert aws_region({"AWS_REGION": "sa-east-1", "AWS_DEFAULT_REGION": "us-east-1"}) == (
        "sa-east-1"
    )
    assert aws_region({"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-east-1"}) == "us-east-1"
    assert aws_region({}) is None
    assert aws_profile({"BANKLAKE_AWS_PROFILE": "bank"}) == "bank"
    assert aws_profile({"BANKLAKE_AWS_PROFILE": ""}) is None


def test_a_number_that_does_not_parse_names_its_variable(monkeypatch) -> None:
    assert parsed({}, "BANKLAKE_N", "5", int, error=Misconfigured) == 5
    assert parsed({"BANKLAKE_N": "2.5"}, "BANKLAKE_N", "5", float, error=Misconfigured) == 2.5
    with pytest.raises(Misconfigured, match=r"^BANKLAKE_N: invalid literal"):
        parsed({"BANKLAKE_N": "many"}, "BANKLAKE_N", "5", int, error=Misconfigured)
    monkeypatch.setenv("BANKLAKE_N", "9")
    assert parsed(environment(), "BANKLAKE_N", "5", int, error=Misconfigured) == 9
