#!/usr/bin/env bash
# Create or reuse .venv and install dlmtune into it (CPU torch pinned for the project's machines).
# Re-installs only when pyproject.toml changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.dlmtune-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing torch (CPU build) and dlmtune[dev] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  # pip byte-compiles one file at a time, most of its time here; compileall below does it on every core
  .venv/bin/python -m pip install -q --no-compile "torch==${DLMTUNE_TORCH_VERSION:-2.13.0}"
  .venv/bin/python -m pip install -q --no-compile -e ".[dev]"
  .venv/bin/python -m compileall -q -j 0 .venv/lib >/dev/null || true  # a few vendored test files do not compile
  echo "$want" > "$stamp"
fi
