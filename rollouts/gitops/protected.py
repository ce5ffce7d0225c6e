"""A push the server refused because the branch is protected, told apart from every other failure.

Forges and server-side hooks refuse pushes to a protected branch with their own words: GitHub
("GH006: Protected branch update failed", "GH013: Repository rule violations"), GitLab ("You are not
allowed to push code to protected branches"), Gitea/Forgejo ("protected branch"), Bitbucket, or a
plain ``pre-receive`` hook ("pre-receive hook declined"). Such a refusal is not a race (retrying on a
new head cannot help) and not a broken credential: it means our commit must go by a branch of ours
and a pull request (docs/gitops.md, "Protected branches"). :func:`is_protected_refusal` recognises
it; :class:`BranchProtectedError` carries it, naming the branch and what the server said.

It must never decide what to do about it: the controller's configuration does.
"""

from __future__ import annotations

import re

from rollouts.gitops.errors import BranchProtectedError

__all__ = ["BranchProtectedError", "is_protected_refusal"]  # the error lives in gitops.errors

_REFUSALS = re.compile(
    r"GH006|GH013|protected branch|pre-receive hook declined|not allowed to push code to protected|"
    r"push declined due to repository rule|denied by protection|refusing to update protected",
    re.IGNORECASE,
)


def is_protected_refusal(detail: str) -> bool:
    """True when Git's push output says the server refused the branch update itself."""
    return bool(_REFUSALS.search(detail))
