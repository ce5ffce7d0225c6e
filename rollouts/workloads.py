"""Which workloads, services and versions a rollout's route really points at, for the metrics.

The query templates select GA and canary by the names the telemetry carries (Istio's
``destination_workload``, ``destination_service_name``, ``destination_version``). The old defaults,
``<name>-<route subset>``, fit the guide's layout (subsets ``ga``/``canary`` of host ``podinfo``,
Deployments ``podinfo-ga``/``podinfo-canary``) and nothing else: with Flagger's layout (hosts
``podinfo-primary`` and ``podinfo-canary``) they give ``podinfo-podinfo-primary``, with Gateway API
backends ``reviews-reviews-v1``, and the judge then never gets a window.

:func:`resolve` derives every field that ``spec.analysis.subsets`` leaves empty from the files the
route really names, in this order:

- **workload**: the canary's is the ``metadata.name`` of the canary manifest; GA's is the GA
  manifest's (``finalize.gaPath``) when there is one; else, for a destination named by its host
  (VirtualService ``host``, HTTPRoute ``backendRefs[].name``, TrafficSplit ``backends[].service``),
  the service's name (Flagger's and Istio's samples name the Deployment after it); else
  ``<name>-<subset>`` (the guide's convention);
- **service**: the destination's host (its first DNS label), or the backend's name; else ``<name>``;
- **version**: the ``version`` label of the DestinationRule subset (in the route file or a file
  beside it), else the route's name for the side.

:func:`describe` says which series the rollout's template will select (``rollouts status``), and
:func:`missing_series` asks Prometheus once whether they exist, so that a rollout whose queries match
nothing says so when it starts instead of holding forever.

Nothing here writes anything; reading is bounded (:mod:`rollouts.yamlsafe`), symbolic links are not
followed, and a file that cannot be read leaves the old default in place with a note.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from analyzer.prometheus.templates import BUILTIN, QueryTemplate, Subset, TemplateError, template_from_mapping
from rollouts.spec import Rollout
from rollouts.spec_controller import SubsetSpec, SubsetsSpec
from rollouts.yamlsafe import MANIFEST, ROUTE, YamlLimitError, load_all

if TYPE_CHECKING:
    from analyzer.prometheus import PrometheusClient, QueryTemplate, Subset
    from rollouts.gitops import Workspace

log = logging.getLogger("rollouts.workloads")

# Files beside the route file searched for DestinationRules (bounded: a directory may be huge).
MAX_SIBLING_FILES = 50
# How far back missing_series looks for any sample of the subsets.
LOOKBACK_S = 600.0

Reader = Callable[[str], str | None]  # repo-relative path -> text, None when absent or unreadable


@dataclass(frozen=True)
class Resolved:
    """The subsets as resolved, and one note per field that kept its old default for a reason."""

    subsets: SubsetsSpec
    notes: tuple[str, ...] = ()


def _short(host: str) -> str:
    return host.split(".", 1)[0]


def _list(value: Any) -> list[Any]:
    """``value`` when it is a list, else none (a malformed file is the editors' to report)."""
    return value if isinstance(value, list) else []


def _documents(reader: Reader, rel: str, notes: list[str], limits: Any) -> list[dict[str, Any]]:
    text = reader(rel)
    if text is None:
        return []
    try:
        return [d for d in load_all(text, rel, limits) if isinstance(d, dict)]
    except YamlLimitError as exc:
        notes.append(str(exc))
        return []


def _workload_name(docs: list[dict[str, Any]]) -> str | None:
    for doc in docs:
        meta = doc.get("metadata")
        spec = doc.get("spec")
        if isinstance(meta, dict) and isinstance(meta.get("name"), str) and isinstance(spec, dict):
            return str(meta["name"])
    return None


def _vs_destinations(docs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every ``destination`` of every VirtualService route (http, tcp, tls), as strings."""
    out: list[dict[str, str]] = []
    for doc in docs:
        if doc.get("kind") != "VirtualService" or not isinstance(doc.get("spec"), dict):
            continue
        for section in ("http", "tcp", "tls"):
            for rule in _list(doc["spec"].get(section)):
                for route in _list(rule.get("route")) if isinstance(rule, dict) else []:
                    dest = route.get("destination") if isinstance(route, dict) else None
                    if isinstance(dest, dict):
                        out.append({k: str(v) for k, v in dest.items() if isinstance(v, str | int)})
    return out


def _rule_versions(docs: Iterable[dict[str, Any]], host: str) -> dict[str, str]:
    """``{subset: version label}`` of the DestinationRules for ``host``."""
    out: dict[str, str] = {}
    for doc in docs:
        spec = doc.get("spec")
        if doc.get("kind") != "DestinationRule" or not isinstance(spec, dict):
            continue
        if _short(str(spec.get("host") or "")) != _short(host):
            continue
        for subset in _list(spec.get("subsets")):
            if not isinstance(subset, dict):
                continue
            labels = subset.get("labels")
            if isinstance(labels, dict) and isinstance(labels.get("version"), str):
                out[str(subset.get("name"))] = labels["version"]
    return out


def resolve(rollout: Rollout, reader: Reader, siblings: Iterable[str] = ()) -> Resolved:
    """The subsets of ``rollout`` with every empty field derived from the files (see the module
    docstring). ``reader`` reads repo files; ``siblings`` are the other files beside the route file
    (searched for DestinationRules)."""
    spec = rollout.spec
    name = rollout.metadata.name
    notes: list[str] = []
    route_docs = _documents(reader, spec.route.path, notes, ROUTE)
    canary_workload = _workload_name(_documents(reader, spec.canary.path, notes, MANIFEST))
    ga_path = spec.finalize.ga_path
    ga_workload = _workload_name(_documents(reader, ga_path, notes, MANIFEST)) if ga_path else None
    destinations = _vs_destinations(route_docs) if spec.route.kind == "VirtualService" else []
    rule_docs = list(route_docs)
    if spec.route.kind == "VirtualService":
        for rel in list(siblings)[:MAX_SIBLING_FILES]:
            text = reader(rel)
            if text is not None and "DestinationRule" in text:
                rule_docs += _documents(reader, rel, notes, MANIFEST)

    def side(given: SubsetSpec, route_name: str, manifest_workload: str | None) -> SubsetSpec:
        if spec.route.kind == "VirtualService":
            by_subset = [d for d in destinations if d.get("subset") == route_name]
            by_host = [
                d
                for d in destinations
                if not d.get("subset") and route_name in (d.get("host"), _short(d.get("host", "")))
            ]
            if by_subset:
                service = _short(by_subset[0].get("host", name))
                version = _rule_versions(rule_docs, service).get(route_name, route_name)
                workload = manifest_workload or f"{name}-{route_name}"
            elif by_host:
                service, version = _short(by_host[0]["host"]), route_name
                workload = manifest_workload or service
            else:
                service, version, workload = name, route_name, manifest_workload or f"{name}-{route_name}"
        else:  # HTTPRoute, TrafficSplit: the destinations are Services
            service, version, workload = route_name, route_name, manifest_workload or route_name
        return SubsetSpec(
            workload=given.workload or workload,
            version=given.version or version,
            service=given.service or service,
        )

    given = spec.analysis.subsets
    subsets = SubsetsSpec(
        stable=side(given.stable, spec.route.stable, ga_workload),
        canary=side(given.canary, spec.route.canary, canary_workload),
    )
    return Resolved(subsets=subsets, notes=tuple(notes))


def with_resolved_subsets(rollout: Rollout, reader: Reader, siblings: Iterable[str] = ()) -> Rollout:
    """``rollout`` with ``spec.analysis.subsets`` filled in by :func:`resolve` (notes logged)."""
    resolved = resolve(rollout, reader, siblings)
    for note in resolved.notes:
        log.warning("%s: metrics names: %s", rollout.key, note)
    analysis = rollout.spec.analysis.model_copy(update={"subsets": resolved.subsets})
    return rollout.model_copy(update={"spec": rollout.spec.model_copy(update={"analysis": analysis})})


def workspace_reader(workspace: Workspace, head: str = "HEAD") -> Reader:
    """A :data:`Reader` of the files at ``head`` of ``workspace`` (through ``Workspace.show``:
    bounded, no symbolic links)."""
    from rollouts.routes import RouteError

    def read(rel: str) -> str | None:
        try:
            return workspace.show(head, rel)
        except RouteError as exc:  # missing, a link, too big, not UTF-8: the defaults stay
            log.debug("metrics names: %s", exc)
            return None

    return read


def _siblings(root: Path, rel: str) -> list[str]:
    """The ``*.yaml``/``*.yml`` files beside ``rel`` in the checkout at ``root`` (names only)."""
    parent = PurePosixPath(rel).parent
    directory = root / parent
    if directory.is_symlink() or not directory.is_dir():
        return []
    names = sorted(p.name for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    return [(parent / n).as_posix() for n in names if (parent / n).as_posix() != rel]


def resolved_for_workspace(rollout: Rollout, workspace: Workspace) -> Rollout:
    """:func:`with_resolved_subsets` on the files of ``workspace``'s head (already fetched)."""
    siblings = _siblings(workspace.path, rollout.spec.route.path)
    return with_resolved_subsets(rollout, workspace_reader(workspace), siblings)


def describe(template: QueryTemplate, stable: Subset, canary: Subset) -> list[str]:
    """``GA {label="value", ...} (template)`` and the canary's: the series the template selects."""
    lines = []
    for word, subset in (("GA", stable), ("canary", canary)):
        try:
            key = template.key(subset)
        except ValueError as exc:
            lines.append(f"{word}: {exc}")
            continue
        matchers = ", ".join(f'{label}="{value}"' for label, value in zip(template.labels, key, strict=True))
        lines.append(f"{word} {{{matchers}}} ({template.name})")
    return lines


def missing_series(
    client: PrometheusClient,
    template: QueryTemplate,
    stable: Subset,
    canary: Subset,
    now: float | None = None,
) -> list[str]:
    """The sides (``"GA"``, ``"canary"``) for which the template's request query finds no series in
    the last :data:`LOOKBACK_S` seconds: one query. Errors propagate (the caller decides whether an
    unreachable Prometheus matters now)."""
    promql = template.render("requests", [stable, canary], LOOKBACK_S)
    samples = client.query(promql, time.time() if now is None else now)
    found = {tuple(s.labels.get(label, "") for label in template.labels) for s in samples}
    sides = (("GA", stable), ("canary", canary))
    return [word for word, subset in sides if template.key(subset) not in found]


def for_metrics(rollout: Rollout, workspace: Workspace, client: PrometheusClient) -> Rollout:
    """At a rollout's start: ``rollout`` with its metrics names resolved from the branch's files
    (fetched now), and a warning when Prometheus has no series for them.

    Never raises: a remote that cannot be fetched keeps the spec's names (logged), and a Prometheus
    that cannot answer is asked again by the first analysis window anyway. The probe is one query,
    one attempt, with a short timeout.
    """
    from analyzer.prometheus import PrometheusClient, PrometheusError
    from rollouts.gitops import GitopsError

    try:
        workspace.fetch()
        rollout = resolved_for_workspace(rollout, workspace)
    except (GitopsError, OSError) as exc:
        log.warning("%s: metrics names not resolved from the repo (%s); using the spec's", rollout.key, exc)
    except Exception:  # a file shaped in a way nobody foresaw must not keep the rollout from running
        log.exception("%s: metrics names not resolved from the repo; using the spec's", rollout.key)
    template = template_of(rollout)
    stable, canary = subsets_of(rollout)
    probe = PrometheusClient(client.url, timeout=min(client.timeout, 3.0), attempts=1, headers=client.headers)
    try:
        missing = missing_series(probe, template, stable, canary)
    except (PrometheusError, ValueError) as exc:
        log.info("%s: could not check for series at start: %s", rollout.key, exc)
        return rollout
    selected = "; ".join(describe(template, stable, canary))
    if missing:
        log.warning(
            "%s: no series for %s in the last %gs: the analysis finds no data until there are (%s). "
            "Normal for a canary no request has reached yet; otherwise set spec.analysis.subsets",
            rollout.key,
            " and ".join(missing),
            LOOKBACK_S,
            selected,
        )
    else:
        log.info("%s: metrics: %s", rollout.key, selected)
    return rollout


def series_of(rollout: Rollout, workspace: Workspace) -> list[str]:
    """What ``rollouts status`` shows: the series GA and canary will be read from (names resolved
    from the files of ``workspace``'s head)."""

    resolved = resolved_for_workspace(rollout, workspace)
    return describe(template_of(resolved), *subsets_of(resolved))


# -- what the metrics call the rollout's two sides (light: the CLI's status needs no controller) --


def template_of(rollout: Rollout) -> QueryTemplate:
    """The rollout's query template: a built-in by name, or its own (named after the rollout)."""
    metrics = rollout.spec.analysis.metrics
    if isinstance(metrics, str):
        if metrics not in BUILTIN:
            raise TemplateError(
                f"{rollout.key}: unknown template {metrics!r}; built-in: {', '.join(BUILTIN)}"
            )
        return BUILTIN[metrics]
    return template_from_mapping(
        {"name": f"rollout:{rollout.key}", **metrics}, source=f"{rollout.key} metrics"
    )


def subsets_of(rollout: Rollout) -> tuple[Subset, Subset]:
    """GA and canary as the metrics name them: namespace from the rollout; workload, version and
    service from ``spec.analysis.subsets``, defaulting to ``<name>-<route subset>``, the route's
    subset name and ``<name>`` (the guide's and the local stack's naming)."""
    name, namespace = rollout.metadata.name, rollout.metadata.namespace
    sides = rollout.spec.analysis.subsets
    out = []
    for spec, route_name in (
        (sides.stable, rollout.spec.route.stable),
        (sides.canary, rollout.spec.route.canary),
    ):
        out.append(
            Subset(
                namespace=namespace,
                workload=spec.workload or f"{name}-{route_name}",
                version=spec.version or route_name,
                service=spec.service or name,
            )
        )
    return out[0], out[1]
