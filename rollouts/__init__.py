"""The controller: Rollout specs, route editors, the Git workspace, the cluster view, the
per-rollout state machine, the scheduler, notifications and the CLI."""
