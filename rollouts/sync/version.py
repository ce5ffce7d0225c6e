"""GA's readiness on one machine: the GA service's ``/version`` names the tag of its manifest.

``finalize: promote-ga`` waits until GA runs the canary's images before routing the traffic back.
In a cluster the Deployment says so (``rollouts.sync.rollout``); on the local stack (beside the
local mesh's gate, :mod:`rollouts.sync.localmesh`) the service itself does: podinfo's ``/version``.
Here and not in ``rollouts.local``: the controller uses it, and the local stack's package sits above
the controller (it holds the demo). It must never send anything but one GET to the given URL.
"""

from __future__ import annotations

import requests

from analyzer.redaction import redact
from rollouts.gitops import revision_of
from rollouts.spec import Rollout
from rollouts.state import RolloutState


class VersionProbe:
    """``finalize: promote-ga`` on one machine: the GA service's ``/version`` (podinfo's) names the
    tag of the GA manifest's first image."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url, self.timeout = url.rstrip("/") + "/version", timeout

    def ga_ready(self, rollout: Rollout, state: RolloutState) -> tuple[bool, str]:
        """GET ``/version`` and compare."""
        assert state.ga_images is not None
        wanted = revision_of(state.ga_images)
        try:
            answer = requests.get(self.url, timeout=self.timeout)
            answer.raise_for_status()
            version = str(answer.json().get("version"))
        except (requests.RequestException, ValueError, AttributeError) as exc:
            return False, redact(f"GA {self.url} unreadable: {exc}")
        return version == wanted, f"GA {self.url} answers version {version}"
