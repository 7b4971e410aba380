# Every target installs what it needs on first use (a virtualenv in .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

BENCH_STAMP := $(VENV)/.bench-installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: install run console test lint messages bench clean

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

## The benchmarks (bench/, see the README): about 10 minutes, QUICK=1 for under 2.
## Results (JSON, Markdown, the plot) go to bench/results/.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@rm -f $(VENV)/.bench-installed-*
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot storage config bench

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
