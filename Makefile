# banklake: `make demo` runs the main job on DuckDB, `make test` lints and tests.
# Both bootstrap .venv from requirements-dev.lock on a fresh clone. requirements.lock is the
# runtime set alone, what production installs (infrastructure/buildspec.yml).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export DBT_PROFILES_DIR := $(CURDIR)
export DBT_PROJECT_DIR := $(CURDIR)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: demo test lint lint-python lint-types lint-sql lint-iac lint-docs pytest docs clean lock venv bench debian-packages images

venv: $(STAMP) profiles.yml

$(STAMP): requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

profiles.yml: profiles.yml.example
	cp profiles.yml.example profiles.yml

demo: venv
	$(BIN)/banklake demo

# The linters (about a minute, one core) run beside pytest rather than before it; their output
# is printed when both are done, and either failing fails the target.
test: venv debian-packages
	@log=$$(mktemp); $(MAKE) --no-print-directory lint > $$log 2>&1 & lint=$$!; \
	$(PYTEST); status=$$?; \
	wait $$lint; lint_status=$$?; echo "--- make lint"; cat $$log; rm -f $$log; \
	if [ $$lint_status -ne 0 ]; then echo "make lint failed"; exit $$lint_status; fi; exit $$status

# Scale benchmark (docs/performance.md): 10M transactions by default on a temporary lake;
# e.g. make bench BENCH_ARGS="--transactions 1000000". Results in bench/results/.
BENCH_ARGS ?=
bench: venv
	$(BIN)/banklake bench $(BENCH_ARGS)

lint: lint-python lint-types lint-sql lint-iac lint-docs

lint-python: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy on python_jobs/ and ml/, tests included; the settings are in pyproject.toml.
lint-types: venv
	$(BIN)/mypy

# sqlfluff's dbt templater compiles every model against a scratch DuckDB file, into its own
# target folder (make test runs it beside pytest's dbt builds).
lint-sql: venv
	BANKLAKE_LAKE_DIR=$$(mktemp -d) DBT_TARGET_PATH=target/sqlfluff $(BIN)/sqlfluff lint models tests analyses

# CloudFormation: cfn-lint (schema, best practice) and checkov (security), zero findings; every
# suppression is justified next to its resource. Own venv from its own lock: checkov pins
# boto3/botocore 1.35 and packaging 23, which cannot share requirements.lock.
IAC_VENV := .venv-iac
IAC_STAMP := $(IAC_VENV)/.installed-stamp

