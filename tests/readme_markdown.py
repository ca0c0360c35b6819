"""Reading the README and docs/ as markdown, for test_readme.py (its shell blocks, run) and
test_readme_links.py (its links and conventions, read only): fenced blocks, the prose around
them, and the anchors GitHub gives headings."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CI = ROOT / ".ci" / "run"

CONVENTION = "bash"  # the README's one language for shell blocks
SHELL_LANGUAGES = {"bash", "sh", "console", "shell", "shell-session", "zsh"}

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its file, the line of its opening fence, its language, its text."""

    file: Path
    line: int
    language: str
    text: str

    @property
    def commands(self) -> list[str]:
        """Its lines that run something (comments and blank lines left out; a line ending
        in a backslash continues on the next)."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
        return [line.strip() for line in joined.splitlines()
                if line.strip() and not line.strip().startswith("#")]

    @property
    def name(self) -> str:
        first = self.commands[0] if self.commands else ""
        return f"{self.file.name}:{self.line} {first[:60]}"


def fenced_blocks(file: Path) -> list[Block]:
    blocks, lines = [], file.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body, j = [], i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j])
            j += 1
        blocks.append(Block(file, i + 1, language, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def shell_blocks(file: Path = README) -> list[Block]:
    return [b for b in fenced_blocks(file) if b.language in SHELL_LANGUAGES]


def prose(text: str) -> str:
    """Markdown without its code (fenced blocks and inline code spans): where links are."""
    kept, inside = [], None
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence and (inside is None or fence.group(1)[0] == inside):
            inside = None if inside else fence.group(1)[0]
            continue
        if inside is None:
            kept.append(line)
    return re.sub(r"(`+).*?\1", "", "\n".join(kept))


def links(file: Path) -> list[str]:
    """The targets of its inline links and images, outside code."""
    return LINK.findall(prose(file.read_text()))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped (backticks too),
    spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


def anchors(file: Path) -> set[str]:
    """Every heading's anchor in a markdown file (a repeated one gets -1, -2...)."""
    seen: dict[str, int] = {}
    found = set()
    kept, inside = [], None
    for line in file.read_text().splitlines():  # headings outside fenced blocks only
        fence = FENCE.match(line)
        if fence and (inside is None or fence.group(1)[0] == inside):
            inside = None if inside else fence.group(1)[0]
        elif inside is None:
            kept.append(line)
    for line in kept:
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def ci_test_command() -> str:
    """The pytest command .ci/run ends with (it says it runs the README's test command)."""
    lines = [line.strip() for line in CI.read_text().splitlines()
             if line.strip().startswith("python -m pytest")]
    assert len(lines) == 1, f"{CI} should run one pytest command: {lines}"
    return lines[0]
