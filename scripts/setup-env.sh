#!/usr/bin/env bash
# Create or reuse .venv and install dlmtune into it (CPU torch pinned for the project's machines).
# Re-installs only when pyproject.toml changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv --without-pip .venv
fi

# pip's own configuration (indexes, local wheel folders, constraints) as uv arguments: uv reads no pip
# config, and without the machine's find-links it would fetch a multi-GB CUDA torch
uv_arguments() {
  "$PY" -m pip config list 2>/dev/null | while IFS='=' read -r key value; do
    value=${value#\'}; value=${value%\'}
    case "${key##*.}" in
      index-url | extra-index-url | find-links | constraint)
        for item in $value; do printf -- '--%s\n%s\n' "${key##*.}" "$item"; done ;;
    esac
  done
}

# One resolution, and no byte-compiling by the installer (one file at a time: most of pip's time). uv
# installs the same versions as pip in about a quarter of pip's time; pip is the fallback wherever uv
# cannot be had or fails.
install() {
  local packages=("torch==${DLMTUNE_TORCH_VERSION:-2.13.0}" -e ".[dev]")
  if "$PY" -m pip --python .venv/bin/python install -q --no-compile uv >/dev/null 2>&1; then
    local from=() line  # (no mapfile, and the empty-array guard below: macOS's bash 3.2 runs this too)
    while IFS= read -r line; do from+=("$line"); done < <(uv_arguments)
    if .venv/bin/uv pip install -q --python .venv/bin/python --index-strategy unsafe-best-match \
        ${from[@]+"${from[@]}"} pip "${packages[@]}"; then
      return
    fi
    echo "[setup] uv failed; installing with pip"
  fi
  if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    # this interpreter's own pip installs pip into the venv where it can (--python, pip >= 22.3), far faster
    # than ensurepip, the fallback
    "$PY" -m pip --python .venv/bin/python install -q --no-compile pip >/dev/null 2>&1 || .venv/bin/python -m ensurepip -q
  fi
  .venv/bin/python -m pip install -q --no-compile "${packages[@]}"
}

stamp=.venv/.dlmtune-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing torch (CPU build) and dlmtune[dev] into .venv"
  install
  # byte-compile what the commands and the tests import, by importing it once with .pyc writing on (even
  # where PYTHONDONTWRITEBYTECODE is set): each later process, the demo's workers included, then loads in
  # half the time; compiling all of .venv would take longer than it saves. A second process compiles
  # scipy, matplotlib and datasets on the other core meanwhile (the first reaches them late): 7-10 s less
  compile() { PYTHONDONTWRITEBYTECODE='' .venv/bin/python -c "import $1"; }
  compile "scipy.stats, matplotlib.pyplot, datasets" & side=$!
  compile "dlmtune.cli, dlmtune.demo, dlmtune.demo_rl, dlmtune.evaluate, dlmtune.rl.run, dlmtune.rl.trainer, pytest"
  wait "$side"
  echo "$want" > "$stamp"
fi
