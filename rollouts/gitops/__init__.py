"""The Git workspace: fetch, edit, commit with trailers, push with bounded retries; state from Git.

The controller calls :class:`Workspace` (``read_state``, ``set_weights``, ``record``); the local mesh
only needs :mod:`rollouts.routes`.
"""

from rollouts.gitops.credentials import (
    CredentialError,
    Credentials,
    RemoteUrlError,
    add_credential_arguments,
    check_remote_url,
    credentials_from_arguments,
    redact,
)
from rollouts.gitops.manifest import ManifestError, canary_images, copy_images, image_tag, revision_of
from rollouts.gitops.workspace import (
    RECORD_VERDICTS,
    WEIGHT_VERDICTS,
    CommitResult,
    GitopsError,
    HumanOverrideError,
    PushRejectedError,
    Record,
    RecordResult,
    RolloutState,
    RouteFileError,
    Workspace,
    default_cache_dir,
    format_message,
)

__all__ = [
    "RECORD_VERDICTS",
    "WEIGHT_VERDICTS",
    "CommitResult",
    "CredentialError",
    "Credentials",
    "GitopsError",
    "HumanOverrideError",
    "ManifestError",
    "PushRejectedError",
    "Record",
    "RecordResult",
    "RemoteUrlError",
    "RolloutState",
    "RouteFileError",
    "Workspace",
    "add_credential_arguments",
    "canary_images",
    "check_remote_url",
    "copy_images",
    "credentials_from_arguments",
    "default_cache_dir",
    "format_message",
    "image_tag",
    "redact",
    "revision_of",
]
