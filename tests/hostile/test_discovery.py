"""``rollouts run --repo``: one bad spec never stops the others, links are not followed, and the
``--repo`` URL is checked before Git sees it (no credentials in ``.git/config``, no ``ext::``)."""

from __future__ import annotations

import os
import time

import pytest

from rollouts.cli import main
from rollouts.gitops import DiscoveryError, discover
from rollouts.spec import SpecError, parse_spec
from tests.fixtures.gitrepo import git, guide_rollout
from tests.hostile.inputs import GOOD_SPEC, alias_bomb, deep, refs

MESH = ("--mesh", "http://127.0.0.1:1", "--metrics-address", "off")


@pytest.fixture
def specs_repo(remote, pushed, tmp_path):
    """The guide's repo with one good spec and, beside it, every kind of bad one."""
    outside = tmp_path / "outside.yaml"
    outside.write_text(GOOD_SPEC.replace("name: podinfo", "name: evil"))
    pushed(
        {
            "rollouts/bomb.yaml": alias_bomb(),
            "rollouts/deep.yaml": GOOD_SPEC.replace("name: podinfo", "name: deep") + "x-" + deep(),
            "rollouts/latin1.yaml": GOOD_SPEC.encode().replace(b"name: podinfo", b"name: caf\xe9"),
            "rollouts/dup.yaml": GOOD_SPEC.replace("name: podinfo", "name: dup") + "  steps: [1]\n",
            "rollouts/good.yaml": GOOD_SPEC,
            "rollouts/unrelated.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n",
        },
        "specs",
    )
    os.symlink(outside, remote.human / "rollouts" / "link.yaml")
    os.symlink(tmp_path, remote.human / "rollouts" / "linkdir")
    git(remote.human, "add", "-A")
    git(remote.human, "commit", "--quiet", "-m", "links")
    git(remote.human, "push", "--quiet", "origin", "HEAD:master")
    return remote


def test_one_bad_spec_never_stops_the_others(specs_repo, cache):
    start = time.perf_counter()
    rollouts, errors = discover(str(specs_repo.bare), "master", "rollouts", cache)
    assert time.perf_counter() - start < 20
    assert [r.key for r in rollouts] == ["test/podinfo"]
    by_file = {line.split(":", 1)[0]: line for line in errors}
    assert set(by_file) == {
        "rollouts/bomb.yaml",
        "rollouts/deep.yaml",
        "rollouts/dup.yaml",
        "rollouts/latin1.yaml",
        "rollouts/link.yaml",
        "rollouts/linkdir",
    }, errors
    assert "expands to more than 10000 nodes" in by_file["rollouts/bomb.yaml"]
    assert "nested more than 64 levels deep" in by_file["rollouts/deep.yaml"]
    assert "duplicate key 'steps'" in by_file["rollouts/dup.yaml"]
    assert "line 3, column 21: not UTF-8 (byte 0xe9" in by_file["rollouts/latin1.yaml"]
    assert "is a symbolic link" in by_file["rollouts/link.yaml"]
    assert "symbolic link, not followed" in by_file["rollouts/linkdir"]
    assert all(len(line) < 400 for line in errors)


def test_run_once_runs_the_good_spec_and_reports_the_bad_ones(specs_repo, cache, capsys):
    code = main(
        ["run", "--repo", str(specs_repo.bare), "--path", "rollouts", "--branch", "master", "--once",
         "--cache-dir", str(cache), "--metrics-address", "off", "--mesh", "http://127.0.0.1:1"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith("test/podinfo: ")
    assert "rollouts/bomb.yaml: line " in err and "Traceback" not in err and "MemoryError" not in err


@pytest.mark.parametrize(
    "url",
    [
        "http://x-access-token:s3cret-token@127.0.0.1:1/r.git",
        "https://s3cret-token@127.0.0.1:1/r.git",
        "https://127.0.0.1:1/r.git?access_token=s3cret-token",
        "deploy:s3cret-token@127.0.0.1:r.git",
    ],
)
def test_credentials_in_the_repo_url_are_refused_before_git_sees_them(url, cache, capsys):
    code = main(["run", "--repo", url, "--path", "rollouts", "--once", "--cache-dir", str(cache), *MESH])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("rollouts run: error: --repo: ")
    assert "must not contain credentials" in err
    assert "s3cret-token" not in err
    assert not (cache / "discovery").exists() or not list((cache / "discovery").glob("*/.git/config"))


def test_ext_transport_is_a_clear_error_and_runs_nothing(cache, tmp_path, capsys):
    marker = tmp_path / "ran"
    code = main(
        [
            "run",
            "--repo",
            f"ext::sh -c touch% {marker}",
            "--path",
            "rollouts",
            "--once",
            "--cache-dir",
            str(cache),
            *MESH,
        ]
    )
    _, err = capsys.readouterr()
    assert code == 1
    assert err == (
        f"rollouts run: error: --repo: ext::sh -c touch% {marker}: Git remote helper ext:: is "
        "refused (it can run commands); use an https://, ssh:// or file:// URL, or a local path\n"
    )
    assert "Traceback" not in err
    assert not marker.exists()
    with pytest.raises(DiscoveryError, match="remote helper fd:: is refused"):
        discover("fd::3", "master", "rollouts", cache)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"git": {"url": "ext::sh -c id", "branch": "master"}}, "Git remote helper ext:: is refused"),
        ({"git": {"url": "https://h/r.git?private_token=abcdef", "branch": "master"}}, "must not contain"),
        ({"git": {"url": "-uhttps://h/r.git", "branch": "master"}}, "starts with '-'"),
        (
            {"route": {"kind": "VirtualService", "path": ".git/config", "stable": "ga", "canary": "c"}},
            "spec.route.path: must not point into .git",
        ),
        (
            {"canary": {"path": "workloads/.git/hooks/post-checkout"}},
            "spec.canary.path: must not point into .git",
        ),
    ],
)
def test_spec_fields_that_would_run_or_leak_are_refused(section, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(guide_rollout("/r.git", **section), source="r.yaml")


@pytest.mark.parametrize("weight", [" 10", "١٠", "+5", "1_0", "10 ", "0x10", "1e1", "٣", "-0"])
def test_set_weight_takes_plain_ascii_digits_only(weight, remote, cache, tmp_path, capsys):
    spec_file = tmp_path / "rollout.yaml"
    spec_file.write_text(GOOD_SPEC.replace("url: .", f"url: {remote.bare}"))
    before = refs(remote)
    with pytest.raises(SystemExit) as info:
        main(["set-weight", str(spec_file), weight, "--cache-dir", str(cache)])
    _, err = capsys.readouterr()
    assert info.value.code == 2
    assert f"WEIGHT must be an integer 0-100, got {weight!r} (plain ASCII digits only)" in err
    assert refs(remote) == before
