# The two commands of the README: `make demo` (set up + run the demo) and `make test` (set up + lint + tests).
.PHONY: setup demo test test-all test-lower-bounds

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

# Lint + tests with every dependency at its pyproject.toml lower bound (own venv; slow, not in CI).
test-lower-bounds:
	bash scripts/check-lower-bounds.sh $(ARGS)
