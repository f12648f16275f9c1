#!/usr/bin/env bash
# Build a venv with every dependency of pyproject.toml (runtime + dev) pinned at its lower bound,
# then lint and run the test suite in it: a declared range is a promise, its floor must pass too.
# The pins are derived from pyproject.toml (">=X" becomes "==X"), so raising a bound there is all it
# takes to re-check. Slow (a full install plus the whole suite): not part of `make test`.
# Usage: scripts/check-lower-bounds.sh [pytest args]   (venv: $LOWER_BOUNDS_VENV, default .venv-lower-bounds)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
venv=${LOWER_BOUNDS_VENV:-.venv-lower-bounds}

pins=$("$PY" - <<'EOF'
import re, sys, tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
for req in reqs:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][^,;\s]*)\s*", req)
    if not m:
        sys.exit(f"check-lower-bounds: pyproject.toml requirement {req!r} has no plain '>=X' lower "
                 "bound; give it one (or teach this script its form)")
    print(f"{m[1]}=={m[2]}")
EOF
)

stamp=$venv/.pins
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$pins" ]; then
  # A fresh venv and one resolution, as a user pinning the floors would get: transitive packages
  # take their newest releases compatible with the pins (nothing left over from older pins).
  echo "[lower-bounds] creating $venv with:"
  echo "$pins" | sed 's/^/    /'
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $pins
  "$venv/bin/python" -m pip install -q --no-deps -e .
  echo "$pins" > "$stamp"
fi
"$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE "^($(echo "$pins" | cut -d= -f1 | paste -sd'|'))==" || true

"$venv/bin/ruff" check .
DLMTUNE_TEST_PYTHON="$venv/bin/python" exec bash scripts/run-tests.sh -p no:cacheprovider "$@"
