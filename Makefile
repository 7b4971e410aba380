# Every target installs what it needs on first use (a virtualenv in .venv), from the
# lock files in requirements/: exact versions with hashes, so a fresh clone tests what
# CI tested. pyproject.toml keeps the ranges the code supports; `make lock` and
# `make upgrade` rewrite the locks, `make test-latest` tries the newest allowed releases.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCKS := requirements
# uv resolves the locks (fast, universal across platforms and Pythons); pip installs them.
UV_VERSION := 0.13.9
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCKS)/dev.txt | cksum | cut -d' ' -f1)
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cat pyproject.toml $(LOCKS)/bench.txt | cksum | cut -d' ' -f1)

.PHONY: install run console test test-latest lint messages bench lock upgrade clean

$(STAMP): pyproject.toml $(LOCKS)/dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --require-hashes -r $(LOCKS)/dev.txt
	$(PIP_INSTALL) --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

## Install into .venv (also done by every target below on first use).
install: $(STAMP)

## Start the bot (long polling). Needs BOT_TOKEN in the environment or .env.
run: $(STAMP)
	$(BIN)/summitbot run

## Chat with the bot in this terminal: no token, no network.
console: $(STAMP)
	$(BIN)/summitbot console

## The whole test suite (also on PostgreSQL when TEST_DATABASE_URL is set).
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The test suite on the newest releases pyproject.toml allows, in its own venv
## (.venv-latest): a breaking release shows here before it reaches a fresh install.
LATEST := .venv-latest
test-latest:
	@test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade \
		--upgrade-strategy eager -e '.[dev]'
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/versions.txt
	$(LATEST)/bin/python -m pytest $(PYTEST_ARGS)

## The benchmarks (bench/, see docs/benchmarks.md): about an hour (retention is most of it), QUICK=1 for a few minutes.
## Results (JSON, Markdown, the plot) go to bench/results/.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

$(BENCH_STAMP): $(STAMP) $(LOCKS)/bench.txt
	$(PIP_INSTALL) --require-hashes -r $(LOCKS)/bench.txt
	@rm -f $(VENV)/.bench-installed-*
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot storage config bench tests

## Extract the bot's strings into bot/locales/messages.pot and merge them into every
## catalogue (bot/locales/<lang>/LC_MESSAGES/messages.po). Translate, then `make test`.
LOCALES := bot/locales
messages: $(STAMP)
	$(BIN)/pybabel extract -F $(LOCALES)/babel.cfg -k _ -k gettext -k ngettext:1,2 \
		--no-location --omit-header --sort-output -o $(LOCALES)/messages.pot bot
	for lang in ru kk zh ar; do \
		if [ -f $(LOCALES)/$$lang/LC_MESSAGES/messages.po ]; then \
			$(BIN)/pybabel update --no-fuzzy-matching -i $(LOCALES)/messages.pot -d $(LOCALES) -l $$lang; \
		else \
			$(BIN)/pybabel init -i $(LOCALES)/messages.pot -d $(LOCALES) -l $$lang; \
		fi; \
	done

## Rewrite the locks from pyproject.toml, keeping every pinned version that its ranges
## still allow (after a dependency is added or a range changed).
lock: $(STAMP)
	$(PIP_INSTALL) "uv==$(UV_VERSION)"
	$(MAKE) --no-print-directory _compile

## Re-resolve the locks to the newest versions pyproject.toml allows. Then `make test`.
upgrade: $(STAMP)
	$(PIP_INSTALL) "uv==$(UV_VERSION)"
	$(MAKE) --no-print-directory _compile UV_COMPILE_ARGS=--upgrade

# app.txt (runtime, the container image) < dev.txt (+ tests and linters) < bench.txt; each
# is constrained by the one before, so the three agree on every shared version.
UV_COMPILE := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" $(UV_COMPILE_ARGS)
.PHONY: _compile
_compile:
	$(UV_COMPILE) pyproject.toml $(LOCKS)/build.in -o $(LOCKS)/app.txt
	$(UV_COMPILE) pyproject.toml $(LOCKS)/build.in --extra dev -c $(LOCKS)/app.txt \
		-o $(LOCKS)/dev.txt
	$(UV_COMPILE) pyproject.toml $(LOCKS)/build.in --extra dev --extra bench \
		-c $(LOCKS)/dev.txt -o $(LOCKS)/bench.txt

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache .mypy_cache .ruff_cache
