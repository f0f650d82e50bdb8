"""The commands the README and the guides show are ones this checkout runs: every
``reporting-svc`` line parses with the command's own parser, every ``make`` line names a
target of the Makefile. A renamed option or target fails here, not in a user's shell."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from reporting_svc import cli

PROJECT = Path(__file__).resolve().parents[1]
PAGES = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(?:sh|shell|bash|console)\n(.*?)^```", re.M | re.S)
# A command at the start of a line, after an optional prompt and variable assignments.
COMMAND = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*(reporting-svc|make)\b(.*)$")
# Usage notation, not words a user types: [--optional OPTIONS] and <PLACEHOLDERS>.
OPTIONAL = re.compile(r"\[[^\[\]]*\]")
PLACEHOLDER = re.compile(r"<[^<>]*>")


def stand_in(placeholder: re.Match[str]) -> str:
    """A value of the kind a placeholder names, as a user would type it."""
    return "cfd8129a430a473c8a02f4ba5daad865" if "GUID" in placeholder[0] else "X"


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(page, line, words) of every reporting-svc or make command in a shell block, with
    backslash continuations joined and comments dropped."""
    found = []
    for page in PAGES:
        for block in SHELL_BLOCK.findall(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                match = COMMAND.match(line.strip())
                if match:
                    rest = PLACEHOLDER.sub(stand_in, OPTIONAL.sub("", match[2]))
                    words = shlex.split(rest, comments=True)
                    found.append((page.name, line.strip(), [match[1], *words]))
    return found


COMMANDS = documented_commands()
MAKE_TARGETS = set(re.findall(r"^([a-z][a-z0-9-]*):", (PROJECT / "Makefile").read_text(), re.M))


def test_the_pages_show_commands_of_both_kinds() -> None:
    shown = {words[0] for _, _, words in COMMANDS}
    assert shown == {"reporting-svc", "make"}
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize(
    "page, line, words", COMMANDS, ids=[f"{page}:{line[:60]}" for page, line, _ in COMMANDS]
)
def test_a_documented_command_is_one_this_checkout_runs(
    page: str, line: str, words: list[str]
) -> None:
    program, *arguments = words
    if program == "make":
        targets = [word for word in arguments if "=" not in word and not word.startswith("-")]
        assert set(targets) <= MAKE_TARGETS, f"{page}: {line}"
        return
    try:
        cli.command_parser().parse_args(arguments)
    except SystemExit as stop:
        pytest.fail(f"{page}: {line} does not parse (exit {stop.code})")
