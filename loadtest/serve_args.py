"""The command line of ``loadtest serve``, apart from the server.

argparse only: ``loadtest serve --help`` and usage errors are answered without importing Locust
(whose import monkey-patches the interpreter with gevent and costs most of the start-up). This
module must never import Locust, gevent or Flask.
"""

from __future__ import annotations

import argparse

TOKEN_ENV = "LOADTEST_TOKEN"
ALLOW_ENV = "LOADTEST_ALLOW"


def build_parser() -> argparse.ArgumentParser:
    """``loadtest serve [--host H] [--port P] [--token-file F] [--allow PATTERN ...] [--parent-pid PID]``."""
    parser = argparse.ArgumentParser(prog="loadtest serve", description="HTTP control API for load jobs.")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8089, help="port (default 8089)")
    parser.add_argument(
        "--token-file", default=None, help=f"file holding the bearer token (else ${TOKEN_ENV})"
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="PATTERN",
        help="allowed target: URL prefix or host pattern, then ';host=NAME' for each Host header it "
        f"permits; repeatable (also ${ALLOW_ENV}, comma-separated)",
    )
    parser.add_argument("--max-jobs", type=int, default=4, help="jobs running at once (default 4)")
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        metavar="PID",
        help="exit when process PID (our parent) dies: the controller's local load server",
    )
    return parser
