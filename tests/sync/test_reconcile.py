"""Reconcile now through a Flux ``Receiver`` (a real HTTP server on loopback that checks the path and,
for ``generic-hmac``, the signature as notification-controller does), and the choice of reconciler
from the spec. The Receiver URL is a secret: it is never in a message or a repr."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rollouts.kube import api_client
from rollouts.spec import parse_spec
from rollouts.spec_gates import ReceiverSpec
from rollouts.sync.reconcile import (
    FluxAnnotations,
    FluxReceiver,
    LocalMeshReconcile,
    ReconcileConfigError,
    flux_objects,
    read_receiver_url,
    reconciler_for,
    watched_kustomization,
)
from tests.fixtures.gitrepo import guide_rollout

TOKEN = "receiver-token-s3cr3t"


def webhook_path(name: str, namespace: str, token: str = TOKEN) -> str:
    """notification-controller's Receiver path: /hook/ + sha256(token + name + namespace)."""
    return "/hook/" + hashlib.sha256(f"{token}{name}{namespace}".encode()).hexdigest()


@dataclass
class ReceiverServer:
    url: str
    hmac: bool = False
    fail_first: int = 0  # answer 503 this many times first
    hang: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[ReceiverServer]:
    path = webhook_path("flux-system", "flux-system")
    server = ReceiverServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            server.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if server.hang:
                time.sleep(server.hang)
            status = 200
            if self.path != path:
                status = 404
            elif server.fail_first > 0:
                server.fail_first -= 1
                status = 503
            elif server.hmac:
                want = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
                status = 200 if hmac.compare_digest(self.headers.get("X-Signature", ""), want) else 401
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _no_secret(text: str, server: ReceiverServer) -> None:
    assert server.url.rsplit("/", 1)[-1] not in text and TOKEN not in text


def test_generic_receiver_is_called(receiver: ReceiverServer) -> None:
    hook = FluxReceiver(receiver.url)
    outcome = hook.reconcile_now()
    assert outcome.ok and outcome.detail.endswith("/hook/***: HTTP 200")
    assert len(receiver.calls) == 1 and receiver.calls[0]["headers"]["Content-Type"] == "application/json"
    _no_secret(outcome.detail + repr(hook), receiver)


def test_hmac_receiver_signs_the_body(receiver: ReceiverServer) -> None:
    receiver.hmac = True
    assert FluxReceiver(receiver.url, kind="generic-hmac", token=TOKEN).reconcile_now().ok
    wrong = FluxReceiver(receiver.url, kind="generic-hmac", token="not-the-token").reconcile_now()
    assert not wrong.ok and "HTTP 401" in wrong.detail
    with pytest.raises(ReconcileConfigError, match="needs its token"):
        FluxReceiver(receiver.url, kind="generic-hmac")


def test_transient_failures_are_retried_and_bounded(receiver: ReceiverServer) -> None:
    receiver.fail_first = 2
    assert FluxReceiver(receiver.url, backoff=0.01).reconcile_now().ok and len(receiver.calls) == 3
    receiver.calls.clear()
    receiver.fail_first = 10
    outcome = FluxReceiver(receiver.url, backoff=0.01, attempts=3).reconcile_now()
    assert not outcome.ok and "HTTP 503 after 3 attempts" in outcome.detail and len(receiver.calls) == 3
    _no_secret(outcome.detail, receiver)


def test_a_hanging_receiver_times_out(receiver: ReceiverServer) -> None:
    receiver.hang = 1.0
    outcome = FluxReceiver(receiver.url, timeout=0.2, attempts=2, backoff=0.01).reconcile_now()
    assert not outcome.ok and "no answer in 0.2s after 2 attempts" in outcome.detail
    assert outcome.seconds < 1.5


def test_a_wrong_path_and_an_unreachable_receiver(receiver: ReceiverServer) -> None:
    wrong = receiver.url.rsplit("/", 1)[0] + "/" + "0" * 64
    outcome = FluxReceiver(wrong).reconcile_now()
    assert not outcome.ok and "HTTP 404 (is the Receiver's path right?)" in outcome.detail
    assert "0" * 64 not in outcome.detail
    down = FluxReceiver("http://127.0.0.1:9/hook/abc", attempts=2, backoff=0.01).reconcile_now()
    assert not down.ok and "ConnectionError after 2 attempts" in down.detail


def test_receiver_from_files(receiver: ReceiverServer, tmp_path: Path) -> None:
    url_file, token_file = tmp_path / "url", tmp_path / "token"
    url_file.write_text(receiver.url + "\n")
    token_file.write_text(TOKEN + "\n")
    receiver.hmac = True
    spec = ReceiverSpec.model_validate(
        {"urlFile": str(url_file), "type": "generic-hmac", "tokenFile": str(token_file)}
    )
    assert FluxReceiver.from_spec(spec).reconcile_now().ok
    url_file.write_text("not a url\n")
    with pytest.raises(ReconcileConfigError, match=r"urlFile: .*url must hold one http\(s\) URL") as caught:
        read_receiver_url(str(url_file))
    assert "not a url" not in str(caught.value)
    with pytest.raises(ReconcileConfigError, match="cannot read"):
        read_receiver_url(str(tmp_path / "missing"))


def _rollout(**flux: Any):
    return parse_spec(guide_rollout("/tmp/repo", flux=flux))


def test_the_spec_chooses_the_reconciler(tmp_path: Path, receiver: ReceiverServer) -> None:
    from tests.kube.fluxapi import serve

    (tmp_path / "url").write_text(receiver.url)
    api_gen = serve(tmp_path)
    flux_api = next(api_gen)
    try:
        api = api_client(str(flux_api.kubeconfig))
        plain = _rollout()
        # The process flag is the default Kustomization; the spec's wins.
        assert watched_kustomization(plain, ("flux-system", "apps")) == ("flux-system", "apps")
        assert watched_kustomization(plain) is None
        own = _rollout(
            kustomization={"name": "podinfo", "namespace": "test"}, gitRepository={"name": "flux-system"}
        )
        assert watched_kustomization(own, ("flux-system", "apps")) == ("test", "podinfo")
        assert [str(o) for o in flux_objects(own)] == [
            "GitRepository flux-system/flux-system",
            "Kustomization test/podinfo",
        ]
        assert reconciler_for(plain, api=api) is None  # nothing to annotate
        chosen = reconciler_for(plain, api=api, default_kustomization=("flux-system", "apps"))
        assert isinstance(chosen, FluxAnnotations)
        assert chosen.reconcile_now().ok
        assert reconciler_for(_rollout(reconcile="none"), api=api) is None
        by_receiver = reconciler_for(
            _rollout(reconcile="receiver", receiver={"urlFile": str(tmp_path / "url")})
        )
        assert isinstance(by_receiver, FluxReceiver) and by_receiver.reconcile_now().ok
        assert isinstance(reconciler_for(plain, local_mesh="http://127.0.0.1:1"), LocalMeshReconcile)
    finally:
        api_gen.close()
