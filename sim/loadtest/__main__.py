"""`python -m sim.loadtest …`: the same as `outpost loadtest …`."""

from __future__ import annotations

import asyncio
import sys

from sim.loadtest.cli import build_parser, run_loadtest


def main() -> int:
    """Parse the arguments and run."""
    return asyncio.run(run_loadtest(build_parser().parse_args()))


if __name__ == "__main__":
    sys.exit(main())
