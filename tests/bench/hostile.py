"""Benchmark: how fast hostile YAML is refused, against loading the guide's good spec and route.

``python -m tests.bench.hostile [--repeats N]``: for each hostile input of issue 12 (alias bomb, 3,000
nested brackets, a 60 MiB file, a file at the 256 KiB limit), the time to the error and the peak of
Python allocations (tracemalloc), beside the anchor: the guide's spec (``load_spec``) and route
(``editor.read``) loaded the normal way in the same run. Figures: docs/benchmarks/gitops.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from rollouts.routes import RouteEditor, RouteError, editor_for
from rollouts.spec import SpecError, load_spec
from rollouts.yamlsafe import ROUTE
from tests.fixtures.gitrepo import VIRTUAL_SERVICE
from tests.hostile.inputs import GOOD_SPEC, alias_bomb, deep


def _measure(repeats: int, fn: Callable[[], object]) -> tuple[float, float, str]:
    """(best seconds, peak MiB of the last run, outcome) of ``fn``."""
    best, outcome = math.inf, "loaded"
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            fn()
        except (SpecError, RouteError) as exc:
            outcome = str(exc).split(": ", 1)[1][:60]
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    with contextlib.suppress(SpecError, RouteError):
        fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak, outcome


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one row per input."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.hostile")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {
            "good.yaml": GOOD_SPEC,
            "bomb.yaml": alias_bomb(),
            "deep.yaml": GOOD_SPEC + "x-" + deep(),
            "huge.yaml": GOOD_SPEC + "#" + "x" * (60 * 2**20) + "\n",
        }
        for name, text in files.items():
            (root / name).write_text(text)

        def editor() -> RouteEditor:
            return editor_for("VirtualService", stable="ga", canary="canary", source="vs.yaml")

        dense = "---\n".join([VIRTUAL_SERVICE] * (ROUTE.max_bytes // (len(VIRTUAL_SERVICE) + 4) - 1))
        bomb_route = VIRTUAL_SERVICE + "x-bomb:" + alias_bomb().split("x-bomb:")[1].split("spec:")[0]
        rows: list[tuple[str, Callable[[], object]]] = [
            ("spec: the guide's (anchor)", lambda: load_spec(root / "good.yaml")),
            ("spec: alias bomb, 9 levels of 9 (637 B)", lambda: load_spec(root / "bomb.yaml")),
            ("spec: 3,000 nested [", lambda: load_spec(root / "deep.yaml")),
            ("spec: 60 MiB", lambda: load_spec(root / "huge.yaml")),
            ("route: the guide's (anchor)", lambda: editor().read(VIRTUAL_SERVICE)),
            ("route: alias bomb", lambda: editor().read(bomb_route)),
            ("route: 3,000 nested [", lambda: editor().read(VIRTUAL_SERVICE + "x-" + deep())),
            (f"route: {len(dense) // 1024} KiB of routes (at the limit)", lambda: editor().read(dense)),
        ]
        anchor = {"spec": 0.0, "route": 0.0}
        print(f"{'input':48} {'time':>10} {'x anchor':>9} {'peak MiB':>9}  outcome")
        for label, fn in rows:
            seconds, peak, outcome = _measure(args.repeats if "limit" not in label else 1, fn)
            kind = label.split(":", 1)[0]
            if "anchor" in label:
                anchor[kind] = seconds
            ratio = seconds / anchor[kind] if anchor[kind] else math.nan
            print(f"{label:48} {seconds * 1000:8.2f}ms {ratio:9.2f} {peak:9.2f}  {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
