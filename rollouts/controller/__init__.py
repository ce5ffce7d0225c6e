"""The per-rollout state machine and the scheduler that runs many of them."""
