"""The thin Kubernetes layer: configuration, live route weights, Deployment readiness, Events and a
Lease-based leader elector.

Everything here is a small function or class over the official ``kubernetes`` client, holding its own
``ApiClient`` (never the process-global default configuration), so that it can be pointed at any API
server, including the recorded-response server the tests run on loopback.
"""

from rollouts.kube.client import ObjectRef, api_client
from rollouts.kube.errors import KubeConfigError, LiveRouteError
from rollouts.kube.events import EventRecorder
from rollouts.kube.lease import LeaderElector, LeaseConfig
from rollouts.kube.readiness import Readiness, deployment_readiness
from rollouts.kube.routes import ROUTE_APIS, read_live_weights, weights_of

__all__ = [
    "ROUTE_APIS",
    "EventRecorder",
    "KubeConfigError",
    "LeaderElector",
    "LeaseConfig",
    "LiveRouteError",
    "ObjectRef",
    "Readiness",
    "api_client",
    "deployment_readiness",
    "read_live_weights",
    "weights_of",
]
