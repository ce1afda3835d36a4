"""What the `outpost` subcommands share: a group of commands under one word (`outpost audit verify`), and
an instant given on the command line."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TypeAlias

# A string: argparse's action class cannot be subscripted at run time.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def command_group(sub: Subcommands, name: str, about: str) -> Subcommands:
    """`outpost <name> …`: the commands of one group, one of which must be given."""
    return sub.add_parser(name, help=about).add_subparsers(dest=f"{name}_command", required=True)


def instant(text: str) -> datetime:
    """An ISO 8601 instant with its UTC offset (argparse type; a naive time would be read in no zone)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset (e.g. …Z or +02:00)")
    return value
