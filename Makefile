# Every target installs what it needs on first use (a virtualenv in .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: install run console test lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
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

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot storage config

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
