"""``rollouts report``: exit codes, clear errors, nothing half-written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rollouts.cli import main
from tests.report.scenario import SPEC
from tests.support import free_port, require_binary

pytestmark = pytest.mark.integration


def run(capsys, *argv):
    code = main(["report", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_unreachable_prometheus_still_renders_the_git_part(capsys, scenario, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    code, stdout, err = run(
        capsys, scenario.spec_file, "--prometheus", dead, "--out", out, "--cache-dir", scenario.cache
    )
    assert code == 0, err
    assert "warning: metrics unavailable" in err and dead in err
    page = (out / "test_podinfo" / "index.html").read_text()
    assert "<b>Metrics unavailable</b>" in page and "This report shows the Git history only" in page
    assert sorted(p.name for p in (out / "test_podinfo").iterdir()) == ["index.html", "weights.png"]
    assert "0 measured step(s)" in stdout

    code, _, err = run(
        capsys, scenario.spec_file, "--prometheus", dead, "--out", tmp_path / "strict", "--require-metrics",
        "--cache-dir", scenario.cache,
    )  # fmt: skip
    assert code == 1 and "metrics unavailable" in err and "nothing written" in err
    assert not (tmp_path / "strict").exists()


def test_without_a_prometheus_url_the_page_says_so(capsys, scenario, tmp_path):
    code, _, err = run(capsys, scenario.spec_file, "--out", tmp_path, "--cache-dir", scenario.cache)
    assert code == 0 and "no Prometheus URL was given (--prometheus)" in err
    assert (
        "no Prometheus URL was given (--prometheus)" in (tmp_path / "test_podinfo" / "index.html").read_text()
    )


def test_a_second_report_replaces_the_first_without_leftovers(capsys, scenario, tmp_path):
    for since in ("2000-01-01", scenario.times["60"]):
        when = since if isinstance(since, str) else datetime.fromtimestamp(since, UTC).isoformat()
        code, _, err = run(
            capsys, scenario.spec_file, "--out", tmp_path, "--cache-dir", scenario.cache, "--since", when
        )
        assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["test_podinfo"]  # no temporary directories left
    page = (tmp_path / "test_podinfo" / "index.html").read_text()
    since = datetime.fromtimestamp(scenario.times["60"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"3 commit(s) since {since} UTC" in page and scenario.shas["initial"][:10] not in page


def test_missing_spec_is_an_error_and_writes_nothing(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path / "nope.yaml", "--out", tmp_path / "out")
    assert code == 1 and "nope.yaml: cannot read" in err
    assert not (tmp_path / "out").exists()


def test_unreachable_repository_is_an_error_and_writes_nothing(capsys, tmp_path):
    spec = tmp_path / "rollout.yaml"
    spec.write_text(SPEC.format(url=tmp_path / "no-such-repo.git", route="vs.yaml", canary="c.yaml"))
    code, _, err = run(capsys, spec, "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache")
    assert code == 1 and "no-such-repo.git" in err and "clone failed" in err
    assert not (tmp_path / "out").exists()


def test_out_dir_that_cannot_be_written(capsys, scenario, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    dead = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(
        capsys,
        scenario.spec_file,
        "--out",
        blocker / "out",
        "--cache-dir",
        scenario.cache,
        "--prometheus",
        dead,
    )
    assert code == 1 and f"--out {blocker / 'out'}: cannot write there" in err
    assert blocker.read_text() == "not a directory"
    # Regression: checked only after every Prometheus query had timed out or failed.
    assert "metrics unavailable" not in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--since", "yesterday-ish"], "must be an ISO date or date-time"),
        (["--until", "3 fortnights"], "must be an ISO date or date-time"),
    ],
)
def test_bad_options_are_usage_errors(capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "rollout.yaml"), *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_bad_values_name_the_option(capsys, scenario, tmp_path):
    code, _, err = run(capsys, scenario.spec_file, "--prometheus", "localhost:9090", "--out", tmp_path / "o")
    assert code == 1 and "--prometheus must be an http:// or https:// URL" in err
    code, _, err = run(capsys, scenario.spec_file, "--since", "2d", "--until", "3d", "--out", tmp_path / "o")
    assert code == 1 and "--until" in err and "must be after --since" in err
    assert not (tmp_path / "o").exists()


def test_since_accepts_iso_dates_and_ages():
    from datetime import timedelta, timezone

    from rollouts.report.cli import parse_since

    now = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
    assert parse_since("6h", now=now) == now - timedelta(hours=6)
    assert parse_since("2d", now=now) == now - timedelta(days=2)
    assert parse_since("2026-11-29") == datetime(2026, 11, 29, tzinfo=UTC)
    assert parse_since("2026-11-29T18:30:00+02:00") == datetime(2026, 11, 29, 16, 30, tzinfo=UTC)
    assert parse_since("2026-11-29T18:30:00+02:00").tzinfo == timezone(timedelta(hours=2))


@pytest.mark.parametrize("head", ["deleted", "broken"])
def test_route_file_deleted_or_broken_at_the_head_still_gives_a_report(capsys, tmp_path, monkeypatch, head):
    """Regression: the report parsed the head's route file first, so it wrote nothing at all."""
    from tests.fixtures.gitrepo import DESTINATION_RULE, bare_remote, git, vs_with

    require_binary("git")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    route = "workloads/podinfo/virtual-service.yaml"
    remote = bare_remote(tmp_path)
    bare, human = remote.bare, remote.human
    (human / route).parent.mkdir(parents=True)
    (human / "workloads/podinfo/destination-rule.yaml").write_text(DESTINATION_RULE)
    for stable, canary in ((100, 0), (90, 10)):
        (human / route).write_text(vs_with(stable, canary))
        git(human, "add", ".")
        git(human, "-c", "user.name=Human", "-c", "user.email=h@x", "commit", "--quiet", "-m", f"{canary}%")
    if head == "deleted":
        git(human, "rm", "--quiet", route)
    else:
        (human / route).write_text("spec: [\n")
        git(human, "add", ".")
    git(human, "-c", "user.name=Human", "-c", "user.email=h@x", "commit", "--quiet", "-m", head)
    git(human, "push", "--quiet", "origin", "HEAD:master")
    spec = tmp_path / "rollout.yaml"
    spec.write_text(SPEC.format(url=bare, route=route, canary="workloads/podinfo/canary-deployment.yaml"))
    out = tmp_path / "out"
    code, stdout, err = run(capsys, spec, "--out", out, "--cache-dir", tmp_path / "cache")
    assert code == 0, err
    assert "report with 3 commit(s)" in stdout
    page = (out / "test_podinfo" / "index.html").read_text()
    assert ("not in commit" if head == "deleted" else "malformed YAML") in page


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_timeout_must_be_positive_and_finite(capsys, tmp_path, value):
    """Regression: ``--timeout nan`` was accepted (NaN passed the "<= 0" check)."""
    spec = tmp_path / "rollout.yaml"
    spec.write_text(SPEC.format(url=tmp_path / "nowhere.git", route="vs.yaml", canary="canary.yaml"))
    code, _, err = run(capsys, spec, "--timeout", value, "--out", tmp_path / "o")
    assert code == 1 and "--timeout must be a positive, finite number of seconds" in err
    assert not (tmp_path / "o").exists()
