"""What README.md and docs/ say about the command line is what the code does.

- Every ``--flag`` in the docs exists. Where it follows one of our commands (``rollouts run ...``,
  ``loadtest serve ...``, ``python -m tests.bench.gitops ...``, in a code block or an inline code
  span) it must be an option of that very command; elsewhere an option of any of our commands, or
  of another tool the docs quote (:data:`FOREIGN`).
- Every default the docs state next to a flag (a table row, or the parenthesis after it:
  ``(default 2)``) equals the parser's default; a default the code computes (parser default
  ``None``) must be the one the option's ``--help`` states, and one read from the environment or
  the spec (``$ROLLOUTS_CACHE_DIR``, ``spec.analysis...``) must have no fixed default in the parser.
- Every ``ROLLOUTS_*``/``LOADTEST_*`` environment variable the docs or the shipped manifests name is
  read by the code, and every one the code reads is documented.

The parsers are read from the real entry points in subprocesses (``tests/tooling/cli_flags.py``;
Locust's monkey-patching stays out of this process). The checks are functions of (text, parsers),
so the last tests plant mismatches and see them reported.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MANIFESTS = sorted((ROOT / "deploy").rglob("*.yaml"))
PACKAGES = ("analyzer", "loadtest", "rollouts")

#: Flags of other tools that the docs mention in prose, outside a command line.
FOREIGN = {
    "--no-tags": "git fetch",
    "--no-local": "git clone",
    "--only": "git commit",
    "--grep": "git log",
    "--from-file": "kubectl create secret",
    "--from-literal": "kubectl create secret",
}
#: Commands of other tools: flags in a code span or line that starts with one belong to it.
OTHER_TOOLS = (
    "git", "kubectl", "flux", "hey", "locust", "chromium", "curl", "ssh", "ssh-keygen", "docker",
    "helm", "istioctl", "promtool", "prometheus", "make", "apt-get", "pip", "sops", "kustomize",
)  # fmt: skip
_COMMAND = re.compile(r"^(?:\$\s+)?(?:\S+=\S+\s+)*(?P<cmd>rollouts|analyzer|loadtest|python3? -m [\w.]+)\b")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_SPAN = re.compile(r"`([^`]+)`")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_FENCE = re.compile(r"^\s*(```|~~~)")
_DEFAULT = re.compile(r"(?<!by )\bdefault(?: [A-Z][a-z]+)?:?\s+(?:`(?P<code>[^`]+)`|(?P<word>[^\s,;)`]+))")
_ENV = re.compile(r"\b(?:ROLLOUTS|LOADTEST)_[A-Z0-9_]+\b")

Parsers = Mapping[str, Mapping[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class Mention:
    """A flag in the docs: where, and the command it follows (``None``: prose or another tool's)."""

    where: str
    flag: str
    prog: str | None
    foreign: bool = False


def _prog(parsers: Parsers, line: str) -> str | None:
    """The longest parser name the command at the start of ``line`` names (``rollouts run``)."""
    match = _COMMAND.match(line.strip())
    if match is None:
        return None
    command = match["cmd"].replace("python3 ", "python ")
    words = line.strip()[match.end("cmd") :].split()
    prog = command
    for word in words:
        if f"{prog} {word}" not in parsers:
            break
        prog = f"{prog} {word}"
    return prog if prog in parsers else None


def _other_tool(text: str) -> bool:
    first = text.strip().removeprefix("$ ").split(" ", 1)[0]
    return first in OTHER_TOOLS


def _code_lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, logical line, fenced) of a page; fenced shell lines joined over ``\\``."""
    fenced = False
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            start, head = pending if pending is not None else (number, "")
            joined = head + " " + line.strip() if head else line
            if line.rstrip().endswith("\\"):
                pending = (start, joined.rstrip().removesuffix("\\"))
                continue
            pending = None
            # A shell comment is prose about the command: it stays with it (flags named there are its).
            yield start, joined, True
        else:
            yield number, line, False


def _command_mentions(code: str, where: str, parsers: Parsers) -> list[Mention]:
    """Flags of one command line; a quoted argument's flags are another program's (``--canary-args
    '--error-rate=0.05'``), so they only have to exist somewhere."""
    prog = _prog(parsers, code)
    foreign = prog is None and _other_tool(code)
    quoted = _QUOTED.findall(code)
    found = [Mention(where, f, prog, foreign) for f in _FLAG.findall(_QUOTED.sub(" ", code))]
    return found + [Mention(where, f, None, foreign) for q in quoted for f in _FLAG.findall(q)]


def mentions(text: str, page: str, parsers: Parsers) -> list[Mention]:
    """Every ``--flag`` of a page with the command it belongs to."""
    found: list[Mention] = []
    for number, line, fenced in _code_lines(text):
        where = f"{page}:{number}"
        if fenced:
            found += _command_mentions(line, where, parsers)
            continue
        rest = line
        for span in _SPAN.finditer(line):
            found += _command_mentions(span.group(1), where, parsers)
            rest = rest.replace(span.group(0), " ", 1)
        found += [Mention(where, f, None) for f in _FLAG.findall(rest)]
    return found


def unknown_flags(text: str, page: str, parsers: Parsers) -> list[str]:
    """``page:line: --flag (of prog)`` for every flag the parsers (or :data:`FOREIGN`) do not have."""
    everywhere = {flag for options in parsers.values() for flag in options}
    problems = []
    for m in mentions(text, page, parsers):
        if m.foreign:
            continue
        if m.prog is not None:
            if m.flag not in parsers[m.prog]:
                problems.append(f"{m.where}: {m.flag} is not an option of `{m.prog}`")
        elif m.flag not in everywhere and m.flag not in FOREIGN:
            problems.append(f"{m.where}: {m.flag} is not an option of any command")
    return problems


def _same(documented: str, default: Any) -> bool:
    if isinstance(default, bool) or default is None:
        return False
    if isinstance(default, int | float):
        try:
            return float(documented.split(maxsplit=1)[0]) == float(default)
        except ValueError:
            return False
    if isinstance(default, list):
        return documented in {"[]", "none", "empty"} if not default else documented in map(str, default)
    return documented.strip("\"'") == str(default)


def _documented_defaults(text: str, page: str) -> Iterator[tuple[str, list[str], str]]:
    """(where, flags, default) for table rows and ``flag (... default X ...)`` parentheses."""
    for number, line, fenced in _code_lines(text):
        if fenced:
            continue
        where = f"{page}:{number}"
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            flags = _FLAG.findall(cells[0]) if cells else []
            if flags:
                for match in _DEFAULT.finditer(" | ".join(cells[1:])):
                    yield where, flags, match["code"] or match["word"]
            continue
        for span in re.finditer(r"`(--[a-z][a-z0-9-]*)[^`]*`\s*\(([^()]*)\)", line):
            for match in _DEFAULT.finditer(span.group(2)):
                yield where, [span.group(1)], match["code"] or match["word"]


def default_mismatches(text: str, page: str, parsers: Parsers) -> list[str]:
    """``page:line: --flag: documented default X, ...`` wherever no parser with the flag agrees."""
    problems = []
    for where, flags, documented in _documented_defaults(text, page):
        options = [
            (prog, flag, parsers[prog][flag]) for prog in parsers for flag in flags if flag in parsers[prog]
        ]
        if not options:
            continue  # unknown_flags reports it
        if any(_agrees(documented, option) for _, _, option in options):
            continue
        seen = ", ".join(f"`{prog} {flag}` {option['default']!r}" for prog, flag, option in options)
        problems.append(f"{where}: {'/'.join(flags)}: documented default {documented!r}, parser: {seen}")
    return problems


def _agrees(documented: str, option: Mapping[str, Any]) -> bool:
    default = option["default"]
    if _same(documented, default):
        return True
    if default is None or default is False or default == []:
        # Computed at run time, from the environment or the spec: --help must say the same.
        if documented.startswith(("$", "spec.")):
            return True
        return documented in str(option["help"])
    return False


def env_names_in_code() -> set[str]:
    """Environment variable names that the packages' code holds as string constants."""
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names.update(n for n in _ENV.findall(node.value) if node.value.strip("$ ") == n)
    return names


