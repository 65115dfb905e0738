"""What the package and its locks promise: two locks that agree, production installing the
runtime one, the containers and layers at its versions, the metadata a user expects."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# tools that must never reach a production install
DEV_ONLY = ("pytest", "moto", "cfn-lint", "sqlfluff", "ruff", "mypy", "mkdocs", "pre-commit")


def pins(lock: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (REPO / lock).read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            found[canonicalize_name(name)] = version
    return found


def test_the_runtime_lock_is_the_dev_lock_s_subset_at_the_same_versions() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
    assert not [name for name in runtime if name in DEV_ONLY]
    assert all(name in dev for name in DEV_ONLY)


def test_every_direct_dependency_is_pinned_where_it_belongs() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    project = PYPROJECT["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert requirement.specifier.contains(runtime[name]), spec
    for spec in project["optional-dependencies"]["dev"]:
        requirement = Requirement(spec)
        assert requirement.specifier.contains(dev[canonicalize_name(requirement.name)]), spec


def test_production_installs_the_runtime_lock() -> None:
    buildspec = (REPO / "infrastructure/buildspec.yml").read_text()
    assert re.findall(r"pip install .*-r (\S+)", buildspec) == ["requirements.lock"]
    makefile = (REPO / "Makefile").read_text()
    # make venv (tests, lint, docs) and the IaC linters' own venv
    assert re.findall(r"pip install .*-r (\S+)", makefile) == [
        "requirements-dev.lock",
        "infrastructure/requirements-iac.lock",
    ]


def test_the_sagemaker_container_and_the_lambda_layer_use_the_lock_s_versions() -> None:
    from ml.sagemaker import CONTAINER_REQUIREMENTS

    runtime = pins("requirements.lock")
    for line in CONTAINER_REQUIREMENTS.split():
        name, version = line.split("==")
        assert runtime[canonicalize_name(name)] == version, line
    layer = (REPO / "python_jobs/aws/LAMBDA.md").read_text()
    (version,) = re.findall(r"pyarrow==([\w.]+)", layer)
    assert version == runtime["pyarrow"]


def test_the_metadata_a_user_expects() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "Copyright 2026 The banklake authors" in license_text
    assert set(project["urls"]) >= {"Homepage", "Repository", "Documentation", "Issues"}
    # the Python versions claimed are the ones requires-python allows, and the other way round
    claimed = {
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert claimed == {"3.11", "3.12", "3.13"}
    assert project["requires-python"] == ">=3.11,<3.14"


def test_the_git_hooks_run_the_pinned_tools_locally() -> None:
    import yaml

    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    assert set(hooks) == {"ruff-check", "ruff-format", "sqlfluff-lint"}
    for hook in hooks.values():
        assert hook["language"] == "system" and ".venv/bin/" in hook["entry"]
