# banklake: `make demo` runs the main job on DuckDB, `make test` lints and tests.
# Both bootstrap .venv from requirements.lock on a fresh clone.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export DBT_PROFILES_DIR := $(CURDIR)
export DBT_PROJECT_DIR := $(CURDIR)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: demo test lint lint-python lint-sql lint-iac lint-docs pytest docs clean lock venv bench

venv: $(STAMP) profiles.yml

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

profiles.yml: profiles.yml.example
	cp profiles.yml.example profiles.yml

demo: venv
	$(BIN)/banklake demo

test: lint pytest

# Scale benchmark (docs/performance.md): 10M transactions by default on a temporary lake;
# e.g. make bench BENCH_ARGS="--transactions 1000000". Results in bench/results/.
BENCH_ARGS ?=
bench: venv
	$(BIN)/banklake bench $(BENCH_ARGS)

lint: lint-python lint-sql lint-iac lint-docs

lint-python: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# sqlfluff's dbt templater compiles every model against a scratch DuckDB file.
lint-sql: venv
	BANKLAKE_LAKE_DIR=$$(mktemp -d) $(BIN)/sqlfluff lint models tests analyses

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

pytest: venv
	$(BIN)/pytest

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

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet setuptools wheel && .lock-venv/bin/pip install --quiet ".[dev]"
	{ echo "# Every transitive dependency, pinned. Regenerate with 'make lock' after changing pyproject.toml."; \
	  .lock-venv/bin/pip freeze --all --exclude-editable | grep -v -e '^pip==' -e '^banklake'; } > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf target logs lake reports site
