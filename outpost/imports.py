"""What the `outpost <thing> import FILE` commands share: how they join the CLI, and how they refuse."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Protocol

from outpost.commands import Subcommands, command_group
from outpost.settings import Settings


class ImportCommand(Protocol):
    """A module of an `outpost <thing> import FILE` command."""

    def add_options(self, p: argparse.ArgumentParser) -> None: ...

    def import_command(self, args: argparse.Namespace, settings: Settings) -> int: ...


def add_import_commands(
    sub: Subcommands,
    commands: Iterable[tuple[str, str, ImportCommand]],
) -> None:
    """For each (command, what it is about, its module): `outpost <command> import FILE`, run by the
    module's `import_command`, whose docstring is the subcommand's help (first paragraph) and its
    description (the rest)."""
    for command, about, module in commands:
        nested = command_group(sub, command, about)
        summary, _, description = (module.import_command.__doc__ or "").partition("\n\n")
        p = nested.add_parser("import", help=summary.strip(), description=" ".join(description.split()))
        module.add_options(p)
        p.set_defaults(handler=module.import_command)


def refuse(command: str, message: str) -> int:
    """Say on stderr why `outpost <command> import` imported nothing; exit status 2."""
    print(f"outpost {command} import: {message}; nothing was imported", file=sys.stderr)
    return 2
