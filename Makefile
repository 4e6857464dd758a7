# One command runs the panel, one runs the tests. Both create .venv on first use.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements

.PHONY: run test test-fast check lint typecheck django-check migrations-check check-imports \
	check-messages key sandbox soak clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

## run: the panel on http://127.0.0.1:8000 (web + worker + beat + embedded broker)
run: $(STAMP)
	DJANGO_DEBUG=1 $(PYTHON) manage.py runpanel

## test: the whole suite; installs the Debian packages it needs first (as root)
## (set REQUIRE_SERVICES=1 to fail, not fall back, when Redis is missing). Two test processes
## at once (the suite mostly waits), each test file whole in one, the longest files first
## (tests/support/suite_order.py; xdist keeps that order); PYTEST_WORKERS=0 runs one.
PYTEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder)
test: $(STAMP)
	bash tests/prepare-machine.sh
	$(PYTHON) -m pytest $(XDIST) $(PYTEST_ARGS)

## test-fast: only the quick tests (no worker processes, lab hosts or browsers)
test-fast: $(STAMP)
	$(PYTHON) -m pytest -m "not slow" $(PYTEST_ARGS)

## soak: 20 clusters created at once under 30% cloud faults, the worker SIGKILLed every 20 s
## and the broker stopped for 20 s; fails unless every run succeeds and nothing is bought
## twice (needs root; several minutes; not part of `make test`; SOAK_ARGS="--clusters 5")
soak: $(STAMP)
	$(PYTHON) benchmarks/soak.py $(SOAK_ARGS)

## sandbox: the panel wired to an offline Alibaba Cloud and 3 lab hosts (needs root)
sandbox: $(STAMP)
	$(PYTHON) -m sandbox.demo

## check: the quality gate CI runs before the tests: ruff, mypy, Django's checks, no missing
## migration, the layers contract, complete translations (each part also a target of its own)
check: lint typecheck django-check migrations-check check-imports check-messages

lint: $(STAMP)
	$(VENV)/bin/ruff check .

## typecheck: mypy on the scope pyproject.toml sets (clusters, panel, sandbox), no error allowed
typecheck: $(STAMP)
	$(VENV)/bin/mypy

django-check: $(STAMP)
	DJANGO_SETTINGS_MODULE=panel.settings_test $(PYTHON) manage.py check --fail-level WARNING

migrations-check: $(STAMP)
	DJANGO_SETTINGS_MODULE=panel.settings_test $(PYTHON) manage.py makemigrations --check --dry-run

## check-messages: every message translated, none fuzzy, msgfmt --check clean, and nothing in
## the code the catalogue lacks (clusters/management/commands/checkmessages.py)
check-messages: $(STAMP)
	DJANGO_SETTINGS_MODULE=panel.settings_test $(PYTHON) manage.py checkmessages

## check-imports: the layers contract in .importlinter (web > operations | steps > engine ...)
check-imports: $(STAMP)
	$(VENV)/bin/lint-imports

## key: print a new encryption key for PANEL_ENCRYPTION_KEYS
key: $(STAMP)
	@$(PYTHON) -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"

clean:
	rm -rf var staticfiles test-artifacts
