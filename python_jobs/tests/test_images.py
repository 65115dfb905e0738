"""The real-time path's images (infrastructure/images/Dockerfile) against the repository, the
stack that runs them and the code they run: no Docker daemon needed.

- every COPY source exists and is in the build context (/.dockerignore), which holds no lake,
  virtualenv, .git, profile or secret;
- the lock installed is the project's runtime lock, exactly (--no-deps, wheels only), and the
  consumer's own lock is hashed;
- the consumer's CMD is the stack's ImageConfig.Command and names stream_consumer.handler;
- the API's command is `banklake serve` on the port the task definition, the target group and
  the security groups use, its health checks paths the app answers;
- what the images run imports and reads only what the Dockerfile copies: statically (every
  first-party module reachable from the entry points, every third-party one in the lock) and
  in a subprocess whose sys.path is the copied tree and the installed packages, nothing else.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from python_jobs.aws import serve_task, stream_consumer
from python_jobs.cli import build_parser
from python_jobs.cli import main as cli_main
from python_jobs.serve.contract import normalize_transaction
from python_jobs.tests.cfn_yaml import load_template
from python_jobs.tests.dockerfile import DockerIgnore, Stage, parse_dockerfile, stage_chain

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infrastructure" / "images" / "Dockerfile"
LAMBDA_LOCK = "infrastructure/images/requirements-lambda.lock"
TARGETS = ("consumer", "api")
# what each image runs: the modules its entry point imports first
ENTRY_MODULES = {"consumer": "python_jobs.aws.stream_consumer", "api": "python_jobs.aws.serve_task"}


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE)


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore.read(REPO / ".dockerignore")


@pytest.fixture(scope="module")
def context(ignore: DockerIgnore) -> list[str]:
    return ignore.context_files(REPO)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO / "infrastructure" / "banklake.yaml")


def _env(chain: list[Stage]) -> dict[str, str]:
    """ENV of a stage and its bases (`A=1 B=2`, continuations joined); ${X} of earlier ones
    substituted, unknown ones left as they are."""
    env: dict[str, str] = {}
    for stage in chain:
        for instruction in stage.all("ENV"):
            for word in shlex.split(instruction.text):
                name, _, value = word.partition("=")
                env[name] = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], m[0]), value)
    return env


def _workdir(chain: list[Stage]) -> str:
    found = [i.text for stage in chain for i in stage.all("WORKDIR")]
    return found[-1] if found else "/"


def _copies(chain: list[Stage]) -> list[tuple[list[str], str, str]]:
    """Each COPY from the context: (sources, destination, the WORKDIR it is relative to)."""
    copies = []
    workdir = "/"
    for stage in chain:
        for instruction in stage.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = instruction.text
            elif instruction.keyword == "ADD":
                raise AssertionError(f"line {instruction.line}: ADD; COPY says what it does")
            elif instruction.keyword == "COPY":
                flags, args = instruction.flags_and_args()
                if "from" in flags:
                    continue
                copies.append((args[:-1], args[-1], workdir))
    return copies


def _stage_files(chain: list[Stage], context: list[str], root: Path) -> None:
    """Lays out under `root` the files the chain's COPYs put in the image, as Docker would:
    a folder source copies its (context) contents into the destination folder."""
    for sources, destination, workdir in _copies(chain):
        target = PurePosixPath(workdir) / destination
        for source in sources:
            source = source.rstrip("/")
            files = [f for f in context if f == source or f.startswith(source + "/")]
            for file in files:
                inside = file[len(source) :].lstrip("/")
                if inside:  # a folder's file, under the destination folder
                    placed = target / inside
                elif destination.endswith("/"):
                    placed = target / PurePosixPath(file).name
                else:
                    placed = target
                out = root / str(placed).lstrip("/")
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(REPO / file, out)


def _stage(stages: list[Stage], name: str) -> Stage:
    return stage_chain(stages, name)[-1]


def test_the_dockerfile_has_the_two_targets_on_the_project_s_python(
    stages: list[Stage], template: dict[str, Any]
) -> None:
    names = {s.name for s in stages}
    assert set(TARGETS) <= names
    bases = {s.base for name in TARGETS for s in stage_chain(stages, name) if s.base not in names}
    (base,) = bases  # one base image for both
    # the Python of the zip functions of the stack and of the project (pyproject)
    runtimes = {
        r["Properties"]["Runtime"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "Runtime" in r["Properties"]
    }
    assert runtimes == {"python3.11"}
    assert re.fullmatch(r"python:3\.11[.\w-]*|python@sha256:[0-9a-f]{64}", base), base


def test_every_copy_source_exists_and_is_in_the_build_context(
    stages: list[Stage], context: list[str]
) -> None:
    for name in TARGETS:
        copies = _copies(stage_chain(stages, name))
        assert copies, name
        for sources, _, _ in copies:
            for source in sources:
                path = REPO / source
                assert path.exists(), f"COPY {source}: not in the repository"
                inside = source.rstrip("/")
                assert any(f == inside or f.startswith(inside + "/") for f in context), (
                    f"COPY {source}: left out of the build context by .dockerignore"
                )


def test_the_build_context_holds_no_lake_venv_git_profile_or_secret(
    ignore: DockerIgnore, context: list[str]
) -> None:
    for path in context:
        top = path.split("/", 1)[0]
        assert top not in {".venv", ".venv-iac", "lake", ".git", "target", "build", "bench"}
        assert "/tests/" not in f"/{path}" and "__pycache__" not in path, path
        assert not re.search(r"(^|/)(\.env|profiles\.yml|credentials)|\.(pem|key|duckdb)", path)
    # the rules, not only this checkout: what a developer might leave lying around stays out
    for stray in (
        ".venv/bin/python",
        "lake/raw/transactions/year=2026/month=10/day=02/part-0.parquet",
        "lake/banklake.duckdb",
        ".git/config",
        "profiles.yml",
        ".env",
        "python_jobs/.env",
        "python_jobs/serve/.env.local",
        "ml/secret.pem",
        "seeds/export.parquet",
        "python_jobs/aws/credentials",
        "ml/tests/test_x.py",
        "python_jobs/serve/__pycache__/app.cpython-311.pyc",
    ):
        assert ignore.excluded(stray), stray
    # and what the processes read is in
    for needed in (
        "python_jobs/aws/stream_consumer.py",
        "python_jobs/serve/app.py",
        "ml/compiled_trees.py",
        "seeds/feature_reason_codes.csv",
        "seeds/value_aliases.csv",
        "python_jobs/assistant/templates/feature_words.csv",
        "requirements.lock",
        LAMBDA_LOCK,
    ):
        assert needed in context, needed


def _pip_installs(chain: list[Stage]) -> list[str]:
    return [
        i.text for stage in chain for i in stage.all("RUN") if re.search(r"pip install", i.text)
    ]


def _lock_names(path: Path) -> dict[str, str]:
    names = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s\\;]+)", line)
        if match:
            names[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return names


def test_the_lock_installed_is_the_project_s_runtime_lock_exactly(stages: list[Stage]) -> None:
    for name in TARGETS:
        chain = stage_chain(stages, name)
        copied = {
            source: str(PurePosixPath(workdir) / destination)
            for sources, destination, workdir in _copies(chain)
            for source in sources
        }
        assert copied.get("requirements.lock"), f"{name}: the runtime lock is not copied"
        lock_in_image = copied["requirements.lock"]
        installs = _pip_installs(chain)
        runtime = [r for r in installs if f"-r {lock_in_image}" in r]
        assert len(runtime) == 1, installs
        # exactly the pins (no resolver picking other versions), never compiling anything
        assert "--no-deps" in runtime[0] and "--only-binary=:all:" in runtime[0]
        assert "pip check" in runtime[0]
        # nothing else is installed but the consumer's runtime interface client, by hash
        others = [r for r in installs if r not in runtime]
        if name == "consumer":
            (ric,) = others
            assert f"-r {copied[LAMBDA_LOCK]}" in ric and "--require-hashes" in ric
        else:
            assert others == []


def test_the_consumer_s_lock_is_hashed_and_agrees_with_the_runtime_lock() -> None:
    text = (REPO / LAMBDA_LOCK).read_text(encoding="utf-8")
    requirements = [r for r in re.split(r"(?<!\\)\n", text) if r and not r.startswith("#")]
    assert requirements
    for requirement in requirements:
        assert re.search(r"==\S+ \\\s+--hash=sha256:[0-9a-f]{64}", requirement), requirement
    ric = _lock_names(REPO / LAMBDA_LOCK)
    runtime = _lock_names(REPO / "requirements.lock")
    assert "awslambdaric" in ric
    for package, version in ric.items():  # one version of a package in the image
        assert runtime.get(package, version) == version, package


def test_the_consumer_image_runs_the_stack_s_handler(
    stages: list[Stage], template: dict[str, Any]
) -> None:
    consumer = _stage(stages, "consumer")
    entrypoint = consumer.last("ENTRYPOINT")
    cmd = consumer.last("CMD")
    assert entrypoint and cmd
    # the Runtime Interface Client of the copied lock is the process; CMD is its handler
    assert entrypoint.exec_form()[1:] == ["-m", "awslambdaric"]
    function = template["Resources"]["StreamConsumerFunction"]["Properties"]
    assert cmd.exec_form() == function["ImageConfig"]["Command"]
    (handler,) = cmd.exec_form()
    module, _, attribute = handler.rpartition(".")
    assert getattr(importlib.import_module(module), attribute) is stream_consumer.handler
    # the function runs x86_64, the platform make images builds and the hashed wheels are for
    assert function["Architectures"] == ["x86_64"]
    assert re.search(r"x86_64", (REPO / LAMBDA_LOCK).read_text(encoding="utf-8"))


def _app_routes() -> set[str]:
    source = (REPO / "python_jobs" / "serve" / "app.py").read_text(encoding="utf-8")
    return set(re.findall(r"@app\.get\(\"([^\"]+)\"", source))


def _url_of(command: list[str]) -> tuple[int, str]:
    (url,) = re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]*)", " ".join(command))
    return int(url[0]), url[1]


def test_the_api_image_runs_banklake_serve_as_the_stack_expects(
    stages: list[Stage], template: dict[str, Any]
) -> None:
    api = _stage(stages, "api")
    entrypoint, cmd, expose, healthcheck, user = (
        api.last(k) for k in ("ENTRYPOINT", "CMD", "EXPOSE", "HEALTHCHECK", "USER")
    )
    assert entrypoint and cmd and expose and healthcheck and user
    # the entry point is `banklake` (python_jobs.cli:main) behind the champion's copy
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["banklake"] == "python_jobs.cli:main"
    assert entrypoint.exec_form() == ["python", "-m", ENTRY_MODULES["api"]]
    assert serve_task.banklake is cli_main
    # not root
    assert user.text.split(":")[0] not in {"0", "root"}

    resources = template["Resources"]
    (container,) = resources["ScoringApiTaskDefinition"]["Properties"]["ContainerDefinitions"]
    default = build_parser().parse_args(cmd.exec_form())
    literal = [c if isinstance(c, str) else f"<{next(iter(c))}>" for c in container["Command"]]
    task = build_parser().parse_args(literal)
    assert default.command == task.command == "serve"
    assert (default.host, default.port, default.lake) == (task.host, task.port, task.lake)

    port = task.port
    assert expose.text.split("/")[0] == str(port)
    assert [m["ContainerPort"] for m in container["PortMappings"]] == [port]
    target_group = resources["ScoringApiTargetGroup"]["Properties"]
    assert target_group["Port"] == port
    (mapping,) = resources["ScoringApiService"]["Properties"]["LoadBalancers"]
    assert mapping["ContainerPort"] == port and mapping["ContainerName"] == container["Name"]
    for rule in ("ScoringApiLoadBalancerToTasks", "ScoringApiTasksFromLoadBalancer"):
        properties = resources[rule]["Properties"]
        assert properties["FromPort"] == properties["ToPort"] == port, rule

    # the health checks ask paths the app answers, on its port: the load balancer readiness,
    # the container (the image's HEALTHCHECK and the task's, the same) liveness
    routes = _app_routes()
    assert {"/v1/health", "/v1/ready"} <= routes
    assert target_group["HealthCheckPath"] == "/v1/ready"
    probe = healthcheck.exec_form()
    assert _url_of(probe) == (port, "/v1/health")
    assert container["HealthCheck"]["Command"] == ["CMD", *probe]
    flags, _ = healthcheck.flags_and_args()
    seconds = {k: int(v.rstrip("s")) for k, v in flags.items()}
    check = container["HealthCheck"]
    assert (check["Interval"], check["Timeout"], check["Retries"], check["StartPeriod"]) == (
        seconds["interval"],
        seconds["timeout"],
        seconds["retries"],
        seconds["start-period"],
    )
    # the start period covers the warm-up as the service's grace period does
    grace = resources["ScoringApiService"]["Properties"]["HealthCheckGracePeriodSeconds"]
    assert check["StartPeriod"] >= min(grace, 300)
    # the task's writable mounts exist in the image (root file system read-only)
    mounts = {m["ContainerPath"] for m in container["MountPoints"]}
    assert str(task.lake) in mounts
    assert any(str(task.lake) in i.text for i in api.all("RUN"))


# --- what the images import and read -------------------------------------------------------------


def _runtime_imports(path: Path, root: Path) -> set[str]:
    """The absolute module names a file imports at run time: anywhere in it (functions
    included), but not under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for b in node.body for n in ast.walk(b))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names - {"__future__"}


