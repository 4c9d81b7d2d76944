"""Helpers shared by the command-line topics."""

from __future__ import annotations

import sys

import click


def fail(message: str, code: int = 1):
    """Print `error: message` to stderr and exit non-zero."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
