"""Git plumbing: fetch, read, commit, push with bounded retries, lock; spec discovery.

The controller calls :class:`Workspace` (``read_state``, ``commit_weights``, ``record``); what the commits
say and what the history means is :mod:`rollouts.state`'s. The local mesh only needs
:mod:`rollouts.routes`.
"""

from rollouts.gitops.credentials import (
    Credentials,
    add_credential_arguments,
    check_remote_url,
    credentials_from_arguments,
    redact,
)
from rollouts.gitops.discovery import discover, discover_all
from rollouts.gitops.errors import (
    BranchProtectedError,
    CredentialError,
    DiscoveryError,
    GitError,
    GitopsError,
    HumanOverrideError,
    ManifestError,
    PushRejectedError,
    RemoteUrlError,
    RepoFileError,
    SigningError,
)
from rollouts.gitops.manifest import canary_images, copy_images, image_tag, revision_of
from rollouts.gitops.workspace import (
    CommitResult,
    FileEdit,
    LogEntry,
    RecordResult,
    Workspace,
    default_cache_dir,
)
from rollouts.state import RECORD_VERDICTS, WEIGHT_VERDICTS, Record, RolloutState, format_message

__all__ = [
    "RECORD_VERDICTS",
    "WEIGHT_VERDICTS",
    "BranchProtectedError",
    "CommitResult",
    "CredentialError",
    "Credentials",
    "DiscoveryError",
    "FileEdit",
    "GitError",
    "GitopsError",
    "HumanOverrideError",
    "LogEntry",
    "ManifestError",
    "PushRejectedError",
    "Record",
    "RecordResult",
    "RemoteUrlError",
    "RepoFileError",
    "RolloutState",
    "SigningError",
    "Workspace",
    "add_credential_arguments",
    "canary_images",
    "check_remote_url",
    "copy_images",
    "credentials_from_arguments",
    "default_cache_dir",
    "discover",
    "discover_all",
    "format_message",
    "image_tag",
    "redact",
    "revision_of",
]