def env_names_documented(texts: Mapping[str, str]) -> dict[str, str]:
    """Name -> first place (``page:line``) the docs or manifests name it."""
    found: dict[str, str] = {}
    for page, text in texts.items():
        for number, line in enumerate(text.splitlines(), start=1):
            for name in _ENV.findall(line):
                found.setdefault(name, f"{page}:{number}")
    return found


def env_mismatches(documented: Mapping[str, str], code: set[str]) -> list[str]:
    """Variables documented but not read, and read but not documented."""
    return sorted(
        [f"{where}: {name} is not read by the code" for name, where in documented.items() if name not in code]
        + [f"{name} is read by the code but not documented" for name in code if name not in documented]
    )


@pytest.fixture(scope="module")
def parsers() -> dict[str, dict[str, dict[str, Any]]]:
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for group in ("main", "loadtest"):
        done = subprocess.run(
            [sys.executable, "-m", "tests.tooling.cli_flags", group],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        found.update(json.loads(done.stdout))
    assert {"rollouts run", "analyzer judge", "loadtest", "loadtest serve"} <= set(found)
    return found


def test_every_command_line_of_ours_is_checked(parsers: Parsers) -> None:
    """A new entry point (an ``ArgumentParser(prog=...)`` in the code) must be in cli_flags.GROUPS."""
    progs = set()
    for path in [*(ROOT / p for p in PACKAGES), ROOT / "tests" / "bench"]:
        for source in path.rglob("*.py"):
            progs.update(re.findall(r'prog="([^"]+)"', source.read_text(encoding="utf-8")))
    assert {"rollouts", "loadtest serve", "python -m rollouts.local.stack"} <= progs
    assert sorted(progs - set(parsers)) == []


def _page(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", PAGES, ids=_page)
def test_every_documented_flag_exists_where_it_is_used(path: Path, parsers: Parsers) -> None:
    assert unknown_flags(path.read_text(encoding="utf-8"), _page(path), parsers) == []


@pytest.mark.parametrize("path", PAGES, ids=_page)
def test_every_documented_default_is_the_parsers(path: Path, parsers: Parsers) -> None:
    assert default_mismatches(path.read_text(encoding="utf-8"), _page(path), parsers) == []


def test_the_docs_check_defaults_at_all(parsers: Parsers) -> None:
    stated = [d for p in PAGES for d in _documented_defaults(p.read_text(encoding="utf-8"), _page(p))]
    assert len(stated) >= 8  # the pattern still finds the tables' defaults
    assert any(flags == ["--settle"] and value == "2" for _, flags, value in stated)


def test_every_environment_variable_documented_is_read_and_vice_versa() -> None:
    texts = {_page(p): p.read_text(encoding="utf-8") for p in [*PAGES, *MANIFESTS]}
    code = env_names_in_code()
    assert {"ROLLOUTS_NOTIFY_URLS", "ROLLOUTS_CACHE_DIR", "LOADTEST_TOKEN"} <= code
    assert env_mismatches(env_names_documented(texts), code) == []


PLANTED = """# page

| flag | meaning |
| --- | --- |
| `--settle SECONDS` | scrape lag (default 3) |
| `--metrics-address HOST:PORT` | default `127.0.0.1:9999` |
| `--cache-dir DIR` | default `$ROLLOUTS_CACHE_DIR` |

Run `rollouts run --mesh URL --setle 2` or `rollouts status SPEC --json`, and
`--lease X` (default `rollouts/gitops-rollouts`). `git fetch --no-tags` is git's.

```sh
$ rollouts set-weight SPEC 10 --reason x \\
    --json
loadtest serve --port 8089 --max-jobs 2
```
"""


def test_planted_mismatches_are_reported(parsers: Parsers) -> None:
    assert unknown_flags(PLANTED, "page.md", parsers) == [
        "page.md:9: --setle is not an option of `rollouts run`",
        "page.md:13: --json is not an option of `rollouts set-weight`",
    ]
    assert default_mismatches(PLANTED, "page.md", parsers) == [
        "page.md:5: --settle: documented default '3', parser: `rollouts run --settle` 2.0",
        "page.md:6: --metrics-address: documented default '127.0.0.1:9999', parser: "
        "`rollouts run --metrics-address` None",
        "page.md:10: --lease: documented default 'rollouts/gitops-rollouts', parser: "
        "`rollouts run --lease` None",
    ]
    fixed = PLANTED.replace("(default 3)", "(default 2)").replace("9999", "9797")
    fixed = fixed.replace("--setle", "--settle")
    fixed = fixed.replace("rollouts/gitops-rollouts", "rollouts-controller").replace("\\\n    --json", "")
    assert unknown_flags(fixed, "page.md", parsers) == []
    assert default_mismatches(fixed, "page.md", parsers) == []


def test_planted_environment_mismatches_are_reported() -> None:
    documented = env_names_documented({"page.md": "set `ROLLOUTS_NOPE`\nand ROLLOUTS_CACHE_DIR\n"})
    assert env_mismatches(documented, {"ROLLOUTS_CACHE_DIR", "LOADTEST_SECRET"}) == [
        "LOADTEST_SECRET is read by the code but not documented",
        "page.md:1: ROLLOUTS_NOPE is not read by the code",
    ]
