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

.PHONY: demo test lint bench clean help tag

help:
	@echo "make demo   render the template into $(DEMO_DIR)/ and run the example (local profile, then publish)"
	@echo "make test   run the whole test suite (template render matrix, example runs, cluster tests)"
	@echo "make lint   ruff + snakefmt + snakemake --lint on the template and a rendered repo"
	@echo "make bench  run the benchmarks and rewrite docs/performance.md"
	@echo "make tag    tag HEAD as the release cookiecutter.json names (v<_template_version>), after its CHANGELOG section"

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
	cd $(DEMO_REPO) && $(BIN)/python workflow/vendor/publish.py verify
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

VERSION = $(shell $(PYTHON) -c "import json; print(json.load(open('cookiecutter.json'))['_template_version'])")

tag:
	@git diff --quiet HEAD || { echo "commit first: the tag names the committed template" >&2; exit 2; }
	@grep -q "^## $(VERSION)$$" CHANGELOG.md || { echo "CHANGELOG.md has no '## $(VERSION)' section: describe the release first" >&2; exit 2; }
	@if git rev-parse -q --verify "refs/tags/v$(VERSION)" >/dev/null; then \
		if [ "$$(git rev-parse "v$(VERSION)^{commit}")" = "$$(git rev-parse HEAD)" ]; then echo "v$(VERSION) already names HEAD"; \
		else echo "v$(VERSION) names another commit: raise _template_version in cookiecutter.json and add its CHANGELOG section" >&2; exit 2; fi; \
	else git tag -a "v$(VERSION)" -m "Template release $(VERSION)" && echo "tagged v$(VERSION); publish it with: git push origin v$(VERSION)"; fi

clean:
	rm -rf build $(VENV)
