"""`rollouts run` and the gates: per-rollout Flux Kustomization, reconcile now after each push, and
every gate setting (protected branches with rollbacks by pull request and promote-ga included) built
into the rollout's machine."""

from __future__ import annotations

from pathlib import Path

from rollouts.controller.run import Controller, Options
from rollouts.kube.flux import ANNOTATION
from rollouts.routes import Weights
from rollouts.state import WeightChange
from rollouts.sync import FluxKustomization
from rollouts.sync.reconcile import FluxAnnotations, LocalMeshReconcile, ReconcilingWorkspace
from tests.controller.machinery import rollout_spec
from tests.fixtures.gitrepo import Remote
from tests.kube.fluxapi import serve as serve_flux

KUSTOMIZATION = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps"


def test_every_gate_setting_runs_with_its_gates(remote: Remote, tmp_path: Path) -> None:
    controller = Controller(Options(mesh="http://127.0.0.1:9", cache_dir=tmp_path / "cache"))
    by_request = rollout_spec(
        str(remote.bare),
        approval={"protectedBranch": True, "directRollback": False},
        finalize={"action": "promote-ga", "gaPath": "workloads/podinfo/ga-deployment.yaml"},
    )
    assert controller.apply([by_request]) == []
    proposals = controller.machine(by_request).gates.proposals  # type: ignore[union-attr]
    assert proposals is not None and proposals.applies("rollback") and proposals.applies("ga-image")
    direct = rollout_spec(str(remote.bare), approval={"protectedBranch": True})
    assert not controller.machine(direct).gates.proposals.applies("rollback")  # type: ignore[union-attr]
    gated = rollout_spec(
        str(remote.bare),
        approval={"confirmPromotion": True},
        webhooks=[
            {"name": "g", "type": "confirm-promotion", "url": "http://h/"},
            *({"name": t, "type": t, "url": "http://h/"} for t in ("rollout", "post-rollout", "event")),
        ],
    )
    assert controller.apply([gated]) == []
    assert controller.machine(gated).gates is not None
    assert controller.machine(rollout_spec(str(remote.bare))).gates is None


def test_the_rollouts_kustomization_is_watched_and_told_to_reconcile(remote: Remote, tmp_path: Path) -> None:
    flux_api = serve_flux(tmp_path)
    running = next(flux_api)
    try:
        options = Options(
            kubernetes=True,
            kubeconfig=str(running.kubeconfig),
            cache_dir=tmp_path / "cache",
            flux=FluxKustomization("flux-system", "default-one"),
        )
        controller = Controller(options)
        spec = rollout_spec(
            str(remote.bare),
            flux={"kustomization": {"name": "apps"}, "gitRepository": {"name": "flux-system"}},
        )
        machine = controller.machine(spec)
        assert machine.gate._flux == FluxKustomization("flux-system", "apps")  # the spec's, not the flag's
        workspace = machine.workspace
        assert isinstance(workspace, ReconcilingWorkspace) and isinstance(
            workspace.reconciler, FluxAnnotations
        )
        result = workspace.commit_weights(spec, WeightChange(Weights(40, 60), "manual"))
        assert result.changed and workspace.last is not None and workspace.last.ok
        assert ANNOTATION in running.state.objects[KUSTOMIZATION]["metadata"]["annotations"]
        # Without the spec's, the flag's Kustomization is watched.
        plain = controller.machine(rollout_spec(str(remote.bare)))
        assert plain.gate._flux == FluxKustomization("flux-system", "default-one")
    finally:
        flux_api.close()


def test_on_the_local_mesh_the_mesh_is_told(remote: Remote, tmp_path: Path) -> None:
    controller = Controller(Options(mesh="http://127.0.0.1:9", cache_dir=tmp_path / "cache"))
    workspace = controller.machine(rollout_spec(str(remote.bare))).workspace
    assert isinstance(workspace, ReconcilingWorkspace) and isinstance(
        workspace.reconciler, LocalMeshReconcile
    )
    none = controller.machine(rollout_spec(str(remote.bare), flux={"reconcile": "none"})).workspace
    assert not isinstance(none, ReconcilingWorkspace)
