"""The device-side tools of the `outpost` command (`simulate`, `loadtest`): clients from the `sim` package.

Their modules are imported when a tool is asked for, by name, because the load test needs the `sim` extra
(numpy, HDR histograms, matplotlib) that a production install leaves out.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

TOOLS = {
    "simulate": "publish a simulated or replayed fleet to any MQTT broker (San Francisco roads, random walk, "
    "or Cabspotting-style traces)",
    "loadtest": "drive a running Outpost with a device fleet and a dispatcher load; report stored, lost, "
    "duplicated, rejected and latency percentiles",
}


class MissingExtraError(RuntimeError):
    """A tool needs a package of the `sim` extra that is not installed."""


def tool_module(name: str) -> ModuleType:
    """The `sim.<name>.cli` module of a tool."""
    return importlib.import_module(f"sim.{name}.cli")


def add_tool_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """The options of one device-side tool."""
    getattr(tool_module(name), f"add_{name}_arguments")(parser)


async def run_tool(name: str, args: argparse.Namespace) -> int:
    """Run one device-side tool with its parsed options."""
    try:
        result: int = await getattr(tool_module(name), f"run_{name}")(args)
    except ModuleNotFoundError as exc:
        raise MissingExtraError(
            f"`outpost {name}` needs the package {exc.name!r}: pip install 'outpost[sim]'"
        ) from exc
    return result
