"""The README's promises that code can check: its configuration reference is the one the settings define."""

from __future__ import annotations

import re

from outpost.settings import SETTINGS_CLASSES, reference_markdown
from tests.support.services import REPO


def _readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def test_configuration_reference_matches_the_settings_classes() -> None:
    found = re.search(r"<!-- config-reference:[^>]*-->\n(.*?)\n<!-- /config-reference -->", _readme(), re.S)
    assert found, "README lost its generated configuration reference block"
    assert found.group(1).strip() == reference_markdown(SETTINGS_CLASSES).strip(), (
        "README's configuration reference is stale: paste the output of `outpost config --reference`"
    )


def test_the_first_code_block_holds_exactly_the_two_setup_commands() -> None:
    block = re.search(r"```sh\n(.*?)```", _readme(), re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert "outpost demo" in commands[0]
    assert commands[1].startswith("scripts/test")
