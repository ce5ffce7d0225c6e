"""The embedded single-machine stack: a podinfo-compatible service, the local mesh (Istio plus Flux
on one machine), a real Prometheus started with a generated config, and :class:`LocalStack`, which
starts them all together for the demo and the integration tests.

Every part runs in its own process group on 127.0.0.1 and is stopped by its context manager.
"""
