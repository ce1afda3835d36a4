"""`outpost audit verify` and `outpost audit export`: the audit log's hash chain checked, and a range of
records written out for an inquiry (JSON lines, each with its hashes, so the copy can be checked too)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from dispatch.audit_journal import AuditJournal
from outpost.commands import Subcommands, command_group, instant
from outpost.root import run_migrate
from outpost.settings import Settings
from store import access
from store.engine import open_engine

_PAGE = 5000


def add_audit_commands(sub: Subcommands) -> None:
    """`outpost audit verify|export`."""
    audit = command_group(sub, "audit", "the audit log of reads and changes")
    p = audit.add_parser(
        "verify",
        help="check the audit log's hash chain; names the first record altered, removed or reordered",
        description="Walk the audit log in OUTPOST_DATABASE_URL along its hash chain. Exit 0 and the head "
        "hash when intact (note it elsewhere: a chain cannot show its own end cut off); exit 1 naming the "
        "first record that does not fit.",
    )
    p.set_defaults(handler=verify_command)
    p = audit.add_parser(
        "export",
        help="write audit records as JSON lines to standard output",
        description="Write the audit records in [--since, --until), optionally of one --subject or "
        "--actor, oldest first, one JSON object a line with its prev_hash and hash.",
    )
    p.add_argument("--since", type=instant, help="from this instant (ISO 8601 with offset)")
    p.add_argument("--until", type=instant, help="before this instant (ISO 8601 with offset)")
    p.add_argument("--subject", help="only reads of this subject (e.g. unit:u1, point:…, incident:…)")
    p.add_argument("--actor", help="only this actor (e.g. token:3:console-1)")
    p.set_defaults(handler=export_command)


def verify_command(args: argparse.Namespace, settings: Settings) -> int:
    """Check the chain; exit 0 intact, 1 broken."""
    run_migrate(settings)
    engine = open_engine(settings.store.database_url, pool_size=1)
    try:
        verdict = access.verify_audit(engine)
    finally:
        engine.dispose()
    waiting = _journaled(settings)
    if verdict.intact:
        print(f"audit log intact: {verdict.records} chained records, head {verdict.head}{waiting}")
        return 0
    print(
        f"audit log broken at record {verdict.broken_at}: it {verdict.reason} "
        f"({verdict.records} records before it fit; the last good hash is {verdict.head})",
        file=sys.stderr,
    )
    return 1


def _journaled(settings: Settings) -> str:
    """A note on records still in the local journal (not shipped: the server ships it, never this command,
    which could race the server's appends)."""
    journal = AuditJournal(Path(settings.api.audit_journal_path))
    if not journal.holds_records:
        return ""
    try:
        count = len(journal.read())
    except OSError as exc:
        return f"; the local journal {journal.path} cannot be read: {exc}"
    return f"; {count} more in the local journal {journal.path}, for `outpost run` to ship"


def export_command(args: argparse.Namespace, settings: Settings) -> int:
    """Write the chosen records as JSON lines."""
    engine = open_engine(settings.store.database_url, pool_size=1)
    encode, after, out = msgspec.json.Encoder().encode, 0, sys.stdout.buffer
    query = access.AuditQuery(args.since, args.until, actor=args.actor, subject=args.subject)
    try:
        while page := access.read_audit(engine, query, after_id=after, limit=_PAGE):
            for e in page:
                out.write(encode(e) + b"\n")
            after = page[-1].id or after
    finally:
        engine.dispose()
    out.flush()
    return 0
