# Development entry points. Each target sets up what it needs first.
SHELL := /bin/bash
ACTIVATE := source tools/activate.sh

.PHONY: setup demo test test-fast lint bench clean-envs

setup:
	@tools/setup_env.sh

demo: setup
	@$(ACTIVATE) && dl-perception demo

test: setup
	@$(ACTIVATE) && python -m pytest

test-fast: setup
	@$(ACTIVATE) && python -m pytest -m unit

lint: setup
	@$(ACTIVATE) && python -m pytest -m linter

bench: setup
	@tools/run_benchmarks.sh

clean-envs:
	rm -rf "$${XDG_CACHE_HOME:-$$HOME/.cache}/dl_perception"
