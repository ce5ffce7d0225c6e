"""The whole single-machine stack as one context manager: what the demo and the tests start.

:class:`LocalStack` creates a bare Git repository holding the route file (the guide's layout: a
VirtualService ``podinfo`` in namespace ``test`` with subsets ``ga`` and ``canary``), starts the GA
and canary podinfo-compatible services, the mesh following the repository, and a real Prometheus
scraping all of them every second. Every process runs in its own process group and is stopped, and
every temporary file removed, when the ``with`` block ends (or when the parent dies).

>>> with LocalStack(StackConfig(canary_weight=10)) as stack:  # doctest: +SKIP
...     stack.mesh_url, stack.status_url, stack.prometheus_url, stack.repo_url
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from rollouts.local.errors import ProcessError
from rollouts.local.mesh import Destination, MeshConfig, SegmentLabel, ServicePort
from rollouts.local.process import ChildProcess, free_port, python_module
from rollouts.local.prometheus import PrometheusServer, ScrapeTarget
from rollouts.routes.base import RouteEditor, Weights

GIT_AUTHOR = ("rollouts local stack", "local-stack@rollouts.invalid")


def guide_virtual_service(
    canary_weight: int = 0, *, namespace: str = "test", service: str = "podinfo"
) -> str:
    """The guide's VirtualService with both destinations, ``canary_weight`` percent to the canary."""
    weights = Weights.for_canary(canary_weight)
    return f"""\
# Traffic split between the GA and the canary podinfo: the rollouts controller edits the weights.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {service}
  namespace: {namespace}
spec:
  hosts:
  - {service}
  http:
  - route:
    - destination:
        host: {service}
        subset: ga
      weight: {weights.stable}
    - destination:
        host: {service}
        subset: canary
      weight: {weights.canary}
"""


@dataclass(frozen=True)
class ServiceOptions:
    """One podinfo-compatible service: the version it reports and extra podinfo flags."""

    version: str = "6.5.0"
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackConfig:
    """What :class:`LocalStack` starts. Defaults follow the guide (namespace ``test``, ``podinfo``)."""

    namespace: str = "test"
    service: str = "podinfo"
    ga: ServiceOptions = field(default_factory=ServiceOptions)
    canary: ServiceOptions = field(default_factory=lambda: ServiceOptions(version="6.5.1"))
    canary_weight: int = 0
    route_path: str = "workloads/podinfo/virtual-service.yaml"
    route_text: str | None = None  # default: guide_virtual_service(canary_weight)
    route_kind: Literal["VirtualService", "HTTPRoute", "TrafficSplit"] = "VirtualService"
    route_name: str | None = None  # the mesh's spec.route.name (a file with several split routes)
    branch: str = "master"
    poll_interval: float = 1.0
    scrape_interval: float = 1.0
    start_timeout: float = 30.0
    # More endpoints for Prometheus from the start (the controller's /metrics): no discovery delay.
    extra_targets: tuple[ScrapeTarget, ...] = ()
    # A label the mesh adds to its Istio metrics from the request (the A/B segment), if any.
    segment_label: SegmentLabel | None = None


