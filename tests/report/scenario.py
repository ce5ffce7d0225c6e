"""What the report tests and their scenario share: the spec template, the human's hostile subject,
the evidence our commits carry."""

from __future__ import annotations

SPEC = """apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {{name: podinfo, namespace: test}}
spec:
  git: {{url: {url}, branch: master}}
  route: {{kind: VirtualService, path: {route}, stable: ga, canary: canary}}
  canary: {{path: {canary}}}
  steps: [10, 60, 100]
  analysis: {{interval: 1s}}
"""
HUMAN_SUBJECT = 'Roll back <script>alert("pwned")</script> & stop'
EVIDENCE_JSON = '{"latency.e_harm": 0.42, "errors.e_safety": 25.0, "canary.requests": 31}'
