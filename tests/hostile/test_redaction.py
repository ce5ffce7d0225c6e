"""One redaction function for every URL: the forms of issue 12, generated URLs, and the places that
print or log them (Git errors, Prometheus errors, apprise at DEBUG, the controller's log lines)."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.prometheus import PrometheusClient, PrometheusUnavailableError
from analyzer.redaction import RedactingFilter, redact, url_secrets
from rollouts.gitops import GitopsError, Workspace
from rollouts.gitops import redact as gitops_redact
from rollouts.logs import configure
from rollouts.notify import Kind, Notice, Notifier, NotifyConfigError
from tests.support import free_port


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://x-access-token:s3cret@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("clone of https://h/r.git?access_token=abc123&depth=1 failed", "clone of https://h/r.git?access_token=***&depth=1 failed"),  # noqa: E501
        ("fatal: 'deploy:s3cr3t@gitlab.com:o/r.git' not found", "fatal: '***@gitlab.com:o/r.git' not found"),
        ("https://user:p@ss@word@host/x", "https://***@host/x"),
        ("https://***@c@host/", "https://***@host/"),
        ("https://hooks.slack.com/services/T0123/B0456/XyZ789secret", "https://hooks.slack.com/services/***"),
        ("https://discord.com/api/webhooks/12345/tok-en", "https://discord.com/api/webhooks/***"),
        ("https://s3.example/b/k?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA1", "https://s3.example/b/k?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("http://127.0.0.1:9090/api/v1/query?query=up", "http://127.0.0.1:9090/api/v1/query?query=up"),
        ("at 10:20:30 on host:22", "at 10:20:30 on host:22"),
    ],
)  # fmt: skip
def test_the_forms_of_issue_12(text, shown):
    assert redact(text) == shown
    assert gitops_redact(text) == shown  # the workspace's name for the same function


def test_known_secrets_go_in_every_spelling():
    token = "tok/en+with=chars"
    text = f"a {token} b {token.replace('/', '%2F').replace('+', '%2B').replace('=', '%3D')} c"
    assert redact(text, (token,)) == "a *** b *** c"
    assert redact("a bc", ("bc",)) == "a bc"  # too short to be a secret: ordinary words stay


SECRET = st.text(alphabet=st.sampled_from("abcXYZ0189-._~!$'()*+,=%:@"), min_size=6, max_size=30).filter(
    lambda s: not s.startswith(("@", ":")) and not s.endswith(("@", ":")) and "abc" not in s
)
HOST = st.sampled_from(["github.com", "10.0.0.1", "git.example.org", "h"])


@settings(max_examples=300, deadline=None)
@given(secret=SECRET, host=HOST, user=st.sampled_from(["u", "x-access-token", "deploy"]))
def test_generated_credentials_never_survive(secret, host, user):
    in_query = secret.replace("'", "%27")
    forms = [
        f"https://{user}:{secret}@{host}/org/repo.git",
        f"ssh://{user}:{secret}@{host}:22/org/repo.git",
        f"http://{secret}@{host}/r",
        f"{user}:{secret}@{host}:org/repo.git",
        # In a query, a quote would be percent-encoded by any client.
        f"https://{host}/r.git?access_token={in_query}",
        f"https://{host}/r.git?x=1&private_token={in_query}",
    ]
    for form in forms:
        for text in (form, f"fatal: unable to access '{form}': 403", f"[{form}] and more"):
            out = redact(text)
            assert "***" in out, text
            leftover = out.replace("***", "\0")
            if "@" not in secret and "&" not in secret:
                assert secret not in leftover, (text, out)
            # Whatever the secret holds, no 4-character piece of it that is not in the rest survives.
            for i in range(len(secret) - 5):
                piece = secret[i : i + 6]
                if piece not in text.replace(secret, ""):
                    assert piece not in out, (text, out, piece)


def test_url_secrets_of_webhooks_are_the_token_like_parts():
    assert url_secrets("https://hooks.slack.com/services/T0123ABC/B0456DEF/XyZ789secretsecret") == (
        "T0123ABC",
        "B0456DEF",
        "XyZ789secretsecret",
    )
    assert "services" not in url_secrets("https://hooks.slack.com/services/T0123ABC/B/c")
    assert url_secrets("json://user:pa55word@127.0.0.1:1/hook?token=abcdef") == (
        "user:pa55word",
        "user",
        "pa55word",
        "abcdef",
    )


@pytest.fixture
def log_text():
    """Everything logged at DEBUG, as the controller's handler (``rollouts.logs``) writes it."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    handler = configure("text", "DEBUG", stream=buffer)
    yield buffer
    root.removeHandler(handler)
    for old in handlers:
        root.addHandler(old)
    root.setLevel(level)


