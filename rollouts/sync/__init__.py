"""The sync gate: an analysis window starts only once the cluster runs the committed weights.

``SyncGate.wait(expected_weights, expected_revision, timeout) -> GateResult``, with one
implementation per place the controller runs: ``KubernetesGate`` (the live route object, Deployment
readiness, optionally Flux's applied revision; ``KubernetesSpecGate`` names its objects from a
rollout's manifests in Git) and ``LocalMeshGate`` (the local mesh's ``/status``; ``VersionProbe``
asks its GA service for ``/version``).
"""

from rollouts.sync.base import GateResult, Observation, PollingGate, SyncGate
from rollouts.sync.kubernetes import FluxKustomization, KubernetesGate, RouteTarget
from rollouts.sync.localmesh import LocalMeshGate
from rollouts.sync.rollout import KubernetesSpecGate, RepoFiles
from rollouts.sync.version import VersionProbe

__all__ = [
    "FluxKustomization",
    "GateResult",
    "KubernetesGate",
    "KubernetesSpecGate",
    "LocalMeshGate",
    "Observation",
    "PollingGate",
    "RepoFiles",
    "RouteTarget",
    "SyncGate",
    "VersionProbe",
]
