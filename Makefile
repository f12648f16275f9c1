# The two commands of the README: `make demo` (set up + run the demo) and `make test` (set up + lint + tests).
.PHONY: setup demo test test-all

setup:
	@bash scripts/setup-env.sh

demo: setup
	.venv/bin/dlmtune demo $(ARGS)

test: setup
	.venv/bin/ruff check .
	bash scripts/run-tests.sh $(ARGS)

test-all: setup
	.venv/bin/ruff check .
	bash scripts/run-tests.sh -m "slow or not slow" $(ARGS)