def test_apprise_never_logs_a_slack_webhook_secret(log_text, monkeypatch):
    from apprise.plugins.slack import NotifySlack

    # The Slack plugin posts to a closed port on loopback instead of hooks.slack.com.
    monkeypatch.setattr(NotifySlack, "webhook_url", f"http://127.0.0.1:{free_port()}/services")
    secrets = ("T0SECRET1", "B0SECRET2", "XyZ789webhookSecretPart")
    url = f"https://hooks.slack.com/services/{'/'.join(secrets)}"
    notifier = Notifier([url])
    assert not notifier.send(Notice("test/podinfo", Kind.ROLLBACK, "canary rolled back"))
    text = log_text.getvalue()
    assert "Slack POST URL: http://127.0.0.1:" in text  # apprise did log the URL ...
    for secret in secrets:
        assert secret not in text  # ... without its secret
    # The filter is on apprise's logger only while the notifier works.
    assert not [f for f in logging.getLogger("apprise").filters if isinstance(f, RedactingFilter)]


def test_a_target_apprise_refuses_is_named_without_its_secret():
    with pytest.raises(NotifyConfigError) as info:
        Notifier(["nosuchscheme://user:Secr3tPass@example.org/T0SECRET1/path?token=abcdef"])
    assert str(info.value) == "notify target nosuchscheme://example.org/... is not a URL apprise supports"


def test_the_log_handler_masks_credentials_in_any_library_record(log_text):
    logging.getLogger("git.cmd").debug("Popen(['git', 'clone', 'https://u:hunter22@h/r.git'])")
    logging.getLogger("x").warning("failed: %s", "https://h/r?access_token=abcdef123")
    text = log_text.getvalue()
    assert "hunter22" not in text and "abcdef123" not in text
    assert "https://***@h/r.git" in text and "access_token=***" in text


def test_prometheus_errors_carry_neither_password_nor_the_encoded_query():
    client = PrometheusClient(f"http://admin:hunter22@127.0.0.1:{free_port()}", attempts=1, timeout=1)
    with pytest.raises(PrometheusUnavailableError) as info:
        client.query('sum(rate(http_requests_total{app="podinfo"}[1m]))', 0)
    message = str(info.value)
    assert "hunter22" not in message and "%28" not in message and "query=" not in message
    assert message.startswith("Prometheus at http://***@127.0.0.1:")


def test_the_workspace_refuses_secret_urls_with_the_secret_masked(tmp_path):
    for url in ("https://127.0.0.1:1/r.git?access_token=abcdef123", "u:hunter22@127.0.0.1:r.git"):
        with pytest.raises(GitopsError) as info:
            Workspace(url, "main", cache_dir=tmp_path)
        assert "must not contain credentials" in str(info.value)
        assert "abcdef123" not in str(info.value) and "hunter22" not in str(info.value)


def test_loadtest_names_a_failing_target_without_its_token():
    import subprocess
    import sys

    url = f"http://127.0.0.1:{free_port()}/api?access_token=s3cretLoadToken"
    done = subprocess.run(
        [sys.executable, "-m", "loadtest", "-n", "3", "-c", "1", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "s3cretLoadToken" not in done.stdout + done.stderr
    assert "access_token=***" in done.stderr
