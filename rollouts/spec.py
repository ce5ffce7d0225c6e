"""The Rollout spec: a YAML document in the GitOps repo (or beside it) that says what to roll out.

```yaml
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {name: podinfo, namespace: test}
spec:
  git: {url: git@github.com:org/cluster.git, branch: master}
  route: {kind: VirtualService, path: workloads/podinfo/virtual-service.yaml, stable: ga, canary: canary}
  canary: {path: workloads/podinfo/canary-deployment.yaml}
  steps: [10, 60, 100]
```

Every model forbids unknown keys (a typo is an error, not a silently ignored setting) and is strict
(``"10"`` is not a weight). :func:`load_spec` turns pydantic's errors into one line per problem that
names the file and the field path, e.g. ``rollout.yaml: spec.steps[1]: must be between 1 and 100``.
The controller adds its own sections (analysis, load, notify, finalize) to :class:`RolloutSpec`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rollouts.spec_controller import AnalysisSpec, FinalizeSpec, LoadSpec, UrlFile
from rollouts.spec_gates import ApprovalSpec, FluxSpec, SigningSpec, WebhookSpec
from rollouts.spec_model import SpecModel as _Model  # the spec's rules, in one place
from rollouts.spec_strategy import check_post_promotion, check_route_kind, check_runnable
from rollouts.yamlsafe import SPEC, YamlLimitError, excerpt, load_all, read_text

API_VERSION = "rollouts.dev/v1alpha1"
SCHEMA_ID = "https://rollouts.dev/schema/v1alpha1/rollout.schema.json"
# Kubernetes object names: DNS-1123 subdomain (names) and label (namespaces).
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# scp-like Git URLs: user@host:path (no scheme).
_SCP_URL = re.compile(r"^[\w.-]+@[\w.-]+:")


# One bad spec gives at most this many lines; the rest are counted.
MAX_ERROR_LINES = 20
# Spec discovery reads at most this many YAML files under the directory.
MAX_SPEC_FILES = 1000


class SpecError(ValueError):
    """A Rollout spec that cannot be loaded; one line per problem, each naming file and field."""


def _name(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError("must be a DNS-1123 name (lower case letters, digits, '-' and '.')")
    return value


def _namespace(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError("must be a DNS-1123 label (lower case letters, digits and '-')")
    return value


def _repo_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError("must be a relative path inside the repository (no leading '/', no '..')")
    if any(part.lower() == ".git" for part in path.parts):
        raise ValueError("must not point into .git (Git's own files are not part of the desired state)")
    return value


def _step(value: int) -> int:
    if not 1 <= value <= 100:
        raise ValueError("must be between 1 and 100")
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


RepoPath = Annotated[str, AfterValidator(_repo_path)]
NonEmpty = Annotated[str, AfterValidator(_non_empty)]
Step = Annotated[int, AfterValidator(_step)]


class Metadata(_Model):
    """Identity of the rollout; ``namespace/name`` goes into the ``Rollout:`` commit trailer."""

    name: Annotated[str, AfterValidator(_name)] = Field(
        description="Name of the rollout (a DNS-1123 name), usually the service's: `podinfo`."
    )
    namespace: Annotated[str, AfterValidator(_namespace)] = Field(
        default="default", description="Namespace of the service (a DNS-1123 label): `test`."
    )


class Author(_Model):
    """The identity our commits are made as."""

    name: NonEmpty = Field(default="gitops-rollouts", description="Author and committer name of our commits.")
    email: NonEmpty = Field(
        default="rollouts@localhost", description="Author and committer e-mail of our commits."
    )


class GitSpec(_Model):
    """Where the desired state lives.

    ``url`` is any Git URL (``git@host:org/repo.git``, ``ssh://``, ``https://``, ``file://``) or a
    local path (relative paths are relative to the spec file). Credentials are never in the URL:
    ``sshKeyFile`` is a deploy key (``knownHostsFile`` pins the host keys); ``tokenFile``/``tokenEnv``
    hold an HTTPS token.
    """

    url: NonEmpty = Field(
        description="The repository Flux applies: a Git URL (SSH, HTTPS, `file://`) or a local path, "
        "without credentials."
    )
    branch: NonEmpty = Field(default="main", description="The branch Flux follows; our commits go there.")
    author: Author = Field(default=Author(), description="The identity our commits are made as.")
    ssh_key_file: str | None = Field(
        default=None, alias="sshKeyFile", description="Private deploy key file for SSH URLs."
    )
    known_hosts_file: str | None = Field(
        default=None,
        alias="knownHostsFile",
        description="known_hosts file pinning the SSH server's host keys (used with `sshKeyFile`; "
        "default `$ROLLOUTS_SSH_KNOWN_HOSTS`, else ssh's own).",
    )
    token_file: str | None = Field(
        default=None, alias="tokenFile", description="File holding an HTTPS access token."
    )
    token_env: str | None = Field(
        default=None, alias="tokenEnv", description="Environment variable holding an HTTPS access token."
    )
    signing: SigningSpec | None = Field(
        default=None,
        description="Sign our commits (default `$ROLLOUTS_SIGNING_KEY` and `$ROLLOUTS_SIGNING_FORMAT`, "
        "else unsigned).",
    )

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if value.startswith(("-", "/", "refs/")) or ".." in value or " " in value or value.endswith("/"):
            raise ValueError("must be a plain branch name (e.g. main)")
        return value

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        # Credentials (user:password@, https://TOKEN@, ?access_token=) and ext:: remote helpers.
        from rollouts.gitops.credentials import remote_url_problem

        problem = remote_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class RouteSpec(_Model):
    """The route file and the names of the two destinations in it."""

    kind: Literal["VirtualService", "HTTPRoute", "TrafficSplit"] = Field(
        description="The traffic API of the route file: Istio, Gateway API or SMI."
    )
    path: RepoPath = Field(description="The route file, relative to the repository root.")
    stable: NonEmpty = Field(
        description="The GA destination in the route: a DestinationRule subset (VirtualService) or a "
        "backend Service name (HTTPRoute, TrafficSplit)."
    )
    canary: NonEmpty = Field(description="The canary destination in the route, named like `stable`.")
    name: NonEmpty | None = Field(
        default=None,
        description="The route to edit when the file has several (VirtualService `http[].name`, "
        "HTTPRoute `rules[].name`); default: the one route with both destinations.",
    )

    @field_validator("canary")
    @classmethod
    def _distinct(cls, value: str, info: Any) -> str:
        if value == info.data.get("stable"):
            raise ValueError("must differ from stable")
        return value


class CanarySpec(_Model):
    """The canary workload manifest; its container images are the canary revision."""

    path: RepoPath = Field(
        description="The canary Deployment manifest, relative to the repository root; a new image "
        "there starts a new rollout."
    )


class RolloutSpec(_Model):
    """``spec`` of a Rollout."""

    git: GitSpec = Field(description="Where the desired state lives.")
    route: RouteSpec = Field(description="The route file whose weights the controller commits.")
    canary: CanarySpec = Field(
        description="The canary workload manifest: its images are the canary revision."
    )
    steps: list[Step] = Field(
        min_length=1,
        description="Canary weights in percent (1-100), strictly ascending: each is one commit, then "
        "analysis; after the last one the rollout is finalized (e.g. `[10, 60, 100]`).",
    )
    # The controller's sections (rollouts/spec_controller.py); all optional with documented defaults.
    analysis: AnalysisSpec = AnalysisSpec()
    load: LoadSpec = LoadSpec()
    notify: list[str | UrlFile] = Field(
        default_factory=list,
        description="Where notices go: apprise URLs, or `{urlFile: path}` for a file of them (secrets "
        "stay out of the spec).",
    )
    finalize: FinalizeSpec = FinalizeSpec()
    # The gates' sections (rollouts/spec_gates.py).
    flux: FluxSpec = FluxSpec()
    approval: ApprovalSpec = ApprovalSpec()
    webhooks: list[WebhookSpec] = Field(
        default_factory=list, description="Flagger-compatible webhooks (same types and payload)."
    )

    @model_validator(mode="after")
    def _approval_steps(self) -> RolloutSpec:
        gated = self.approval.confirm_traffic_increase
        if isinstance(gated, list) and (missing := [w for w in gated if w not in self.steps]):
            raise ValueError(f"approval.confirmTrafficIncrease: {missing} are not in steps {self.steps}")
        return self

    @field_validator("steps")
    @classmethod
    def _ascending(cls, steps: list[int]) -> list[int]:
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                raise ValueError(f"must be strictly ascending ({steps[i]} after {steps[i - 1]})")
        return steps

    @model_validator(mode="after")
    def _strategy(self) -> RolloutSpec:
        check_route_kind(self.analysis, self.route.kind)
        check_runnable(self.analysis, self.load.mode)
        check_post_promotion(self.analysis, self.steps, self.load.mode)
        return self


class Rollout(_Model):
    """A Rollout document."""

    api_version: Literal["rollouts.dev/v1alpha1"] = Field(
        alias="apiVersion", description="The version of this schema."
    )
    kind: Literal["Rollout"] = Field(description="Always `Rollout`.")
    metadata: Metadata = Field(description="Name and namespace of the rollout.")
    spec: RolloutSpec = Field(description="What to roll out, where, and how it is judged.")

    @property
    def key(self) -> str:
        """``namespace/name``, as in the ``Rollout:`` trailer."""
        return f"{self.metadata.namespace}/{self.metadata.name}"


def _loc(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as a field path: ``spec.steps[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("function-") or part in {"literal", "str", "int"}:
            continue  # validator names pydantic inserts into unions
        else:
            out += ("." if out else "") + part
    return out or "(document)"


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "literal_error":
        return f"must be {error['ctx']['expected']}, got {excerpt(error['input'])}"
    if kind in {"int_type", "string_type", "list_type", "model_type", "dict_type", "model_attributes_type"}:
        want = {
            "int": "an integer",
            "str": "a string",
            "lis": "a list",
            "mod": "a mapping",
            "dic": "a mapping",
        }
        return f"must be {want[kind[:3]]}, got {type(error['input']).__name__} {excerpt(error['input'])}"
    return str(error["msg"])


def format_errors(source: str, exc: ValidationError) -> str:
    """One ``source: field.path: problem`` line per error (at most :data:`MAX_ERROR_LINES`)."""
    errors = exc.errors()
    lines = [f"{source}: {_loc(tuple(e['loc']))}: {_message(e)}" for e in errors[:MAX_ERROR_LINES]]
    if len(errors) > MAX_ERROR_LINES:
        lines.append(f"{source}: ... and {len(errors) - MAX_ERROR_LINES} more problem(s)")
    return "\n".join(lines)


def parse_spec(data: Any, *, source: str = "<spec>") -> Rollout:
    """Validate already-parsed YAML; ``SpecError`` naming ``source`` and the fields."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: must be a YAML mapping (a Rollout document), got {type(data).__name__}")
    try:
        return Rollout.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_errors(source, exc)) from None


