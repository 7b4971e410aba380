"""The documentation keeps up with the code: the README's command table is the bot's
command menu, and every relative link in README.md and docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.handlers.start import command_descriptions
from bot.presentation.i18n import translator

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

# The first cell of a table row that names a command: | `/chairs [YEAR…]` | …
_COMMAND_CELL = re.compile(r"^\|\s*`/([a-z_]+)")
_SEPARATOR_ROW = re.compile(r"^\|[\s:|-]+\|$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target), with an optional "title".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def reader_command_table(text: str) -> list[str]:
    """The commands of the table in the README's "## Commands" section, in order."""
    lines = _prose_lines(text)
    try:
        start = lines.index("## Commands")
    except ValueError:
        pytest.fail('README.md has no "## Commands" section')
    section = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        section.append(line)
    rows = [line.strip() for line in section if line.strip().startswith("|")]
    assert len(rows) > 2, 'the "## Commands" section has no table'
    _header, separator, *body = rows
    assert _SEPARATOR_ROW.match(separator), f"not a table separator: {separator}"
    names = []
    for row in body:
        found = _COMMAND_CELL.match(row)
        assert found, f"a row of the command table names no /command: {row}"
        names.append(found.group(1))
    return names


def test_the_readmes_command_table_is_the_bots_command_menu() -> None:
    menu = [name for name, _ in command_descriptions(translator("en"))]
    table = reader_command_table(README.read_text(encoding="utf-8"))
    missing = [name for name in menu if name not in table]
    extra = [name for name in table if name not in menu]
    assert not missing, f"commands of the menu missing from the README's table: {missing}"
    assert not extra, f"commands in the README's table that are not in the menu: {extra}"
    assert table == menu, "the README's command table is not in the menu's order"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces → -."""
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown page (repeats get -1, -2…, as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        heading = _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    """The link targets of a page that are not URLs (code spans and blocks left out)."""
    targets = []
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        for target in _LINK.findall(_CODE_SPAN.sub("", line)):
            if not _SCHEME.match(target) and not target.startswith("//"):
                targets.append(target)
    return targets


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        file_part, _, fragment = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} there")
    assert not broken, f"broken links in {page.relative_to(ROOT)}: {broken}"


def test_the_docs_pages_are_all_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in relative_links(README)
        if target.partition("#")[0]
    }
    unlinked = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"
