"""The allowlist and header rules of ``loadtest serve`` as pure functions (no server, no gevent)."""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.allow import (
    FORBIDDEN_HEADERS,
    Allowlist,
    HeaderError,
    check_header,
    check_target,
    parse_entry,
    path_refusal,
)

PREFIX = "http://svc.test:8080/ok/"


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "keep-alive",
        "Proxy-Authorization",
        "proxy-connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "UPGRADE",
        "Content-Length",
        "X-Original-URL",
    ],
)
def test_hop_by_hop_and_framing_headers_are_refused(name: str) -> None:
    with pytest.raises(HeaderError, match="hop-by-hop or framing"):
        check_header(name, "1")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("X-Name", "caf\u00e9 \u20ac", "not Latin-1"),
        ("X-Name", "a\r\nHost: evil", "control character"),
        ("X-Name", "a\x00", "control character"),
        ("X Name", "v", "not an HTTP token"),
        ("X-N\u00e4me", "v", "not an HTTP token"),
        (":authority", "evil", "not an HTTP token"),
        ("", "v", "not an HTTP token"),
    ],
)
def test_bad_header_names_and_values_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(HeaderError, match=message):
        check_header(name, value)


def test_ordinary_headers_pass() -> None:
    check_header("X-Canary", "yes")
    check_header("Accept", "application/json;q=0.9, */*")
    check_header("X-Latin", "caf\u00e9\tok")  # Latin-1 and tab are fine


@pytest.mark.parametrize(
    "path",
    [
        "/ok/..;/admin",
        "/ok/%252e%252e/admin",
        "/ok/../admin",
        "/ok/./x",
        "/ok/%2e%2e/admin",
        "/ok/%2E%2e/admin",
        "/ok/..%2fadmin",
        "/ok/..%252fadmin",
        "/ok/;jsessionid=1/x",
        "/ok/x%3bparam",
        "/ok/..\\admin",
        "/ok/%5c..%5cadmin",
        "/ok/%00/x",
        "/ok/%2525252e%2525252e/admin",  # more rounds than we decode: refused, not guessed
    ],
)
def test_paths_a_server_could_normalise_out_of_the_prefix_are_refused(path: str) -> None:
    assert path_refusal(path) is not None
    refusal = Allowlist([PREFIX]).refusal("http://svc.test:8080" + path)
    assert refusal is not None and "not in the allowlist" in refusal


def test_plain_paths_under_the_prefix_pass() -> None:
    allow = Allowlist([PREFIX])
    assert allow.allows("http://svc.test:8080/ok/")
    assert allow.allows("http://svc.test:8080/ok/a/b%20c?x=../y")  # the query is not a path
    assert not allow.allows("http://svc.test:8080/admin")
    assert not allow.allows("http://svc.test:9090/ok/")
    assert not allow.allows("http://user:pw@svc.test:8080/ok/")


def test_a_prefix_ends_at_a_segment_boundary() -> None:
    allow = Allowlist(["http://svc.test/api"])
    assert allow.allows("http://svc.test/api") and allow.allows("http://svc.test/api/v1?x=1")
    assert not allow.allows("http://svc.test/apiary") and not allow.allows("http://svc.test/api-admin")


def test_non_ascii_targets_are_refused() -> None:
    for url in (
        "http://svc.test/\u00fc",
        "http://svc.test/\u4e2d",
        "http://b\u00fccher.test/",
        "http://svc.test/a b",
    ):
        with pytest.raises(ValueError, match="printable ASCII"):
            check_target(url)
    assert check_target("http://svc.test/%C3%BC") == "http://svc.test/%C3%BC"


