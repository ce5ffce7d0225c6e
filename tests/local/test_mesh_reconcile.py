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


def test_a_reconciling_workspace_pokes_the_mesh_after_each_push(tmp_path):
    from rollouts.gitops import Workspace
    from rollouts.routes import Weights
    from rollouts.spec import parse_spec
    from rollouts.sync.reconcile import ReconcilingWorkspace
    from tests.fixtures.gitrepo import guide_rollout
    from tests.local.lonemesh import ROUTE

    require_binary("git")
    with lone_mesh(tmp_path, poll_interval=3600) as mesh:
        spec = parse_spec(
            guide_rollout(
                str(mesh.remote.bare),
                route={"kind": "VirtualService", "path": ROUTE, "stable": "ga", "canary": "canary"},
            )
        )
        inner = Workspace(str(mesh.remote.bare), "master", cache_dir=tmp_path / "cache")
        with ReconcilingWorkspace(inner, LocalMeshReconcile(mesh.admin_url), key=spec.key) as ws:
            result = ws.set_weights(spec, Weights(60, 40), verdict="manual")
            assert result.changed and ws.last is not None and ws.last.ok
            assert mesh.status()["revision"] == result.sha  # applied at once, not after an hour
            ws.last = None
            assert not ws.set_weights(spec, Weights(60, 40), verdict="manual").changed
            assert ws.last is None  # nothing pushed: nothing to reconcile
            assert ws.remote == inner.remote  # everything else passes through
