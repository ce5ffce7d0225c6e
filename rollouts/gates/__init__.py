"""Gates: what a rollout waits for besides the judge (Flagger-compatible webhooks, approval as a merge)."""
