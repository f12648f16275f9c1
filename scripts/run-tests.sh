#!/usr/bin/env bash
# Run pytest from .venv (or $DLMTUNE_TEST_PYTHON's environment) on every core: pytest-xdist, one torch
# thread per worker (tests/conftest.py); DLMTUNE_TEST_WORKERS=0 runs in one process. pytest's
# "no tests collected" (exit 5) is a failure, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
"${DLMTUNE_TEST_PYTHON:-.venv/bin/python}" -m pytest -n "${DLMTUNE_TEST_WORKERS:-auto}" --dist loadscope "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run-tests: pytest collected no tests; failing" >&2
  exit 1
fi
exit "$rc"
