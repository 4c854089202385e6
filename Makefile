# Two commands: `make demo` (render the template and run the example end to end)
# and `make test` (the whole test suite). Both bootstrap .venv from requirements.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := build/demo
DEMO_SLUG := text-statistics-workflow
DEMO_REPO := $(DEMO_DIR)/$(DEMO_SLUG)
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test lint bench clean help

help:
	@echo "make demo   render the template into $(DEMO_DIR)/ and run the example (local profile, then publish)"
	@echo "make test   run the whole test suite (template render matrix, example runs, cluster tests)"
	@echo "make lint   ruff + snakefmt + snakemake --lint on the template and a rendered repo"
	@echo "make bench  run the benchmarks and rewrite docs/performance.md"

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/cookiecutter . --no-input -o $(DEMO_DIR)
	cd $(DEMO_REPO) && PATH="$(BIN):$$PATH" snakemake --profile profiles/local
	cd $(DEMO_REPO) && PATH="$(BIN):$$PATH" snakemake --profile profiles/local publish
	cd $(DEMO_REPO) && $(BIN)/python workflow/scripts/publish.py verify
	@echo
	@echo "Final outputs:      $(DEMO_REPO)/results/"
	@echo "Published release:  $(DEMO_REPO)/publish/current -> $$(readlink $(DEMO_REPO)/publish/current)"

test: $(STAMP)
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check tests benchmarks
	$(BIN)/ruff format --check tests benchmarks
	rm -rf build/lint
	$(BIN)/cookiecutter . --no-input -o build/lint init_git=no
	cd build/lint/$(DEMO_SLUG) && PATH="$(BIN):$$PATH" $(MAKE) --no-print-directory lint

bench: $(STAMP)
	PATH="$(BIN):$$PATH" $(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf build $(VENV)