$(IAC_STAMP): infrastructure/requirements-iac.lock
	@test -x $(IAC_VENV)/bin/python || $(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infrastructure/requirements-iac.lock
	@touch $@

lint-iac: $(IAC_STAMP)
	$(IAC_VENV)/bin/cfn-lint infrastructure/*.yaml
	$(IAC_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation secrets -d infrastructure

# On every core, one test file per worker at a time (a file's module fixtures build once);
# conftest.py gives each worker its own dbt target folder. One OpenMP thread per worker
# (XGBoost): the workers already fill the cores, and OpenMP threads that wait for a busy
# core spin on it. PYTEST_ARGS="-n 0" runs serially.
PYTEST_ARGS ?= -n auto --dist loadfile
PYTEST = OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/pytest $(PYTEST_ARGS)
pytest: venv debian-packages
	$(PYTEST)

# Debian's chromium (the dashboard's browser test: Playwright, no browser download) and
# redis-server (the scoring service's Redis state tests): installed when missing, as root or with
# passwordless sudo; otherwise the tests say so and skip.
debian-packages:
	@.ci/install-debian-packages

# The real-time path's images (infrastructure/images/Dockerfile, docs/aws.md "Container images"):
# the stream consumer Lambda and the scoring API, tagged with the commit (-dirty when the tree has
# uncommitted changes: never push those). IMAGE_PREFIX names the repositories, e.g. an ECR
# registry and the stack's NamePrefix: make images IMAGE_PREFIX=<account>.dkr.ecr.<region>.amazonaws.com/banklake
IMAGE_PREFIX ?= banklake
IMAGE_TAG ?= $(shell git rev-parse HEAD)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
IMAGE_BUILD = docker build --platform linux/amd64 -f infrastructure/images/Dockerfile
images:
	@docker info > /dev/null 2>&1 || { echo "make images: no Docker daemon reachable ('docker info' fails). Start Docker (or point DOCKER_HOST at one) and run it again; the images' checks without Docker: pytest python_jobs/tests/test_images.py" >&2; exit 1; }
	$(IMAGE_BUILD) --target consumer -t $(IMAGE_PREFIX)-stream-consumer:$(IMAGE_TAG) .
	$(IMAGE_BUILD) --target api -t $(IMAGE_PREFIX)-scoring-api:$(IMAGE_TAG) .
	@echo "built $(IMAGE_PREFIX)-stream-consumer:$(IMAGE_TAG) and $(IMAGE_PREFIX)-scoring-api:$(IMAGE_TAG)"

# The manual (mkdocs, README.md as its home page) with the dbt docs site inside it: site/index.html,
# the dbt site at site/dbt/index.html. Strict: a broken link or anchor fails the build. Offline.
# Before `make demo` has built the lake, dbt's site is generated against a scratch database:
# every model, column description, test and the lineage, without the built tables' statistics.
export NO_MKDOCS_2_WARNING := 1
docs: venv
	@lake=$${BANKLAKE_LAKE_DIR:-lake}; \
	if [ -f "$$lake/banklake.duckdb" ]; then $(BIN)/dbt docs generate --static; \
	else echo "no $$lake/banklake.duckdb yet (make demo builds it): dbt docs from a scratch database"; \
	  tmp=$$(mktemp -d); BANKLAKE_LAKE_DIR=$$tmp $(BIN)/dbt docs generate --static; \
	  status=$$?; rm -rf $$tmp; exit $$status; fi
	$(BIN)/mkdocs build --strict --site-dir site

# make test's link check: the manual in strict mode (a placeholder stands in for dbt's site);
# python_jobs/tests/test_docs_links.py checks the relative links of the Markdown files too.
lint-docs: venv
	@tmp=$$(mktemp -d) && $(BIN)/mkdocs build --strict --quiet --site-dir $$tmp; \
	  status=$$?; rm -rf $$tmp; exit $$status

# Both locks from pyproject.toml. requirements.lock: what `banklake` runs on (`dependencies`, and
# setuptools for the editable install); requirements-dev.lock: that plus the [dev] extra, resolved
# with the runtime lock as constraints, so the two never pin a package differently. Everything
# resolves afresh; LOCK_CONSTRAINTS=FILE keeps the pins of FILE that still fit, e.g.
# `make lock LOCK_CONSTRAINTS=requirements-dev.lock` after adding a package to pyproject.toml.
LOCK_VENV := .lock-venv
LOCK_PIP = $(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	$(if $(LOCK_CONSTRAINTS),-c $(LOCK_VENV)/constraints.txt)
LOCK_FREEZE = $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable \
	| grep -v -e '^pip==' -e '^banklake'
LOCK_HEADER = \# Every transitive dependency, pinned. Regenerate with 'make lock' after changing pyproject.toml.

lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(if $(LOCK_CONSTRAINTS),cp $(LOCK_CONSTRAINTS) $(LOCK_VENV)/constraints.txt)
	$(LOCK_PIP) "setuptools>=77" -e .
	$(LOCK_VENV)/bin/python -m pip check
	{ echo "$(LOCK_HEADER)"; echo "# Runtime: pyproject's dependencies (production installs this)."; \
	  $(LOCK_FREEZE); } > requirements.lock.new
	$(LOCK_PIP) -c requirements.lock.new -e ".[dev]"
	$(LOCK_VENV)/bin/python -m pip check
	{ echo "$(LOCK_HEADER)"; echo "# Development: the runtime lock plus pyproject's [dev] extra (make venv installs this)."; \
	  $(LOCK_FREEZE); } > requirements-dev.lock
	mv requirements.lock.new requirements.lock
	rm -rf $(LOCK_VENV)

clean:
	rm -rf target logs lake reports site
