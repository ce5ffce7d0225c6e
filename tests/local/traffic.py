"""Requests through the local mesh, counted by the subset that answered (for tests of the stack)."""

from __future__ import annotations

import collections
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from rollouts.local.mesh import SUBSET_HEADER
from rollouts.local.stack import LocalStack


def send(stack: LocalStack, paths: list[str], concurrency: int = 4) -> collections.Counter[tuple[str, int]]:
    """GET each of ``paths`` through the mesh; how often each (subset header, status) came back."""

    def one(path: str) -> tuple[str, int]:
        try:
            with urllib.request.urlopen(stack.mesh_url + path, timeout=10) as response:
                return response.headers[SUBSET_HEADER], response.status
        except urllib.error.HTTPError as error:
            return error.headers[SUBSET_HEADER], error.code

    with ThreadPoolExecutor(concurrency) as pool:
        return collections.Counter(pool.map(one, paths))
