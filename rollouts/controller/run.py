"""``rollouts run``: the wiring. One :class:`Controller` builds a state machine per Rollout spec and
runs them all on the scheduler; the command parses its flags and serves until told to stop.

Specs come from files, or from a directory of a Git repo (``--repo URL --path DIR``, found by
:func:`rollouts.gitops.discover_all`, Pipelines too), re-read every ``--resync`` seconds so that specs
added, changed or removed in Git take effect without a restart. An invalid spec is reported (the error
names the file and field) and the other rollouts keep running.

The cluster view is the local mesh (``--mesh URL``, one machine; GA's ``/version`` probe is
:class:`rollouts.sync.VersionProbe`) or the Kubernetes API (``--kubernetes``: in-cluster or ``--kubeconfig``;
the gate is :class:`rollouts.sync.KubernetesSpecGate`), which also enables Events and, with
``--leader-elect``, a Lease so that only one replica commits. This module decides nothing about a
rollout: that is the machine's.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollouts.controller.custom import CustomSource
from rollouts.controller.custom import wiring as custom_wiring
from rollouts.controller.errors import SetupError
from rollouts.controller.gitcache import CachedWorkspace, HeadCache
from rollouts.controller.machine import GaReadiness, Leadership, Machine, TickResult
from rollouts.controller.scheduler import Scheduler
from rollouts.controller.source import PrometheusSource
from rollouts.gates.step import step_gates_for
from rollouts.gitops import (
    DiscoveryError,
    Workspace,
    credentials_from_arguments,
    discover_all,
)
from rollouts.kube import EventRecorder, LeaderElector, LeaseConfig, ObjectRef, api_client
from rollouts.load import LoadDriver, LocalLoad, NoLoad, ServeLoad
from rollouts.logs import configured
from rollouts.metrics import ControllerMetrics, Liveness, MetricsServer
from rollouts.notify import Kind, Notice, Notifier, read_url_files
from rollouts.spec import Rollout, SpecError, load_spec
from rollouts.spec_controller import UrlFile
from rollouts.sync import FluxKustomization, KubernetesSpecGate, LocalMeshGate, SyncGate, VersionProbe
from rollouts.sync.reconcile import ReconcilingWorkspace, reconciler_for, watched_kustomization
from rollouts.workloads import for_metrics

if TYPE_CHECKING:
    from rollouts.pipeline.runner import LoadedPipeline

log = logging.getLogger("rollouts.controller")

EVENT_REASONS = {
    Kind.START: "RolloutStarted",
    Kind.STEP: "Promoted",
    Kind.HOLD: "Holding",
    Kind.ROLLBACK: "RolledBack",
    Kind.PAUSE: "Paused",
    Kind.RESUME: "Resumed",
    Kind.FINALIZE: "Finalized",
    Kind.OVERRIDE: "HumanOverride",
    Kind.ERROR: "Error",
}


# -- building a machine -----------------------------------------------------------------------------


@dataclass
class Options:
    """How the controller sees the cluster and where it keeps its clones."""

    mesh: str | None = None
    kubernetes: bool = False
    kubeconfig: str | None = None
    cache_dir: Path | None = None
    settle: float = 2.0  # seconds of scrape lag before a window's data is complete
    gate_interval: float = 1.0
    notify: tuple[str, ...] = ()  # apprise URLs told about every rollout (besides each spec's own)
    flux: FluxKustomization | None = None  # also wait for Flux to report the commit as applied
    ga_url: str | None = None  # local mesh, promote-ga: the GA service, asked for its /version


def load_driver(rollout: Rollout) -> LoadDriver:
    """The rollout's load: none, a local ``loadtest serve``, or a ``loadtest serve`` endpoint."""
    spec = rollout.spec.load
    if spec.mode == "local":
        return LocalLoad()
    if spec.mode == "endpoint":
        assert spec.endpoint is not None and spec.token_file is not None  # the spec model checks this
        try:
            token = Path(spec.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SetupError(f"{rollout.key}: spec.load.tokenFile {spec.token_file}: {exc.strerror}") from exc
        return ServeLoad(spec.endpoint, token)
    return NoLoad()


def notifier_for(
    rollout: Rollout,
    events: EventRecorder | None,
    canary: Callable[[], ObjectRef] | None,
    extra: Iterable[str] = (),
) -> Callable[[Notice], None]:
    """Apprise targets of the spec (URLs and URL files) and ``extra`` ones, plus Kubernetes Events
    when available."""
    urls = [*extra, *(item for item in rollout.spec.notify if isinstance(item, str))]
    urls += read_url_files([item.url_file for item in rollout.spec.notify if isinstance(item, UrlFile)])
    apprise = Notifier(urls)

    def send(notice: Notice) -> None:
        apprise.send(notice)
        if events is not None and canary is not None:
            try:
                warning = notice.kind in (Kind.ROLLBACK, Kind.PAUSE, Kind.ERROR, Kind.OVERRIDE)
                events.emit(
                    canary(), EVENT_REASONS[notice.kind], f"{notice.summary}. {notice.body}", warning=warning
                )
            except Exception:  # an Event is a courtesy; never let it stop a rollout
                log.exception("%s: could not create the Event", notice.rollout)

    return send


@dataclass
class Controller:
    """Machines for specs, the scheduler, the shared Prometheus sources and the cluster view."""

    options: Options
    metrics: ControllerMetrics = field(default_factory=ControllerMetrics)
    leadership: Leadership | None = None
    on_tick: Callable[[str, TickResult], None] | None = None
    sources: dict[tuple[str, str | None, str | None], PrometheusSource] = field(default_factory=dict)
    custom_sources: dict[tuple[Any, ...], CustomSource] = field(default_factory=dict)
    specs: dict[str, Rollout] = field(default_factory=dict)
    pipelines: dict[str, LoadedPipeline] = field(default_factory=dict)
    api: Any = None
    heads: HeadCache = field(default_factory=HeadCache)

    def __post_init__(self) -> None:
        if self.options.kubernetes:
            if self.api is None:
                self.api = api_client(self.options.kubeconfig)
        elif not self.options.mesh:
            raise SetupError("say where the cluster is: --mesh URL (local mesh) or --kubernetes")
        kwargs: dict[str, Any] = {"on_tick": self.on_tick}
        if self.leadership is not None:
            kwargs["leadership"] = self.leadership
        self.scheduler = Scheduler(**kwargs)

    def machine(self, rollout: Rollout) -> Machine:
        """A state machine for ``rollout``; ``SetupError``/``ValueError`` naming what is wrong."""
        analysis = rollout.spec.analysis
        policy = analysis.policy
        prom = analysis.prometheus
        # every field: two tenants (headers) or TLS identities on one URL are two sources
        source_key = (prom.url, prom.bearer_token_file, prom.model_dump_json())
        source = self.sources.get(source_key)
        if source is None:
            source = self.sources[source_key] = PrometheusSource.for_spec(prom)
        plain = Workspace.for_spec(rollout, cache_dir=self.options.cache_dir)
        cached = CachedWorkspace(plain, self.heads)
        # The workloads the route really points at, and a warning now when Prometheus has no series.
        rollout = for_metrics(rollout, cached.workspace, source.reader.client)
        source.register(rollout)
        workspace: Any = cached
        # The Kustomization the sync gate watches: spec.flux.kustomization, else --flux-kustomization.
        default = (self.options.flux.namespace, self.options.flux.name) if self.options.flux else None
        watched = watched_kustomization(rollout, default)
        flux = FluxKustomization(*watched) if watched else None
        reconciler = reconciler_for(
            rollout,
            api=self.api,
            default_kustomization=watched,
            local_mesh=None if self.api else self.options.mesh,
        )
        if reconciler is not None:  # reconcile now after each push (spec.flux.reconcile)
            workspace = ReconcilingWorkspace(workspace, reconciler, key=rollout.key)
        metrics_source, judge_factory = custom_wiring(
            self.custom_sources, source, rollout, policy, self.metrics
        )
        gate: SyncGate
        events: EventRecorder | None = None
        canary: Callable[[], ObjectRef] | None = None
        if self.options.kubernetes:
            kube_gate = KubernetesSpecGate(self.api, workspace, rollout, self.options.gate_interval, flux)
            gate, events = kube_gate, EventRecorder(self.api, host=socket.gethostname())
            canary = lambda: kube_gate.target()[1]  # noqa: E731 (resolved from Git when an Event is sent)
        else:
            assert self.options.mesh is not None
            gate = LocalMeshGate(self.options.mesh, interval=self.options.gate_interval)
        ga_readiness: GaReadiness | None = None
        if rollout.spec.finalize.action == "promote-ga":
            # Without a way to look at GA (local mesh, no --ga-url), the gate alone: the cluster
            # applied the GA commit.
            ga_readiness = kube_gate if self.options.kubernetes else None
            if self.options.ga_url:
                ga_readiness = VersionProbe(self.options.ga_url)
        return Machine(
            rollout,
            workspace=workspace,
            gate=gate,
            metrics_source=metrics_source,
            judge_factory=judge_factory,
            load=load_driver(rollout),
            notify=notifier_for(rollout, events, canary, self.options.notify),
            metrics=self.metrics,
            leadership=self.leadership,
            settle=self.options.settle,
            ga_readiness=ga_readiness,
            gates=step_gates_for(rollout, plain),
        )

    def apply(self, rollouts: Iterable[Rollout]) -> list[str]:
        """Run exactly these rollouts: add new ones, replace changed ones, remove the rest.
        Returns one error line per rollout that could not be built (the others run)."""
        errors: list[str] = []
        wanted = {r.key: r for r in rollouts}
        for key in list(self.specs):
            if key not in wanted:
                log.info("%s: spec removed, rollout no longer run", key)
                self.scheduler.remove(key)
                self.metrics.forget(key)
                for source in self.sources.values():
                    source.unregister(key)
                for custom in self.custom_sources.values():
                    custom.unregister(key)
                del self.specs[key]
        for key, rollout in wanted.items():
            if self.specs.get(key) == rollout:
                continue
            try:
                machine = self.machine(rollout)
            except Exception as exc:  # one bad rollout must not stop the others
                errors.append(f"{key}: {exc}")
                continue
            self.scheduler.add(machine)
            self.specs[key] = rollout
            log.info(
                "%s: running (interval %gs, steps %s)",
                key,
                rollout.spec.analysis.interval,
                rollout.spec.steps,
            )
        return errors

    def apply_pipelines(self, pipelines: Iterable[LoadedPipeline]) -> list[str]:
        """Run exactly these pipelines' hand-over jobs: add new ones, replace changed ones, remove
        the rest (their environments' rollouts are :meth:`apply`'s). One error line per pipeline
        that could not be built (the others run)."""
        from rollouts.pipeline.job import JOB_PREFIX, PipelineJob
        from rollouts.pipeline.runner import PipelineRunner

        errors: list[str] = []
        wanted = {p.pipeline.key: p for p in pipelines}
        for key in list(self.pipelines):
            if key not in wanted:
                log.info("%s%s: pipeline removed, no longer run", JOB_PREFIX, key)
                self.scheduler.remove(JOB_PREFIX + key)
                self.metrics.forget_pipeline(key)
                del self.pipelines[key]
        for key, loaded in wanted.items():
            if self.pipelines.get(key) == loaded:
                continue
            try:
                runner = PipelineRunner.for_pipeline(loaded, cache_dir=self.options.cache_dir)
                job = PipelineJob(runner, self.metrics)
            except Exception as exc:  # one bad pipeline must not stop the others
                errors.append(f"{JOB_PREFIX}{key}: {exc}")
                continue
            previous = self.scheduler.machines.get(job.key)
            self.scheduler.add(job)  # replaces the previous job of this pipeline, if any
            if previous is not None:
                previous.close()
            self.pipelines[key] = loaded
            log.info("%s: pipeline running (%s)", job.key, " -> ".join(s.name for s in loaded.stages))
        return errors


# -- the command -------------------------------------------------------------------------------------------


def _load_specs(args: argparse.Namespace, cache_dir: Path) -> tuple[list[Rollout], list[str]]:
    from rollouts.pipeline.spec import is_pipeline_file

    rollouts, errors = [], []
    for path in args.specs:
        if is_pipeline_file(path):
            continue  # its environments' rollouts come with it (_load_pipelines)
        try:
            rollouts.append(load_spec(path))
        except SpecError as exc:
            errors.append(str(exc))
    return rollouts, errors


def _load_pipelines(args: argparse.Namespace) -> tuple[list[LoadedPipeline], list[str]]:
    """The Pipeline files among the SPEC arguments, each with its environments' rollouts."""
    from rollouts.pipeline.errors import PipelineSpecError
    from rollouts.pipeline.runner import load_pipeline
    from rollouts.pipeline.spec import is_pipeline_file

    pipelines, errors = [], []
    for path in args.specs or ():
        if not is_pipeline_file(path):
            continue
        try:
            pipelines.append(load_pipeline(path))
        except PipelineSpecError as exc:
            errors.append(str(exc))
    return pipelines, errors


def _load(args: argparse.Namespace, cache_dir: Path) -> tuple[list[Rollout], list[LoadedPipeline], list[str]]:
    """Every Rollout (the pipelines' environments included, once) and Pipeline of the SPEC files or
    of ``--repo``, and one error line per file that could not be read."""
    if args.repo:
        credentials = credentials_from_arguments(args)  # re-read each time: a rotated token applies
        rollouts, pipelines, errors = discover_all(args.repo, args.branch, args.path, cache_dir, credentials)
    else:
        rollouts, errors = _load_specs(args, cache_dir)
        pipelines, pipeline_errors = _load_pipelines(args)
        errors += pipeline_errors
    known = {r.key for r in rollouts}
    for stage in (s for p in pipelines for s in p.stages):
        if stage.rollout.key not in known:
            rollouts.append(stage.rollout)
            known.add(stage.rollout.key)
    return rollouts, pipelines, errors


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def lease_name(value: str | None) -> tuple[str, str]:
    """``--lease NAMESPACE/NAME``; by default ``rollouts-controller`` in the pod's own namespace."""
    if value:
        namespace, _, name = value.partition("/")
        if not namespace or not name:
            raise SetupError(f"--lease must be NAMESPACE/NAME, got {value!r}")
        return namespace, name
    namespace = os.environ.get("POD_NAMESPACE", "")
    if not namespace and SERVICE_ACCOUNT_NAMESPACE.exists():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    return namespace or "default", "rollouts-controller"


def flux_kustomization(value: str | None) -> FluxKustomization | None:
    """``--flux-kustomization NAMESPACE/NAME``."""
    if value is None:
        return None
    namespace, _, name = value.partition("/")
    if not namespace or not name:
        raise SetupError(f"--flux-kustomization must be NAMESPACE/NAME, got {value!r}")
    return FluxKustomization(namespace, name)


def _start(args: argparse.Namespace, cache_dir: Path) -> tuple[Controller, LeaderElector | None, list[str]]:
    """The controller with every rollout of the specs built (errors: the rollouts that could not be)."""
    notify = (*args.notify, *os.environ.get("ROLLOUTS_NOTIFY_URLS", "").split())
    options = Options(
        mesh=args.mesh,
        kubernetes=args.kubernetes,
        kubeconfig=args.kubeconfig,
        cache_dir=cache_dir,
        settle=args.settle,
        notify=notify,
        flux=flux_kustomization(args.flux_kustomization),
        ga_url=args.ga_url,
    )
    elector: LeaderElector | None = None
    api = api_client(options.kubeconfig) if options.kubernetes else None
    if args.leader_elect if args.leader_elect is not None else args.kubernetes:
        if not args.kubernetes:
            raise SetupError("--leader-elect needs --kubernetes (the Lease lives in the cluster)")
        namespace, name = lease_name(args.lease)
        identity = f"{socket.gethostname()}-{os.getpid()}"
        assert api is not None  # --kubernetes
        elector = LeaderElector(api, LeaseConfig(namespace, name, identity))
    controller = Controller(options, leadership=elector, api=api)  # built once
    if elector is not None:
        elector.try_acquire_or_renew()  # the first attempt now, so that --once can already lead
        elector.start()
    try:
        rollouts, pipelines, errors = _load(args, cache_dir)
        errors += controller.apply(rollouts)
        errors += controller.apply_pipelines(pipelines)
    except (SetupError, DiscoveryError, ValueError, OSError):
        if elector is not None:
            elector.stop()
        raise
    return controller, elector, errors


def _serve(args: argparse.Namespace, controller: Controller, cache_dir: Path) -> None:
    """Run the scheduler until SIGINT/SIGTERM or ``--duration``, re-reading ``--repo`` meanwhile."""
    server: MetricsServer | None = None
    address = args.metrics_address or (
        "0.0.0.0:9797" if os.environ.get("KUBERNETES_SERVICE_HOST") else "127.0.0.1:9797"
    )  # in a pod, the kubelet's probes and Prometheus come from outside the loopback
    if address != "off":
        host, _, port = address.rpartition(":")
        server = MetricsServer(
            controller.metrics,
            host or "127.0.0.1",
            int(port),
            health=Liveness(controller.scheduler).check,
        ).start()
        log.info("metrics on %s/metrics", server.url)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    controller.scheduler.start()
    deadline = None if args.duration is None else time.monotonic() + args.duration
    next_resync = time.monotonic() + args.resync
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            stop.wait(0.2)
            if args.repo and time.monotonic() >= next_resync:
                next_resync = time.monotonic() + args.resync
                try:
                    rollouts, pipelines, errors = _load(args, cache_dir)
                    errors += controller.apply(rollouts)
                    errors += controller.apply_pipelines(pipelines)
                except (SetupError, DiscoveryError, ValueError) as exc:
                    errors = [str(exc)]  # Git unreachable or a credential unreadable: keep running
                for line in errors:
                    log.error("%s", line)
    finally:
        controller.scheduler.stop()
        if server is not None:
            server.stop()


def run_command(args: argparse.Namespace) -> int:
    """``rollouts run``; exit 0 on a clean stop, 1 when no rollout could be started, 2 on usage."""
    with configured(args.log_format, args.log_level):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if bool(args.specs) == bool(args.repo):
        print("rollouts run: give SPEC files or --repo URL (not both)", file=sys.stderr)
        return 2
    from rollouts.gitops import default_cache_dir

    cache_dir = args.cache_dir or default_cache_dir()
    if not args.mesh and not args.kubernetes and os.environ.get("KUBERNETES_SERVICE_HOST"):
        args.kubernetes = True  # inside a pod: the cluster is right here
    try:
        controller, elector, errors = _start(args, cache_dir)
    except (SetupError, DiscoveryError, ValueError, OSError) as exc:
        print(f"rollouts run: error: {exc}", file=sys.stderr)
        return 1
    for line in errors:
        print(f"rollouts run: error: {line}", file=sys.stderr)
    try:
        if not controller.specs:
            print("rollouts run: error: no rollout to run", file=sys.stderr)
            return 1
        if args.once:
            for key, result in controller.scheduler.run_once().items():
                line = f"{result.phase} {result.action}: {'; '.join(result.reasons)}" if result else "-"
                print(f"{key}: {line}")
            controller.scheduler.stop()
            return 0
        _serve(args, controller, cache_dir)
        return 0
    finally:
        if elector is not None:
            elector.stop()
