"""The gates' sections of the Rollout spec: signing our commits, telling Flux, and Flagger-style webhooks.

```yaml
spec:
  git:
    signing: {format: ssh, key: /etc/rollouts/signing/id_ed25519}   # or {format: openpgp, key: KEYID}
  flux:
    kustomization: {namespace: flux-system, name: apps}   # the sync gate waits for it to apply our commit
    gitRepository: {namespace: flux-system, name: flux-system}
    reconcile: annotate            # annotate | receiver | none: ask Flux to fetch now after each push
    receiver: {urlFile: /var/run/secrets/flux/receiver-url}            # reconcile: receiver
  approval:                        # Git-native gates: the step's commit goes on a branch of ours
    confirmTrafficIncrease: [60]   # weights whose step waits for that branch to be merged
    confirmPromotion: true         # the promotion (last step, finalize) waits for a merge
    forge: {kind: github, repository: org/cluster, tokenFile: /var/run/secrets/forge/token}
  webhooks:                        # Flagger's analysis.webhooks: same types and payload
  - {name: acceptance, type: pre-rollout, url: http://loadtester.test/hooks/acceptance, timeout: 30s}
  - {name: gate, type: confirm-promotion, url: http://loadtester.test/gate/check}
```

Kept apart from :mod:`rollouts.spec` so the gates can grow without touching the core spec; the
core spec embeds these models. Same rules: unknown keys are errors, values are strict, errors name the
field. Nothing here reads a file or the network: secrets (a receiver URL, an HMAC token) are named by
file and read by the module that uses them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from rollouts.spec_controller import Duration
from rollouts.spec_model import SpecModel as _Model  # the spec's rules, in one place

# Flagger's HookType values (pkg/apis/flagger/v1beta1/canary.go), all of them.
HookType = Literal[
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "post-rollout",
    "rollback",
    "event",
]
HOOK_TYPES: tuple[str, ...] = HookType.__args__  # type: ignore[attr-defined]
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonEmpty = Annotated[str, AfterValidator(_non_empty)]


class SigningSpec(_Model):
    """How our commits are signed; a key that cannot sign stops the controller at start-up.

    ``ssh``: ``key`` is the private key file (Git's ``gpg.format=ssh``; verify with an allowed-signers
    file). ``openpgp``: ``key`` is the GnuPG key id or fingerprint in the controller's keyring.
    """

    format: Literal["ssh", "openpgp"] = Field(
        default="ssh", description="`ssh` (an SSH key file) or `openpgp` (a GnuPG key)."
    )
    key: NonEmpty = Field(description="The SSH private key file, or the GnuPG key id or fingerprint.")
    program: NonEmpty | None = Field(
        default=None,
        description="The signing program (Git's `gpg.ssh.program` or `gpg.program`); default "
        "`ssh-keygen` or `gpg`.",
    )


class ObjectName(_Model):
    """A namespaced Kubernetes object."""

    namespace: str = Field(default="flux-system", description="Namespace of the object.")
    name: str = Field(description="Name of the object.")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if len(value) > 63 or not _DNS_LABEL.match(value):
            raise ValueError("must be a DNS-1123 label (lower case letters, digits and '-')")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
            raise ValueError("must be a DNS-1123 name (lower case letters, digits, '-' and '.')")
        return value


class ReceiverSpec(_Model):
    """A Flux notification-controller ``Receiver``: its full webhook URL is a secret, kept in a file."""

    url_file: NonEmpty = Field(
        alias="urlFile",
        description="File holding the Receiver's webhook URL (the notification-controller address plus "
        "the Receiver's `status.webhookPath`).",
    )
    type: Literal["generic", "generic-hmac"] = Field(
        default="generic", description="The Receiver's type: `generic` or `generic-hmac`."
    )
    token_file: NonEmpty | None = Field(
        default=None,
        alias="tokenFile",
        description="File holding the Receiver's token (`generic-hmac`: signs the payload).",
    )

    @model_validator(mode="after")
    def _hmac(self) -> ReceiverSpec:
        if self.type == "generic-hmac" and self.token_file is None:
            raise ValueError("type generic-hmac needs tokenFile (the Receiver's token)")
        return self


class FluxSpec(_Model):
    """Which Flux objects apply this rollout's repo, and how to ask Flux to apply a push now."""

    kustomization: ObjectName | None = Field(
        default=None,
        description="The Kustomization that applies the route: the sync gate waits for it to report "
        "our commit as applied (default: the controller's `--flux-kustomization`).",
    )
    git_repository: ObjectName | None = Field(
        default=None,
        alias="gitRepository",
        description="The GitRepository Flux fetches the repo with (annotated with the Kustomization).",
    )
    reconcile: Literal["annotate", "receiver", "none"] = Field(
        default="annotate",
        description="After each push: `annotate` the GitRepository and Kustomization with "
        "`reconcile.fluxcd.io/requestedAt` (as `flux reconcile` does), call the `receiver`, or `none` "
        "(wait for Flux's own interval).",
    )
    receiver: ReceiverSpec | None = Field(default=None, description="The Receiver for `reconcile: receiver`.")

    @model_validator(mode="after")
    def _receiver(self) -> FluxSpec:
        if self.reconcile == "receiver" and self.receiver is None:
            raise ValueError("reconcile receiver needs receiver (its urlFile)")
        return self


