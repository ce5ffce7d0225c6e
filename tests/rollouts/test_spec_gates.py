"""The gates' spec sections: Flagger's webhook names, Flux objects, signing; bad input names the field."""

from __future__ import annotations

import pytest

from rollouts.spec import SpecError, parse_spec
from rollouts.spec_gates import HOOK_TYPES
from tests.fixtures.gitrepo import guide_rollout


def test_flagger_webhooks_and_flux_parse() -> None:
    doc = guide_rollout(
        "/tmp/repo",
        webhooks=[
            {"name": "acceptance", "type": "pre-rollout", "url": "http://lt.test/hooks/acceptance"},
            {
                "name": "gate",
                "type": "confirm-promotion",
                "url": "http://lt.test/gate/check",
                "timeout": "30s",
            },
        ],
        flux={"kustomization": {"name": "apps"}, "reconcile": "receiver", "receiver": {"urlFile": "/s/url"}},
    )
    doc["spec"]["git"]["signing"] = {"key": "/etc/rollouts/signing/key"}
    rollout = parse_spec(doc)
    hooks = rollout.spec.webhooks
    assert [h.type for h in hooks] == ["pre-rollout", "confirm-promotion"]
    assert hooks[0].timeout == 10.0 and hooks[1].timeout == 30.0 and hooks[0].retries == 0
    assert rollout.spec.flux.kustomization is not None
    assert rollout.spec.flux.kustomization.namespace == "flux-system"
    assert rollout.spec.git.signing is not None and rollout.spec.git.signing.format == "ssh"
    assert set(HOOK_TYPES) >= {
        "confirm-rollout",
        "confirm-traffic-increase",
        "post-rollout",
        "rollback",
        "event",
    }


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        (
            "webhooks",
            [{"name": "x", "type": "pre", "url": "http://a"}],
            r"spec\.webhooks\[0\]\.type: must be",
        ),
        (
            "webhooks",
            [{"name": "x", "type": "event", "url": "ftp://a"}],
            r"spec\.webhooks\[0\]\.url: must be an",
        ),
        (
            "webhooks",
            [{"name": "x", "type": "event", "url": "http://u:p@a"}],
            r"spec\.webhooks\[0\]\.url: must not contain credentials",
        ),
        (
            "approval",
            {"confirmTrafficIncrease": [50]},
            r"spec: .*confirmTrafficIncrease: \[50\] are not in steps",
        ),
        ("approval", {"branchPrefix": "../x"}, r"spec\.approval\.branchPrefix: must be a plain"),
        (
            "approval",
            {"forge": {"kind": "github", "repository": "o/r"}},
            r"spec\.approval\.forge: .*tokenFile or tokenEnv",
        ),
        ("flux", {"reconcile": "receiver"}, r"spec\.flux: .*reconcile receiver needs receiver"),
        ("flux", {"kustomization": {"name": "Apps"}}, r"spec\.flux\.kustomization\.name: must be a DNS-1123"),
        (
            "flux",
            {"reconcile": "receiver", "receiver": {"urlFile": "/u", "type": "generic-hmac"}},
            r"generic-hmac needs tokenFile",
        ),
    ],
)
def test_bad_gate_sections_name_the_field(section: str, value: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(guide_rollout("/tmp/repo", **{section: value}), source="rollout.yaml")