def load_spec(path: str | Path) -> Rollout:
    """Load and validate the Rollout spec at ``path``.

    A relative local-path ``spec.git.url`` is made absolute relative to the spec file's directory.
    """
    path = Path(path)
    try:
        documents = load_all(read_text(path, SPEC), str(path), SPEC)
    except YamlLimitError as exc:
        raise SpecError(str(exc)) from None
    if len(documents) != 1:
        raise SpecError(f"{path}: must hold exactly one Rollout document, found {len(documents)}")
    rollout = parse_spec(documents[0], source=str(path))
    url = rollout.spec.git.url
    if is_local_path(url) and not Path(url).is_absolute():
        git = rollout.spec.git.model_copy(update={"url": str((path.parent / url).resolve())})
        rollout = rollout.model_copy(update={"spec": rollout.spec.model_copy(update={"git": git})})
    return rollout


def spec_files(root: Path, repo: Path) -> tuple[list[Path], list[str]]:
    """The ``*.yaml``/``*.yml`` files under ``root`` (a directory of the repository at ``repo``), in
    sorted order, at most :data:`MAX_SPEC_FILES`, without entering linked directories; and one error
    line per linked directory and for the files beyond the bound (linked files are listed: the reader
    refuses them)."""
    files: list[Path] = []
    errors: list[str] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(directory)
        for name in sorted(dirnames):
            if (base / name).is_symlink():
                errors.append(f"{(base / name).relative_to(repo).as_posix()}: symbolic link, not followed")
        files += [base / name for name in filenames if name.endswith((".yaml", ".yml"))]
    files.sort()
    if len(files) > MAX_SPEC_FILES:
        errors.append(
            f"{root.relative_to(repo).as_posix()}: more than {MAX_SPEC_FILES} YAML files; the rest not read"
        )
    return files[:MAX_SPEC_FILES], errors


