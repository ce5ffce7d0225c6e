"""Grafana dashboards for gitops-rollouts, as code.

``python -m grafana.build`` writes ``grafana/dashboards/*.json`` from :mod:`grafana.dashboards`;
the JSON is committed so that Grafana can provision it without Python, and a test checks that the
committed files are exactly what the code generates.
"""
