"""The `dlmtune` command line (typer). Each command imports its module lazily so `--help` stays fast."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Fine-tune and evaluate diffusion language models.")


def main() -> None:
    app()
