"""Forges: open the pull or merge request of an approval branch, find it again, read its state.

One small interface (:class:`rollouts.forge.base.Forge`), one file per forge (GitHub through
PyGithub, GitLab through python-gitlab), chosen by :func:`rollouts.forge.base.forge_for`. The
approval itself never depends on a forge: the controller waits for our commit to be reachable from
the watched branch, which works with any Git server; the request is where a person reviews it.
"""

from rollouts.forge.base import Forge, ForgeConfig, Review, forge_for
from rollouts.forge.errors import ForgeError, ForgeUnavailableError

__all__ = ["Forge", "ForgeConfig", "ForgeError", "ForgeUnavailableError", "Review", "forge_for"]
