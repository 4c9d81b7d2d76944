"""The project's command line (`flask --app run.py TOPIC ...`), one module per topic.

Each topic module in this package exposes `commands`: the click commands or groups it
adds. Commands call the same services as the admin and run their writes through the
one transaction boundary (`app.uow`). Errors print one line (`error: ...`) and exit
non-zero with nothing written (`app.cli.common.fail`).
"""

from __future__ import annotations

import importlib
import pkgutil

from flask import Flask


def register_cli(app: Flask) -> None:
    """Add every topic module's `commands` to `app.cli`."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "commands", ()):
            _attribute_to_cli(command)
            app.cli.add_command(command)


def _attribute_to_cli(command) -> None:
    """Audit rows written by a command name it (`cli`, `tenants archive`) and the OS user as actor."""
    import getpass

    import click

    from app.audit_context import acting_as

    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _attribute_to_cli(sub)
    invoke = command.invoke

    def invoke_as_cli(ctx):
        try:
            who = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in some containers
            who = None
        with acting_as("cli", id=who, label=ctx.command_path.split(" ", 1)[-1]):
            return invoke(ctx)

    command.invoke = invoke_as_cli
