"""The local mesh's ``POST /reconcile``: a push is applied at once instead of at the next poll."""

from __future__ import annotations

import time

import pytest

from rollouts.sync.reconcile import LocalMeshReconcile
from tests.local.lonemesh import lone_mesh
from tests.support import require_binary

pytestmark = pytest.mark.integration


def test_reconcile_applies_a_push_before_the_next_poll(tmp_path):
    require_binary("git")
    with lone_mesh(tmp_path, poll_interval=3600) as mesh:
        first = mesh.status()["revision"]
        sha = mesh.push_weight(30)
        time.sleep(0.5)
        assert mesh.status()["revision"] == first  # the hour-long poll has not seen it
        outcome = LocalMeshReconcile(mesh.admin_url).reconcile_now()
        assert outcome.ok and outcome.detail == "local mesh: HTTP 200"
        status = mesh.status()
        assert status["revision"] == sha and status["weights"] == {"stable": 70, "canary": 30}
    # A mesh that is gone is reported, not raised.
    down = LocalMeshReconcile(mesh.admin_url, timeout=0.5).reconcile_now()
    assert not down.ok and "ConnectionError" in down.detail
