"""Alias bombs, duplicate keys, deep nesting, huge files and bad bytes: refused before they are built,
in bounded time and memory, with the file and line named; nothing is committed."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.cli import main
from rollouts.gitops import ManifestError, RepoFileError, Workspace, canary_images, copy_images
from rollouts.local.mesh import Destination, MeshConfig, RouteWatcher
from rollouts.routes import RouteError, Weights, editor_for
from rollouts.spec import SpecError, load_spec
from rollouts.yamlsafe import MANIFEST, ROUTE, SPEC, YamlLimitError, check, load_all
from tests.fixtures.gitrepo import VIRTUAL_SERVICE, deployment
from tests.hostile.inputs import GOOD_SPEC, alias_bomb, deep, refs, route_with_duplicate

VS = "workloads/podinfo/virtual-service.yaml"
MiB = 1024 * 1024


def measured(call):
    """(exception raised, seconds, peak MiB allocated by Python) of ``call()``."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        call()
    except Exception as exc:
        raised = exc
    else:
        raised = None
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / MiB
    tracemalloc.stop()
    return raised, seconds, peak


# --- specs ----------------------------------------------------------------------------------------


def test_alias_bomb_spec_is_refused_fast_and_small(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 1024
    raised, seconds, peak = measured(lambda: load_spec(path))
    assert isinstance(raised, SpecError)
    message = str(raised)
    assert message.startswith(f"{path}: line ") and "expands to more than 10000 nodes" in message
    assert len(message) < 300
    assert seconds < 1.0 and peak < 16, (seconds, peak)


def test_a_spec_with_many_bad_values_gives_a_bounded_message(tmp_path):
    # Not an alias: 20,000 wrong steps written out (under the size limit) give 21 lines, not 20,000.
    path = tmp_path / "steps.yaml"
    path.write_text(GOOD_SPEC.replace("steps: [10, 60, 100]", "steps: [" + ", ".join(["x"] * 2000) + "]"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 21 and lines[-1].endswith("... and 1980 more problem(s)")
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_a_spec_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(GOOD_SPEC + "#" + "x" * (SPEC.max_bytes + 10) + "\n")
    raised, seconds, _ = measured(lambda: load_spec(path))
    assert isinstance(raised, SpecError)
    assert str(raised) == (
        f"{path}: Rollout spec is {path.stat().st_size} bytes, more than the limit of 256 KiB"
    )
    assert seconds < 0.5


def test_a_deeply_nested_spec_names_file_and_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(GOOD_SPEC + "x-" + deep())
    with pytest.raises(SpecError, match=rf"^{path}: line 10: nested more than 64 levels deep$"):
        load_spec(path)


def test_a_spec_that_is_not_utf8_names_line_column_and_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    data = GOOD_SPEC.encode().replace(b"name: podinfo", b"name: podinfo\xff")
    path.write_bytes(data)
    offset = data.index(b"\xff")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path}: line 3, column 25: not UTF-8 (byte 0xff at offset {offset}); save the file as UTF-8"
    )


def test_duplicate_keys_in_a_spec_name_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(GOOD_SPEC + "  steps: [50]\n")
    with pytest.raises(SpecError, match=r"line 10: duplicate key 'steps' \(first at line 8\)"):
        load_spec(path)


# --- route files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "line"), [("weight", 18), ("subset", 17)])
def test_duplicate_keys_in_a_route_file_are_refused_naming_the_line(key, line):
    editor = editor_for("VirtualService", stable="ga", canary="canary", source=VS)
    text = route_with_duplicate(key)
    for call in (lambda: editor.read(text), lambda: editor.write(text, Weights.for_canary(60))):
        with pytest.raises(RouteError, match=rf"^{VS}: line {line}: duplicate key '{key}' \(first at line"):
            call()


def test_a_route_file_with_duplicate_keys_is_not_committed(remote, spec, cache, pushed):
    pushed({VS: route_with_duplicate("weight")}, "human: two weights")
    before = refs(remote)
    with Workspace.for_spec(spec, cache_dir=cache) as ws, pytest.raises(RepoFileError, match="duplicate key"):
        ws.set_weights(spec, Weights.for_canary(60), verdict="manual")
    assert refs(remote) == before


def test_a_weight_written_as_an_alias_is_refused():
    text = VIRTUAL_SERVICE.replace("weight: 90   # GA", "weight: &w 90   # GA").replace(
        "      weight: 10\n", "      weight: *w\n"
    )
    editor = editor_for("VirtualService", stable="ga", canary="canary", source=VS)
    with pytest.raises(RouteError, match=r"subset 'canary': weight is a YAML alias; write the number out"):
        editor.read(text)


def test_an_alias_bomb_in_a_route_file_is_refused():
    bomb = "x-bomb:" + alias_bomb().split("x-bomb:")[1].split("spec:")[0]
    editor = editor_for("VirtualService", stable="ga", canary="canary", source=VS)
    raised, seconds, peak = measured(lambda: editor.read(VIRTUAL_SERVICE + bomb))
    assert isinstance(raised, RouteError) and "expands to more than 100000 nodes" in str(raised)
    assert seconds < 2.0 and peak < 32, (seconds, peak)


def set_weight(capsys, spec_file: Path, cache: Path, weight: str) -> tuple[int, str, str]:
    code = main(["set-weight", str(spec_file), weight, "--cache-dir", str(cache)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def spec_file(tmp_path, remote):
    path = tmp_path / "rollout.yaml"
    path.write_text(GOOD_SPEC.replace("url: .", f"url: {remote.bare}"))
    return path


def test_set_weight_on_a_deeply_nested_route_file_names_the_file(capsys, remote, spec_file, cache, pushed):
    pushed({VS: VIRTUAL_SERVICE + "x-" + deep()}, "human: deep")
    before = refs(remote)
    code, out, err = set_weight(capsys, spec_file, cache, "60")
    assert (code, out) == (1, "")
    assert err.startswith(f"rollouts: error: {VS}: line ") and "nested more than 64 levels deep" in err
    assert "Traceback" not in err and "RecursionError" not in err
    assert refs(remote) == before


def test_set_weight_on_a_route_file_over_the_limit_is_refused_before_reading(
    capsys, remote, spec_file, cache, pushed
):
    huge = VIRTUAL_SERVICE + ("#" + "x" * 1022 + "\n") * (6 * 1024)  # 6 MiB; the limit is 256 KiB
    pushed({VS: huge}, "human: huge")
    before = refs(remote)
    result = []
    raised, seconds, peak = measured(lambda: result.append(set_weight(capsys, spec_file, cache, "60")))
    assert raised is None
    code, out, err = result[0]
    assert (code, out) == (1, "")
    assert err == f"rollouts: error: {VS}: file is {len(huge)} bytes, more than the limit of 256 KiB\n"
    assert peak < 8, peak  # the file is never read into memory
    assert seconds < 10
    assert refs(remote) == before


def test_the_local_mesh_names_the_route_file_for_deep_and_huge_revisions(remote, pushed, tmp_path):
    config = MeshConfig(
        port=0,
        admin_port=0,
        repo=str(remote.bare),
        path=VS,
        stable=Destination(name="ga", url="http://127.0.0.1:1", workload="podinfo-ga", version="ga"),
        canary=Destination(
            name="canary", url="http://127.0.0.1:2", workload="podinfo-canary", version="canary"
        ),
    )
    watcher = RouteWatcher(config, tmp_path / "mesh")
    assert watcher.poll().weights == Weights(90, 10)
    pushed({VS: VIRTUAL_SERVICE + "x-" + deep()}, "human: deep")
    status = watcher.poll()
    assert status.weights == Weights(90, 10)  # the last good weights stay
    assert status.error is not None and status.error.startswith(f"{VS}: line ")
    assert "nested more than 64 levels deep" in status.error
    pushed({VS: VIRTUAL_SERVICE + "#" + "x" * ROUTE.max_bytes + "\n"}, "human: huge")
    status = watcher.poll()
    assert status.error is not None and status.error.startswith(f"{VS}: ")
    assert "more than the 256 KiB a route file may have" in status.error
    pushed({VS: VIRTUAL_SERVICE.encode() + b"# \xfe\n"}, "human: bytes")
    status = watcher.poll()
    line, offset = VIRTUAL_SERVICE.count("\n") + 1, len(VIRTUAL_SERVICE) + 2
    assert status.error == (
        f"{VS}: line {line}, column 3: not UTF-8 (byte 0xfe at offset {offset}); save the file as UTF-8"
    )


# --- manifests ------------------------------------------------------------------------------------


def test_manifests_are_bounded_too():
    manifest = deployment("podinfo-canary", "0.2.0")
    with pytest.raises(ManifestError, match=r"^canary\.yaml: line 1: nested more than 64 levels deep$"):
        canary_images("x-" + deep(), "canary.yaml")
    with pytest.raises(ManifestError, match=r"^ga\.yaml: line \d+: duplicate key 'image'"):
        copy_images(manifest + "        image: evil:1\n", {"podinfod": "podinfo:0.3.0"}, "ga.yaml")
    with pytest.raises(ManifestError, match=r"manifest is \d+ bytes, more than the limit of 256 KiB"):
        canary_images(manifest + "#" * MANIFEST.max_bytes, "canary.yaml")


# --- any text: the checker itself -----------------------------------------------------------------

YAML_PIECES = st.sampled_from(
    ["a: ", "- ", "[", "]", "{", "}", ", ", "&x ", "*x", "&y ", "*y", "\n", "  ", "k: v\n", "k: w\n",
     "'", '"', "!!str ", "!!python/object:os.system ", "? ", ": ", "---\n", "<<: *x\n", "1", "\t", "#"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(YAML_PIECES, max_size=200), width=st.integers(1, 4))
def test_hostile_yaml_is_refused_or_loaded_never_anything_else(pieces, width):
    text = "".join(pieces) * width
    for limits in (SPEC, ROUTE):
        start = time.perf_counter()
        try:
            load_all(text, "h.yaml", limits)
        except YamlLimitError as exc:
            assert str(exc).startswith("h.yaml: ") and len(str(exc)) < 600
        assert time.perf_counter() - start < 2.0


@settings(max_examples=100, deadline=None)
@given(depth=st.integers(60, 5000), opener=st.sampled_from(["[", "{a: ", "- "]))
def test_any_depth_is_an_error_naming_the_line_not_a_recursion_error(depth, opener):
    if opener == "- ":
        text = "".join("  " * i + "- \n" for i in range(min(depth, 400)))
    else:
        text = "k: " + opener * depth
    try:
        check(text, "d.yaml", ROUTE)
    except YamlLimitError as exc:
        assert str(exc).startswith("d.yaml: ")


def test_rollouts_run_reports_a_deep_route_file_by_name_without_a_traceback(
    capsys, remote, spec_file, cache, pushed
):
    pushed({VS: VIRTUAL_SERVICE + "x-" + deep()}, "human: deep")
    before = refs(remote)
    argv = ["run", str(spec_file), "--once", "--cache-dir", str(cache), "--metrics-address", "off"]
    code = main([*argv, "--mesh", "http://127.0.0.1:1"])
    out, err = capsys.readouterr()
    assert code == 0  # the controller goes on: the rollout reports its error every tick
    assert out.startswith("test/podinfo: ") and f"{VS}: line 23: nested more than 64 levels deep" in out
    assert "Traceback" not in err and "RecursionError" not in err
    assert refs(remote) == before


SPEC_PIECES = st.sampled_from(
    [GOOD_SPEC, "spec:\n", "  steps: ", "[", "]", "&a ", "*a", "{", "}", "\n", "x: ", "- ", "\xff",
     "\x00", "\ufeff", "'", "!!binary ", "%YAML 1.2\n", "---\n", "...\n", "<<: *a\n", "  ", "\t"]
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(pieces=st.lists(SPEC_PIECES, max_size=60), raw=st.binary(max_size=64))
def test_any_spec_file_loads_or_is_a_spec_error_naming_it(pieces, raw, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "rollout.yaml"
    path.write_bytes("".join(pieces).encode("utf-8", errors="surrogatepass") + raw)
    start = time.perf_counter()
    try:
        load_spec(path)
    except SpecError as exc:
        assert str(exc).startswith(f"{path}: ")
        assert len(str(exc)) < 20_000
    assert time.perf_counter() - start < 2.0
