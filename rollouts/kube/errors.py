"""What can go wrong talking to Kubernetes: no usable cluster configuration, or a live route object
whose weights cannot be read."""

from __future__ import annotations


class KubeConfigError(RuntimeError):
    """No usable cluster configuration; the message says what was tried."""


class LiveRouteError(ValueError):
    """The live route object lacks the stable or canary destination, or its weights are unusable."""
