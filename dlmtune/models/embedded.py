"""Where the embedded pretrained tiny dLLM (`embedded:base-tiny`) lives: shipped with the package, or
rebuilt by `dlmtune pretrain` into the user's cache."""

from __future__ import annotations

from pathlib import Path

EMBEDDED_BASE = "embedded:base-tiny"
SHIPPED_BASE = Path(__file__).resolve().parents[1] / "assets" / "base-tiny"
CACHED_BASE = Path.home() / ".cache" / "dlmtune" / "base-tiny"


def embedded_base_folder() -> Path:
    """The shipped base folder, else the cached rebuild; a clear error when neither has weights."""
    for folder in (SHIPPED_BASE, CACHED_BASE):
        if (folder / "model.safetensors").exists():
            return folder
    raise FileNotFoundError(f"{EMBEDDED_BASE}: no model.safetensors in {SHIPPED_BASE} or {CACHED_BASE}; "
                            f"rebuild it with `dlmtune pretrain --out {CACHED_BASE}` (about an hour on 2 CPU cores)")