class WebhookSpec(_Model):
    """One Flagger-compatible webhook (Flagger's ``analysis.webhooks[]``, same field names)."""

    name: NonEmpty = Field(description="Name of the webhook (in logs, status and notifications).")
    type: HookType = Field(
        description="When it is called and what its answer means: `confirm-rollout`, `pre-rollout`, "
        "`rollout`, `confirm-traffic-increase`, `confirm-promotion`, `post-rollout`, `rollback`, `event`."
    )
    url: NonEmpty = Field(description="The URL the payload is POSTed to (http or https).")
    timeout: Duration = Field(default=10.0, description="Timeout of one call (Flagger's default 10s).")
    retries: int = Field(
        default=0, ge=0, le=10, description="Retries on connection errors, 429 and 5xx (Flagger's `retries`)."
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Key-value pairs sent in the payload's `metadata`."
    )
    mute_alert: bool = Field(
        default=False, alias="muteAlert", description="Send no notification when this webhook holds."
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        if re.match(r"^https?://[^/@]*@", value):
            raise ValueError("must not contain credentials")
        return value


class ForgeSpec(_Model):
    """Where pull or merge requests are opened for approval branches (optional: any Git server
    works without one; a merge is the approval)."""

    kind: Literal["github", "gitlab"] = Field(description="`github` (PyGithub) or `gitlab` (python-gitlab).")
    repository: NonEmpty = Field(
        description="`owner/name` (GitHub) or `group/project` (GitLab) of the repository Flux applies."
    )
    url: NonEmpty | None = Field(
        default=None,
        description="API base URL (default `https://api.github.com`, `https://gitlab.com`; GitHub "
        "Enterprise: `https://HOST/api/v3`).",
    )
    token_file: NonEmpty | None = Field(
        default=None, alias="tokenFile", description="File holding the API token."
    )
    token_env: NonEmpty | None = Field(
        default=None, alias="tokenEnv", description="Environment variable holding the API token."
    )
    auto_merge: bool = Field(
        default=False,
        alias="autoMerge",
        description="Ask the forge to merge the request once its required checks pass.",
    )
    merge_method: Literal["merge", "squash", "rebase"] = Field(
        default="merge", alias="mergeMethod", description="Merge method for `autoMerge`."
    )

    @model_validator(mode="after")
    def _token(self) -> ForgeSpec:
        if self.token_file is None and self.token_env is None:
            raise ValueError("needs tokenFile or tokenEnv (the API token)")
        return self


class ApprovalSpec(_Model):
    """Approval as a merge: which steps wait for a merge of our branch (Flagger's gate names).

    A gated step's commit goes to ``<branchPrefix>/<namespace>/<name>/<revision>/step-<n>``; the step
    begins once that change is reachable from the watched branch (any merge strategy), and a request
    closed unmerged or a branch deleted is a rollback.
    """

    confirm_rollout: bool = Field(
        default=False, alias="confirmRollout", description="The first step (the start) waits for a merge."
    )
    confirm_traffic_increase: bool | list[int] = Field(
        default=False,
        alias="confirmTrafficIncrease",
        description="The steps (weights, e.g. `[60]`) that wait for a merge; `true`: every step "
        "after the first.",
    )
    confirm_promotion: bool = Field(
        default=False,
        alias="confirmPromotion",
        description="The promotion (the last step, and `finalize: promote-ga`) waits for a merge.",
    )
    branch_prefix: NonEmpty = Field(
        default="rollouts", alias="branchPrefix", description="First part of our approval branches' names."
    )
    protected_branch: bool = Field(
        default=False,
        alias="protectedBranch",
        description="The watched branch refuses direct pushes: every commit of ours goes by a branch "
        "(and a request), and waits for its merge.",
    )
    direct_rollback: bool = Field(
        default=True,
        alias="directRollback",
        description="Push rollbacks directly even with `protectedBranch` (allow the controller to; "
        "see docs/gitops.md), so a rollback never waits for a review; `false`: rollbacks go by a "
        "branch and request too, and the rollout holds until it is merged (as slow as a merge).",
    )
    forge: ForgeSpec | None = Field(default=None, description="Open pull or merge requests there.")

    @field_validator("branch_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if (
            not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*", value)
            or ".." in value
        ):
            raise ValueError("must be a plain branch-name prefix (letters, digits, '.', '_', '-', '/')")
        return value

    @field_validator("confirm_traffic_increase")
    @classmethod
    def _weights(cls, value: bool | list[int]) -> bool | list[int]:
        if isinstance(value, list) and any(not 1 <= w <= 100 for w in value):
            raise ValueError("weights are between 1 and 100")
        return value