def _module_file(root: Path, name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (
        root.joinpath(*parts, "__init__.py"),
        root.joinpath(*parts).with_suffix(".py"),
    ):
        if candidate.is_file():
            return candidate
    return None


def _first_party_closure(root: Path, entry: str) -> tuple[set[str], set[str], dict[str, set[str]]]:
    """From `entry`, every first-party module reachable in the tree at `root` (and its
    packages' __init__), the first-party names missing there, and the third-party top-level
    names imported on the way, each with the modules importing it."""
    first_party = ("python_jobs", "ml")
    seen: set[str] = set()
    missing: set[str] = set()
    third: dict[str, set[str]] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        file = _module_file(root, name)
        if file is None:
            # `from package import name`: a name of the package, not a module, is fine
            parent = name.rpartition(".")[0]
            if not parent or _module_file(root, parent) is None:
                missing.add(name)
            continue
        for parent in (".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)):
            todo.append(parent)
        for imported in _runtime_imports(file, root):
            top = imported.split(".")[0]
            if top in first_party:
                todo.append(imported)
            elif top and top not in sys.stdlib_module_names:
                third.setdefault(top, set()).add(name)
    return seen, missing, third


# third-party packages of the dev lock that a copied module may import, and the only modules
# that may: the dashboard's browser driver (README screenshots, the page benchmark; its
# docstring says so) is reachable from the CLI but never run by `banklake serve` or the consumer
DEV_ONLY = {"playwright": {"python_jobs.dashboard.browser"}}


@pytest.fixture(scope="module")
def staged(
    stages: list[Stage], context: list[str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Each target's image file system, the COPYs only (no lock: the installed packages)."""
    roots = {}
    for name in TARGETS:
        root = tmp_path_factory.mktemp(f"image-{name}")
        _stage_files(stage_chain(stages, name), context, root)
        roots[name] = root
    return roots


@pytest.mark.parametrize("target", TARGETS)
def test_every_module_the_image_can_run_is_copied_and_every_library_is_locked(
    stages: list[Stage], staged: dict[str, Path], target: str
) -> None:
    chain = stage_chain(stages, target)
    code = staged[target] / _workdir(chain).lstrip("/")
    seen, missing, third = _first_party_closure(code, ENTRY_MODULES[target])
    assert ENTRY_MODULES[target] in seen and "python_jobs.serve.decisions" in seen
    assert missing == set(), f"imported but not copied into the {target} image"
    # each third-party module comes from a distribution of the runtime lock
    locked = set(_lock_names(REPO / "requirements.lock"))
    providers = importlib.metadata.packages_distributions()
    for top, importers in sorted(third.items()):
        if top in DEV_ONLY:  # a development tool, imported there only
            assert importers <= DEV_ONLY[top], (top, importers)
            continue
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(top, [])}
        assert dists & locked, f"{target}: {top} ({dists or 'not installed'}) is not in the lock"


PAYLOAD = {
    "transaction_id": "T1",
    "account_id": "A",
    "customer_id": "C",
    "event_ts": "2026-10-02 10:00:00",
    "transaction_type": " Pix ",  # an alias of seeds/value_aliases.csv
    "channel": "mobile",
    "direction": "outbound",
    "amount": "10",
    "counterparty_key": "k@example.com",
    "status": "approved",
}
_PROBE = (
    f"PAYLOAD = {PAYLOAD!r}\n"
    + r"""
import json, sys
stage, repo, packages = sys.argv[1], sys.argv[2], sys.argv[3:]
opened = []
def audit(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(repo):
        opened.append(args[0])
sys.addaudithook(audit)
sys.path[:0] = [stage]
sys.path.extend(packages)
import importlib
handler_path = json.loads(sys.stdin.read())
module, _, name = handler_path.rpartition(".")
handler = getattr(importlib.import_module(module), name)
assert callable(handler)
# what a request reads: the contract's seeds (aliases, transaction types), the reasons' words
from python_jobs.serve.contract import normalize_transaction
tx = normalize_transaction(PAYLOAD)
import numpy as np
from ml.features import FEATURES
from python_jobs.serve.scoring import reasons_of
(reasons,) = reasons_of(np.arange(len(FEATURES), dtype=float)[None, :])
import python_jobs.serve.app, python_jobs.serve.service, python_jobs.cli
loaded = {
    n: getattr(m, "__file__", None) or ""
    for n, m in list(sys.modules.items())
    if n.split(".")[0] in ("python_jobs", "ml")
}
print(json.dumps({
    "type": tx.transaction_type, "reasons": [r["reason_code"] for r in reasons],
    "loaded": loaded, "opened_in_repo": [p for p in opened if "/.venv/" not in p],
}))
"""
)


@pytest.mark.parametrize("target", TARGETS)
def test_the_image_s_code_runs_from_what_the_dockerfile_copies(
    stages: list[Stage], staged: dict[str, Path], target: str, tmp_path: Path
) -> None:
    """A subprocess with only the copied tree and the installed packages on sys.path (-I -S:
    no site, so not the editable install of this checkout) imports the consumer's handler and
    the API, then normalizes a transaction and words its reasons: the seeds they read must
    be the copied ones, and nothing may come from the repository."""
    chain = stage_chain(stages, target)
    env = _env(chain)
    code = staged[target] / _workdir(chain).lstrip("/")
    assert env["PYTHONPATH"] == _workdir(chain)
    packages = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
    # the consumer's handler (its CMD), the API's entry point
    consumer_cmd = _stage(stages, "consumer").last("CMD")
    assert consumer_cmd
    entry = consumer_cmd.exec_form()[0] if target == "consumer" else f"{ENTRY_MODULES['api']}.main"
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _PROBE, str(code), str(REPO) + "/", *packages],
        input=json.dumps(entry),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "HOME": str(tmp_path),
            "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
            "MPLCONFIGDIR": str(tmp_path / "mpl"),
            "PATH": "/usr/bin:/bin",
        },
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["type"] == normalize_transaction(PAYLOAD).transaction_type
    assert all(result["reasons"]), result["reasons"]  # every reason worded from the seed
    assert result["opened_in_repo"] == []
    assert result["loaded"] and all(
        f.startswith(str(code) + "/") for f in result["loaded"].values() if f
    ), result["loaded"]


def test_make_images_builds_both_targets_and_says_when_there_is_no_docker(
    tmp_path: Path,
) -> None:
    planned = subprocess.run(
        ["make", "--no-print-directory", "-n", "images", "IMAGE_TAG=0123abc"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    builds = [line for line in planned.splitlines() if line.startswith("docker build")]
    assert len(builds) == len(TARGETS)
    for target, build in zip(TARGETS, builds, strict=True):
        words = build.split()
        assert words[words.index("-f") + 1] == str(DOCKERFILE.relative_to(REPO))
        assert words[words.index("--target") + 1] == target
        assert words[words.index("--platform") + 1] == "linux/amd64"  # the stack's x86_64
        assert words[-1] == "." and words[words.index("-t") + 1].endswith(":0123abc")
    # no daemon (a socket that does not exist): a clear message and a failure, not a hang
    out = subprocess.run(
        ["make", "--no-print-directory", "images"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "no Docker daemon reachable" in out.stderr