def test_host_needs_an_entry_that_permits_it() -> None:
    allow = Allowlist(["http://ingress.test:80/;host=podinfo.test;host=*.apps.test", "*.other.test"])
    url = "http://ingress.test:80/api"
    assert allow.allows(url)
    assert allow.allows(url, {"Host": "podinfo.test"})
    assert allow.allows(url, {"host": "PODINFO.test:80"})
    assert allow.allows(url, {"Host": "a.apps.test"})
    refusal = allow.refusal(url, {"Host": "admin.internal"})
    assert refusal is not None and "Host 'admin.internal' is not permitted" in refusal
    # both spellings in one job: each must be permitted
    assert not allow.allows(url, {"Host": "podinfo.test", "host": "admin.internal"})
    # an entry without ;host= permits no Host header at all
    assert not allow.allows("http://x.other.test/", {"Host": "x.other.test"})
    for value in ("podinfo.test/evil", "a b", "podinfo.test@evil", ""):
        assert not allow.allows(url, {"Host": value})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("http://a.test/;hots=x", "expected ';host=NAME'"),
        ("http://a.test/;host=", "expected ';host=NAME'"),
        ("http://a.test/ok/../x", "dot segment"),
        (";host=x", "empty pattern"),
    ],
)
def test_bad_entries_are_named(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_entry(raw)


# -- generated hostile input ----------------------------------------------------------------------

_SEGMENTS = [
    "ok", "admin", "a", "", ".", "..", "%2e", "%2E", "%2e%2e", "%252e%252e", "%25252e", "..;", ";x",
    "%3b", "%3B", "\\", "%5c", "%2f", "%252f", "..%2f", "%00", "%0a", "\u00e9", "%", "%zz", "~",
]  # fmt: skip
paths = st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=8).map(lambda s: "/ok/" + "/".join(s))


def _normalisations(path: str) -> list[str]:
    """What servers might make of ``path`` before routing: decoded 0-3 times, ``;`` parameters
    stripped or not, backslashes as slashes or not, dot segments resolved."""
    out = []
    decoded = path
    for _ in range(4):
        for strip in (False, True):
            for backslash in (False, True):
                p = re.sub(r";[^/]*", "", decoded) if strip else decoded
                p = p.replace("\\", "/") if backslash else p
                out.append(posixpath.normpath(p) + ("/" if p.endswith("/") else ""))
        decoded = unquote(decoded)
    return out


@settings(max_examples=400, deadline=None)
@given(path=paths)
def test_an_allowed_path_stays_under_the_prefix_however_a_server_normalises_it(path: str) -> None:
    url = "http://svc.test:8080" + path
    try:
        check_target(url)
    except ValueError:
        return  # refused before the allowlist is asked (400)
    if Allowlist([PREFIX]).allows(url):
        for normal in _normalisations(path):
            assert normal == "/ok" or normal.startswith("/ok/"), (path, normal)


_NAMES = [*sorted(FORBIDDEN_HEADERS), "Proxy-X", "Host", "X-Ok", "Accept", "a:b", "x y", "ä"]
header_names = st.one_of(
    st.sampled_from(_NAMES).flatmap(
        lambda n: st.lists(st.booleans(), min_size=len(n), max_size=len(n)).map(
            lambda ups: "".join(c.upper() if u else c.lower() for c, u in zip(n, ups, strict=True))
        )
    ),
    st.text(max_size=12),
)
header_values = st.text(max_size=20) | st.sampled_from(["ok", "a\r\nb", "\u20ac", "\u00e9", "\x00", "\t"])


@settings(max_examples=400, deadline=None)
@given(name=header_names, value=header_values)
def test_a_header_that_passes_can_be_sent_as_written(name: str, value: str) -> None:
    try:
        check_header(name, value)
    except HeaderError as exc:
        assert str(exc)  # every refusal says something
        return
    lower = name.lower()
    assert lower not in FORBIDDEN_HEADERS and not lower.startswith("proxy-")
    assert name.isascii() and re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name)
    raw = f"{name}: {value}\r\n".encode("latin-1")  # never raises for a header that passed
    assert raw.count(b"\r\n") == 1 and b"\x00" not in raw