class LocalStack:
    """Prometheus, GA and canary services, the mesh and a bare Git repo, started and stopped together."""

    def __init__(self, config: StackConfig | None = None, *, workdir: Path | None = None) -> None:
        self.config = config or StackConfig()
        self._parent_dir = workdir
        self._dir: Path | None = None
        self._children: list[ChildProcess] = []
        self.prometheus: PrometheusServer | None = None
        self.ports: dict[str, int] = {}

    # -- addresses -----------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The stack's temporary directory: repo, logs, configs."""
        if self._dir is None:
            raise RuntimeError("the stack is not running")
        return self._dir

    @property
    def repo_path(self) -> Path:
        """The bare repository Flux would follow (the Git remote)."""
        return self.directory / "remote.git"

    @property
    def repo_url(self) -> str:
        """URL of the remote for ``git clone`` and the controller's workspace."""
        return self.repo_path.as_uri()

    def _url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def mesh_url(self) -> str:
        """Where traffic goes in (the service's address, as Istio's gateway would be)."""
        return self._url("mesh")

    @property
    def mesh_admin_url(self) -> str:
        """The mesh's admin port: ``/status``, ``/metrics``."""
        return self._url("mesh-admin")

    @property
    def status_url(self) -> str:
        """The mesh's ``/status`` (what the sync gate reads)."""
        return self.mesh_admin_url + "/status"

    @property
    def ga_url(self) -> str:
        """The GA service, directly."""
        return self._url("ga")

    @property
    def canary_url(self) -> str:
        """The canary service, directly."""
        return self._url("canary")

    @property
    def preview_url(self) -> str:
        """The canary's own Service (blue/green's preview Service, ``podinfo-preview``): every
        request to the canary, reported with that ``destination_service_name``."""
        return self._url("preview")

    @property
    def preview_service(self) -> str:
        """The name of the preview Service."""
        return f"{self.config.service}-preview"

    @property
    def stable_service_url(self) -> str:
        """GA's own Service (``podinfo-stable``): every request to GA (blue/green's analysis after
        the switch loads GA there)."""
        return self._url("stable-service")

    @property
    def stable_service(self) -> str:
        """The name of GA's own Service."""
        return f"{self.config.service}-stable"

    @property
    def prometheus_url(self) -> str:
        """Prometheus' base URL."""
        if self.prometheus is None:
            raise RuntimeError("the stack is not running")
        return self.prometheus.url

    def workload(self, subset: str) -> str:
        """The workload (Deployment) name of ``subset`` (``ga`` or ``canary``): ``podinfo-ga``."""
        return f"{self.config.service}-{subset}"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start everything; on any failure stop what was started and raise ``ProcessError``."""
        if self._dir is not None:
            return self
        cfg = self.config
        self._dir = Path(tempfile.mkdtemp(prefix="rollouts-stack-", dir=self._parent_dir))
        try:
            self._init_remote()
            for name in ("ga", "canary", "mesh", "mesh-admin", "preview", "stable-service"):
                self.ports[name] = free_port()
            # Prometheus first: its discovery hands targets to the scrapers only after ~5 s, a wait
            # that then overlaps with the services' start-up instead of following it.
            self.prometheus = PrometheusServer(
                self.scrape_targets(),
                scrape_interval=cfg.scrape_interval,
                workdir=self.directory,
                ready_timeout=cfg.start_timeout,
            ).start(wait_for_targets=False)
            for subset, options in (("ga", cfg.ga), ("canary", cfg.canary)):
                self._children.append(self._service(subset, options))
            for child in self._children:
                child.wait_http(f"{self._url(child.name)}/readyz", timeout=cfg.start_timeout)
            mesh_config = self.directory / "mesh.json"
            mesh_config.write_text(self.mesh_config().model_dump_json(indent=2))
            mesh = ChildProcess(
                "mesh",
                python_module("rollouts.local.mesh", f"--config={mesh_config}"),
                self.directory / "mesh.log",
            )
            self._children.append(mesh)
            mesh.wait_http(self.mesh_admin_url + "/readyz", timeout=cfg.start_timeout)
            self.prometheus.wait_for_targets(timeout=cfg.start_timeout)
            return self
        except BaseException:
            self.stop()
            raise

    def _service(self, subset: str, options: ServiceOptions) -> ChildProcess:
        argv = python_module(
            "rollouts.local.podinfo",
            f"--port={self.ports[subset]}",
            f"--version={options.version}",
            f"--hostname={self.workload(subset)}",
            *options.args,
        )
        return ChildProcess(subset, argv, self.directory / f"{subset}.log")

    def restart_service(self, subset: str, options: ServiceOptions) -> None:
        """Replace the ``ga`` or ``canary`` service by one with ``options`` on the same port (what a
        Deployment's rollout does when its image changes); returns once the new one is ready."""
        if subset not in ("ga", "canary") or self._dir is None:
            raise ValueError(f"cannot restart {subset!r}: the stack runs 'ga' and 'canary'")
        for index, child in enumerate(self._children):
            if child.name == subset:
                child.stop()
                fresh = self._service(subset, options)
                self._children[index] = fresh
                fresh.wait_http(f"{self._url(subset)}/readyz", timeout=self.config.start_timeout)
                return
        raise ValueError(f"the stack has no {subset!r} service running")

    def stop(self) -> None:
        """Stop every process (Prometheus first, so that it records no failed scrapes) and clean up."""
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------------------

    def mesh_config(self) -> MeshConfig:
        """The mesh's configuration for this stack."""
        cfg = self.config
        return MeshConfig(
            port=self.ports["mesh"],
            admin_port=self.ports["mesh-admin"],
            repo=str(self.repo_path),
            branch=cfg.branch,
            path=cfg.route_path,
            kind=cfg.route_kind,
            route_name=cfg.route_name,
            namespace=cfg.namespace,
            service=cfg.service,
            stable=Destination(name="ga", url=self.ga_url, workload=self.workload("ga"), version="ga"),
            canary=Destination(
                name="canary", url=self.canary_url, workload=self.workload("canary"), version="canary"
            ),
            services=(
                ServicePort(port=self.ports["preview"], name=self.preview_service, destination="canary"),
                ServicePort(
                    port=self.ports["stable-service"], name=self.stable_service, destination="stable"
                ),
            ),
            poll_interval=cfg.poll_interval,
            segment_label=cfg.segment_label,
        )

    def scrape_targets(self) -> list[ScrapeTarget]:
        """The mesh (Istio metrics) and both services (podinfo metrics, labelled like pods)."""
        cfg = self.config
        targets = [ScrapeTarget("mesh", f"127.0.0.1:{self.ports['mesh-admin']}")]
        for subset in ("ga", "canary"):
            labels = {
                "namespace": cfg.namespace,
                "app": cfg.service,
                "version": subset,
                "workload": self.workload(subset),
            }
            targets.append(ScrapeTarget("podinfo", f"127.0.0.1:{self.ports[subset]}", labels))
        return [*targets, *cfg.extra_targets]

    def add_scrape_target(self, target: ScrapeTarget) -> None:
        """Scrape one more endpoint (the controller, the load generator); live within ~5 s."""
        if self.prometheus is None:
            raise RuntimeError("the stack is not running")
        self.prometheus.add_target(target)

    # -- Git -----------------------------------------------------------------------------------

    def _init_remote(self) -> None:
        import git

        git.Repo.init(self.repo_path, bare=True, initial_branch=self.config.branch)
        text = self.config.route_text or guide_virtual_service(
            self.config.canary_weight, namespace=self.config.namespace, service=self.config.service
        )
        self.commit_route(text, "Initial route: the guide's VirtualService")

    def commit_route(self, text: str, message: str) -> str:
        """Commit ``text`` as the route file on the remote branch (as a person would); its sha."""
        import git

        scratch = Path(tempfile.mkdtemp(prefix="clone-", dir=self.directory))
        try:
            repo = git.Repo.init(scratch, initial_branch=self.config.branch)
            with repo.config_writer() as writer:
                writer.set_value("user", "name", GIT_AUTHOR[0])
                writer.set_value("user", "email", GIT_AUTHOR[1])
            remote = repo.create_remote("origin", str(self.repo_path))
            branch = self.config.branch
            if any(ref.name == f"origin/{branch}" for ref in remote.fetch()):
                repo.git.checkout("-B", branch, f"origin/{branch}")
            path = scratch / self.config.route_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            repo.git.add(self.config.route_path)
            repo.git.commit("--allow-empty", "-m", message)
            repo.git.push("origin", f"HEAD:refs/heads/{branch}")
            return str(repo.head.commit.hexsha)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def set_canary_weight(self, canary: int, message: str | None = None) -> str:
        """Commit new weights with the route editor (only the weight scalars change); the sha."""
        return self.edit_route(
            lambda editor, text: editor.write(text, Weights.for_canary(canary)),
            message or f"podinfo: canary weight {canary}%",
        )

    def edit_route(self, change: Callable[[RouteEditor, str], str], message: str) -> str:
        """Commit ``change(editor, current text)`` as the route file (a strategy, weights); the sha."""
        import git

        from rollouts.routes import editor_for

        repo = git.Repo(self.repo_path)
        current = (repo.commit(self.config.branch).tree / self.config.route_path).data_stream.read().decode()
        editor = editor_for(
            self.config.route_kind, stable="ga", canary="canary", source=self.config.route_path
        )
        return self.commit_route(change(editor, current), message)

    def status(self) -> dict[str, Any]:
        """The mesh's ``/status`` document."""
        with urllib.request.urlopen(self.status_url, timeout=5) as response:
            data: dict[str, Any] = json.load(response)
        return data

    def wait_for_status(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0, what: str = "condition"
    ) -> dict[str, Any]:
        """Poll ``/status`` until ``predicate`` holds; the status, or ``ProcessError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        status = self.status()
        while not predicate(status):
            if time.monotonic() > deadline:
                raise ProcessError(f"mesh: {what} not reached within {timeout:.0f}s; status {status}")
            time.sleep(0.05)
            status = self.status()
        return status

    def wait_for_revision(self, sha: str, timeout: float = 10.0) -> dict[str, Any]:
        """Block until the mesh reports ``sha`` as the applied revision; the status."""
        return self.wait_for_status(lambda s: s["revision"] == sha, timeout, f"revision {sha[:12]}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m rollouts.local.stack``; exits 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m rollouts.local.stack", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--canary-weight", type=int, default=0, help="initial canary weight (percent)")
    parser.add_argument(
        "--canary-args", default="", help="extra podinfo flags of the canary: '--error-rate=0.05'"
    )
    # argparse takes a value that starts with "-" for an option of its own, so the documented
    # `--canary-args '--error-rate=0.05'` failed with "expected one argument": glue it to its flag.
    raw = list(sys.argv[1:] if argv is None else argv)
    glued: list[str] = []
    index = 0
    while index < len(raw):
        if raw[index] == "--canary-args" and index + 1 < len(raw):
            glued.append(f"--canary-args={raw[index + 1]}")
            index += 2
        else:
            glued.append(raw[index])
            index += 1
    args = parser.parse_args(glued)
    if not 0 <= args.canary_weight <= 100:
        parser.error(f"--canary-weight must be 0-100, got {args.canary_weight}")
    # Check the canary's flags with its own parser now, not as a traceback after Prometheus started.
    from rollouts.local.podinfo import parser as podinfo_parser

    canary = podinfo_parser()
    canary.prog = f"{parser.prog} --canary-args"
    canary.parse_args(args.canary_args.split())
    return args


def main(argv: list[str] | None = None) -> None:
    """``python -m rollouts.local.stack``: start the stack, print its addresses, run until Ctrl-C."""
    import signal
    import threading

    args = parse_args(argv)
    config = StackConfig(
        canary_weight=args.canary_weight,
        canary=ServiceOptions(version="6.5.1", args=tuple(args.canary_args.split())),
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (a background job)
        signal.signal(sig, lambda *_: stop.set())
    with LocalStack(config) as stack:
        print(
            f"traffic     {stack.mesh_url}\nmesh status {stack.status_url}\n"
            f"prometheus  {stack.prometheus_url}\n"
            f"git remote  {stack.repo_url} ({config.branch}:{config.route_path})\n"
            f"ga          {stack.ga_url}\ncanary      {stack.canary_url}\nCtrl-C stops everything.",
            flush=True,
        )
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
