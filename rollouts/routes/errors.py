"""What can go wrong editing a route: a route file whose weights cannot be read or written."""

from __future__ import annotations


class RouteError(ValueError):
    """A route file that cannot be read or written; the message names the file, route and subset."""
