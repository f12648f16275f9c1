"""User errors become one clear message and exit status 2 on every command; bugs keep their traceback.

A user error is what a person can fix without reading code: a bad value or file (ValueError, which
includes ConfigError, DataError and undecodable text; FileNotFoundError and other OSErrors, e.g. a Hub
id that cannot be reached offline), a run that diverged (NonFiniteError), memory or disk running out
(each with what to change). Anything else is a bug and is raised as is; `dlmtune --debug COMMAND`
raises user errors too, with their traceback.
"""

from __future__ import annotations

import errno

import click
import typer
from typer.core import TyperGroup

DEBUG_KEY = "dlmtune.debug"
OOM_HINT = ("lower --batch-size (eval) or per_device_train_batch_size (train; raise gradient_accumulation_steps "
            "to keep the effective batch), or shorten max_length / --gen-length")
_OOM_TEXT = ("out of memory", "can't allocate memory", "DefaultCPUAllocator")
_DISK_TEXT = ("No space left on device", "PytorchStreamWriter failed writing", "file write failed")


def describe(error: BaseException) -> str | None:
    """The message to show for a user error, or None for a bug (see the module doc)."""
    if isinstance(error, (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort)):
        return None
    text = str(error)
    if type(error).__name__ == "OutOfMemoryError" or (
            isinstance(error, (RuntimeError, MemoryError)) and any(t in text for t in _OOM_TEXT)):
        return f"out of memory ({text.splitlines()[0] if text else type(error).__name__}); {OOM_HINT}"
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or (
            isinstance(error, RuntimeError) and any(t in text for t in _DISK_TEXT)):
        return f"the disk is full ({text.splitlines()[0]}); free some space or write to another folder"
    if isinstance(error, UnicodeDecodeError):
        return f"{text}: a data or config file is not UTF-8 text; convert it (e.g. iconv -t utf-8)"
    if isinstance(error, (ValueError, OSError)) or type(error).__name__ == "NonFiniteError":
        return text or type(error).__name__
    return None


class UserErrorGroup(TyperGroup):
    """The app's command group: runs the command, turning user errors into `error: ...` and exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as error:
            message = describe(error)
            if message is None or ctx.meta.get(DEBUG_KEY):
                raise
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(2) from None
