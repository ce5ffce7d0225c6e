"""``PrometheusClient`` messages never carry the password of a basic-auth URL."""

from __future__ import annotations

import pytest

from analyzer.prometheus import PrometheusClient, PrometheusUnavailableError, redact_url
from tests.support import free_port


def test_unreachable_prometheus_message_has_no_password() -> None:
    """Regression: ``http://user:secret@host`` went into the error (logs, notifications, report pages)."""
    port = free_port()
    client = PrometheusClient(f"http://reader:s3cret@127.0.0.1:{port}", timeout=1, attempts=1)
    with pytest.raises(PrometheusUnavailableError) as exc:
        client.query("up", 0)
    assert "s3cret" not in str(exc.value)
    assert f"Prometheus at http://***@127.0.0.1:{port} did not answer" in str(exc.value)


def test_redact_url_leaves_urls_without_credentials_alone() -> None:
    assert redact_url("at http://127.0.0.1:9090", "http://127.0.0.1:9090") == "at http://127.0.0.1:9090"
    assert redact_url("a https://u:p@h/ b", "https://u:p@h") == "a https://***@h/ b"
