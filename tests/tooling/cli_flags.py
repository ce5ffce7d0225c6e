"""``python -m tests.tooling.cli_flags GROUP``: every option of our command-line parsers, as JSON.

Run in a subprocess by ``test_documented_cli.py``: ``loadtest`` imports Locust, which monkey-patches
the interpreter with gevent, so its parsers are read in a process of their own (group ``loadtest``),
never in the test process. Each entry point is called with arguments that make it build its parser;
``ArgumentParser.parse_known_args`` is replaced for the call so that nothing runs: the first parser
that is asked to parse is the one reported, with its subcommands.

Output: ``{prog: {option: {"default": <JSON or repr>, "help": str, "dest": str}}}``, one key per
parser (``rollouts run``, ``analyzer judge``, ...).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class _CapturedError(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def capture(call: Callable[[], object]) -> argparse.ArgumentParser:
    """The parser ``call`` builds and asks to parse (the call stops there)."""
    original = argparse.ArgumentParser.parse_known_args

    def stop(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _CapturedError(self)

    argparse.ArgumentParser.parse_known_args = stop  # type: ignore[method-assign]
    try:
        call()
    except _CapturedError as captured:
        return captured.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original  # type: ignore[method-assign]
    raise AssertionError(f"{call} built no parser")


def _entry(module: str, function: str, *args: Any) -> Callable[[], object]:
    def call() -> object:
        return getattr(importlib.import_module(module), function)(*args)

    return call


def _full_rollouts_parser() -> object:
    return importlib.import_module("rollouts.cli").build_parser().parse_args(["--help"])


def _full_analyzer_parser() -> object:
    return importlib.import_module("analyzer.cli").build_parser().parse_args(["--help"])


def _podinfo() -> object:
    return importlib.import_module("rollouts.local.podinfo").parser().parse_args([])


def _bench(name: str) -> Callable[[], object]:
    def call() -> object:
        main = importlib.import_module(f"tests.bench.{name}").main
        return main([]) if inspect.signature(main).parameters else main()

    return call


BENCHMARKS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "bench").glob("*.py") if not p.stem.startswith("_")
)


GROUPS: dict[str, dict[str, Callable[[], object]]] = {
    "main": {
        # The full parser: main() builds the heavy subcommands' parsers only when they are asked for.
        "rollouts": _full_rollouts_parser,
        "analyzer": _full_analyzer_parser,
        "python -m rollouts.local.stack": _entry("rollouts.local.stack", "parse_args", []),
        "python -m rollouts.local.mesh": _entry("rollouts.local.mesh", "main", []),
        "python -m rollouts.local.podinfo": _podinfo,
        "python -m rollouts.local.strategy_demo": _entry("rollouts.local.strategy_demo", "main", []),
        "python -m rollouts.docs": _entry("rollouts.docs", "main", []),
        "python -m tests.bench": _entry("tests.bench.__main__", "main", []),
        **{f"python -m tests.bench.{name}": _bench(name) for name in BENCHMARKS},
    },
    "loadtest": {
        "loadtest serve": _entry("loadtest.serve", "main", []),
        "loadtest": _entry("loadtest.cli", "main", ["http://127.0.0.1:9/"]),
    },
}


def _json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def describe(parser: argparse.ArgumentParser, prog: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``parser`` and its subcommands: prog -> option -> default, help and dest."""
    out: dict[str, dict[str, dict[str, Any]]] = {prog: {}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.update(describe(sub, f"{prog} {name}"))
            continue
        for option in action.option_strings:
            default = None if action.default is argparse.SUPPRESS else action.default
            out[prog][option] = {"default": _json(default), "help": action.help or "", "dest": action.dest}
    return out


def main(argv: list[str]) -> int:
    """Print the options of the parsers of the group named in ``argv``."""
    found: dict[str, Any] = {}
    for prog, call in GROUPS[argv[0]].items():
        found.update(describe(capture(call), prog))
    json.dump(found, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