def scan_specs(root: Path, repo: Path) -> tuple[list[Rollout], list[str]]:
    """Every ``kind: Rollout`` document in the ``*.yaml``/``*.yml`` files under ``root`` (a directory
    of the repository checked out at ``repo``), and one error line per bad file, each naming it.

    One bad file never stops the others: whatever goes wrong reading or validating it (size, depth,
    aliases, encoding, an unexpected exception) becomes its error line. Symbolic links are never
    followed (a committed link may point anywhere): a linked file is an error, a linked directory is
    not entered. A file that cannot be parsed is reported only when it mentions ``kind: Rollout``
    (an unrelated manifest beside the specs is not ours to judge). At most :data:`MAX_SPEC_FILES`
    files are read, in sorted order.
    """
    files, errors = spec_files(root, repo)
    rollouts: list[Rollout] = []
    for file in files:
        rel = file.relative_to(repo).as_posix()
        try:
            found, problems = _specs_in_file(file, rel)
        except Exception as exc:  # whatever one file does, the others still run
            found, problems = [], [f"{rel}: cannot be read: {type(exc).__name__}: {excerpt(str(exc), 200)}"]
        rollouts += found
        errors += problems
    return rollouts, errors


def _specs_in_file(file: Path, rel: str) -> tuple[list[Rollout], list[str]]:
    if file.is_symlink():
        return [], [f"{rel}: is a symbolic link; Rollout specs must be regular files in the repository"]
    try:
        documents = load_all(read_text(file, SPEC, source=rel), rel, SPEC)
    except YamlLimitError as exc:
        with file.open("rb") as handle:
            head = handle.read(SPEC.max_bytes).decode("utf-8", errors="replace")
        return [], [str(exc)] if "kind: Rollout" in head else []
    rollouts: list[Rollout] = []
    errors: list[str] = []
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") != "Rollout":
            continue
        try:
            rollouts.append(parse_spec(doc, source=rel))
        except SpecError as exc:
            errors.append(str(exc))
    return rollouts, errors


def is_local_path(url: str) -> bool:
    """True when ``url`` is a filesystem path rather than a URL (``scheme://`` or ``user@host:path``)."""
    return "://" not in url and not _SCP_URL.match(url)


def json_schema() -> dict[str, Any]:
    """The JSON schema of a Rollout document (keys as written in YAML)."""
    schema = Rollout.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """:func:`json_schema` as the text of ``deploy/schema/rollout.schema.json``."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
