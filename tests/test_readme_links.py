"""The README and docs/ as text, no process started (so in the fast tier): one shell
convention, the test command CI runs, and every relative link leading to a file and heading
that exist. test_readme.py runs the README's shell blocks."""

from __future__ import annotations

import re

from readme_markdown import (
    CONVENTION,
    DOCS,
    README,
    ROOT,
    SHELL_LANGUAGES,
    anchors,
    ci_test_command,
    fenced_blocks,
    links,
    shell_blocks,
    slug,
)


def test_one_shell_convention() -> None:
    """Every fenced block says what it holds, and every shell block is ```bash, the blocks
    test_readme.py runs: a block of another kind could hide a command no test runs."""
    blocks = fenced_blocks(README)
    unlabelled = [b.line for b in blocks if not b.language]
    assert not unlabelled, f"README.md blocks without a language, at lines {unlabelled}"
    other = [(b.line, b.language) for b in blocks
             if b.language in SHELL_LANGUAGES and b.language != CONVENTION]
    assert not other, f"shell blocks must be ```{CONVENTION}: {other}"
    assert shell_blocks(), "the README has no shell block"


def test_readme_gives_the_ci_test_command() -> None:
    """CI (.ci/run) runs the README's test command: the README must give it verbatim."""
    commands = [c for block in shell_blocks() for c in block.commands]
    assert ci_test_command() in commands, (
        f"CI runs `{ci_test_command()}`, which no README shell block gives")


def test_relative_links_lead_somewhere() -> None:
    """Every relative link and image in README.md and docs/*.md names a file that exists,
    and a heading that exists when it points into a markdown file."""
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not file.exists():
                broken.append(f"{where}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{where}: no such heading in {file.name}")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    reached, frontier = {README.resolve()}, [README]
    while frontier:
        page = frontier.pop()
        for target in links(page):
            file = (page.parent / target.partition("#")[0]).resolve()
            if file.suffix == ".md" and file.is_file() and file not in reached:
                reached.add(file)
                frontier.append(file)
    orphans = sorted(p.name for p in DOCS.glob("*.md") if p.resolve() not in reached)
    assert not orphans, f"docs pages that no link from the README leads to: {orphans}"


def test_slugs_are_githubs() -> None:
    """The anchors the link test accepts are the ones GitHub makes."""
    assert slug("Resume, Ctrl-C, several GPUs") == "resume-ctrl-c-several-gpus"
    assert slug("Trainable models (facecnn models)") == "trainable-models-facecnn-models"
    assert slug('Enroll and calibrate "unknown"') == "enroll-and-calibrate-unknown"
    assert slug("Videos, cameras & streams") == "videos-cameras--streams"
