"""The docs hold together: every relative link in README.md and docs/ points to a file that exists,
README's index links every page of docs/, and docs/benchmarks.md links every detailed benchmark page.

Links are read from the Markdown itself (inline ``[text](target)``, images and reference definitions
``[label]: target``), outside fenced code blocks and inline code. External links (``https:``,
``mailto:``) and in-page anchors (``#...``) are not checked; for ``page.md#section`` the page must
exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def links(text: str) -> list[tuple[int, str]]:
    """``(line number, target)`` of every Markdown link outside code."""
    found: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if fenced:
            continue
        prose = _INLINE_CODE.sub("", line)
        found += [(number, m.group(1)) for m in _INLINE_LINK.finditer(prose)]
        reference = _REFERENCE.match(prose)
        if reference:
            found.append((number, reference.group(1)))
    return found


def broken_links(page: Path) -> list[str]:
    """``page:line: target`` for every relative link whose file does not exist."""
    problems = []
    for number, target in links(page.read_text(encoding="utf-8")):
        if target.startswith("#") or _SCHEME.match(target):
            continue  # an anchor in this page, or an external URL
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            continue
        resolved = (page.parent / path).resolve()
        if resolved.exists():
            continue
        problems.append(f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}:{number}: {target}")
    return problems


def linked_files(page: Path) -> set[Path]:
    """The local files ``page`` links to (anchors dropped)."""
    out = set()
    for _, target in links(page.read_text(encoding="utf-8")):
        if target.startswith("#") or _SCHEME.match(target):
            continue
        out.add((page.parent / target.split("#", 1)[0]).resolve())
    return out


PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted((DOCS / "benchmarks").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_readme_indexes_every_docs_page() -> None:
    missing = sorted(p.name for p in DOCS.glob("*.md") if p.resolve() not in linked_files(ROOT / "README.md"))
    assert missing == [], f"README.md's docs index does not link {missing}"


def test_benchmarks_page_links_every_detailed_page() -> None:
    linked = linked_files(DOCS / "benchmarks.md")
    missing = sorted(p.name for p in (DOCS / "benchmarks").glob("*.md") if p.resolve() not in linked)
    assert missing == [], f"docs/benchmarks.md does not link benchmarks/{missing}"


def test_the_checker_finds_broken_links_and_ignores_code(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# there\n")
    page = tmp_path / "page.md"
    page.write_text(
        "See [there](there.md#section), [gone](gone.md) and ![img](img/none.png).\n"
        "[ref]: missing/ref.md\n"
        "`[in code](nowhere.md)` and [web](https://example.com/x.md), [top](#top)\n"
        "```\n[fenced](fenced.md)\n```\n"
    )
    assert broken_links(page) == [
        f"{page}:1: gone.md",
        f"{page}:1: img/none.png",
        f"{page}:2: missing/ref.md",
    ]
    (tmp_path / "gone.md").write_text("# back\n")
    assert broken_links(page) == [f"{page}:1: img/none.png", f"{page}:2: missing/ref.md"]
