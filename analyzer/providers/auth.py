"""How requests to a metric backend carry credentials: ``requests`` auth objects, one per scheme.

* :class:`BearerTokenFile`: ``Authorization: Bearer <file contents>``, the file read at every
  request, so a token rotated on disk (a projected service-account token, a Google access token
  refreshed by a sidecar) is used at once.
* :class:`BasicAuthFile`: user name in the spec, password from a file.
* :class:`OAuth2ClientCredentials`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4) with
  oauthlib; the token is cached until shortly before it expires, and a 401 fetches a new
  one and sends the request again, once.
* :class:`AwsSigV4`: Amazon Managed Service for Prometheus; every request signed with botocore's
  SigV4 signer (credentials from botocore's usual chain: environment, shared files, roles), never
  a signer of our own.

Must never: put a token, secret, key or signature into an exception message, a log line or a
``repr`` (the classes hold file paths, not secrets, and read secrets when a request is sent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase, _basic_auth_str

from analyzer.providers.base import CredentialsError, ProviderUnavailableError, read_secret

#: A token is renewed this long before the expiry its endpoint announced (clock skew, slow requests).
EXPIRY_SKEW = 30.0


class BearerTokenFile(AuthBase):
    """``Authorization: Bearer <token>``, the token read from ``path`` at every request."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer " + read_secret(self.path, "bearer token")
        return request

    def __repr__(self) -> str:
        return f"BearerTokenFile({self.path!r})"


class BasicAuthFile(AuthBase):
    """HTTP basic auth, the password read from ``password_file`` at every request."""

    def __init__(self, username: str, password_file: str) -> None:
        self.username = username
        self.password_file = password_file

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        password = read_secret(self.password_file, "password")
        request.headers["Authorization"] = _basic_auth_str(self.username, password)
        return request

    def __repr__(self) -> str:
        return f"BasicAuthFile({self.username!r}, {self.password_file!r})"


class OAuth2ClientCredentials(AuthBase):
    """Bearer tokens from an OAuth 2.0 token endpoint (client-credentials grant), cached.

    The client secret is read from ``client_secret_file`` when a token is fetched. The token
    endpoint must be HTTPS (a grant that sends a secret is refused over plain HTTP); ``verify``
    and ``cert`` are the same TLS settings as the backend's. ``clock`` is for tests.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret_file: str,
        *,
        scopes: Sequence[str] = (),
        endpoint_params: dict[str, str] | None = None,
        timeout: float = 10.0,
        verify: bool | str = True,
        cert: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret_file = client_secret_file
        self.scopes = tuple(scopes)
        self.endpoint_params = dict(endpoint_params or {})
        self.timeout = timeout
        self.verify = verify
        self.cert = cert
        self.clock = clock
        self.tokens_fetched = 0
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.token_url!r}, client_id={self.client_id!r})"

    def token(self, *, renew: bool = False) -> str:
        """The cached token, fetched first when there is none, it is about to expire, or ``renew``."""
        with self._lock:
            if renew or self._token is None or self.clock() >= self._expires_at - EXPIRY_SKEW:
                self._token, self._expires_at = self._fetch()
            return self._token

    def _fetch(self) -> tuple[str, float]:
        # oauthlib builds the grant's body and parses the answer (error responses become
        # OAuth2Error, a missing token MissingTokenError); requests sends it. requests-oauthlib's
        # session is not used because it logs the token response at DEBUG level.
        from oauthlib.oauth2 import BackendApplicationClient, InsecureTransportError, OAuth2Error
        from oauthlib.oauth2.rfc6749.utils import is_secure_transport

        where = f"OAuth2 token endpoint {self.token_url}"
        if not is_secure_transport(self.token_url):
            detail = InsecureTransportError().error
            raise CredentialsError(f"{where}: {detail}: a client secret is only sent over HTTPS")
        secret = read_secret(self.client_secret_file, "OAuth2 client secret")
        client = BackendApplicationClient(client_id=self.client_id)
        extra: dict[str, Any] = dict(self.endpoint_params)
        if self.scopes:
            extra["scope"] = " ".join(self.scopes)
        body = client.prepare_request_body(**extra)
        asked = self.clock()  # expiry counts from the request, on our clock
        try:
            response = requests.post(
                self.token_url,
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
                # RFC 6749 2.3.1: client id and secret form-encoded, then HTTP basic.
                auth=(quote(self.client_id, safe=""), quote(secret, safe="")),
                timeout=self.timeout,
                verify=self.verify,
                cert=self.cert,
            )
        except requests.exceptions.RequestException as exc:
            raise ProviderUnavailableError(f"{where} did not answer: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderUnavailableError(f"{where} answered HTTP {response.status_code}")
        try:
            token = client.parse_request_body_response(response.text)
        except OAuth2Error as exc:
            detail = exc.error + (f" ({exc.description})" if exc.description else "")
            raise CredentialsError(f"{where} refused client {self.client_id!r}: {detail}") from None
        except ValueError:  # a body that is not a token response
            raise CredentialsError(
                f"{where} answered HTTP {response.status_code} with something that is not a token"
            ) from None
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise CredentialsError(f"{where} answered without an access_token")
        self.tokens_fetched += 1
        try:
            lifetime = float(token.get("expires_in", "inf"))
        except (TypeError, ValueError):
            lifetime = float("inf")  # no usable expiry: kept until a 401 says otherwise
        return access, asked + lifetime

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer " + self.token()
        request.register_hook("response", self._retry_on_401)  # type: ignore[no-untyped-call]
        return request

    def _retry_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        # As requests' own HTTPDigestAuth does: on 401, renew the token and send a copy once.
        if response.status_code != 401 or getattr(response.request, "_oauth2_retried", False):
            return response
        response.content  # noqa: B018 (consume the body, so the connection can be reused)
        response.close()
        again = response.request.copy()
        again.headers["Authorization"] = "Bearer " + self.token(renew=True)
        again._oauth2_retried = True  # type: ignore[attr-defined]
        if response.connection is None:
            return response
        retried: requests.Response = response.connection.send(again, **kwargs)
        retried.history.append(response)
        retried.request = again
        return retried


class _NoCanonicalRequests(logging.Filter):
    """botocore.auth logs the canonical request and the string to sign at DEBUG level; the
    canonical request holds the session token (``x-amz-security-token``). Those records are
    dropped, whatever the log level, and nothing else of botocore's."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith("CanonicalRequest") or message.startswith("StringToSign"))


def _quiet_botocore_auth() -> None:
    logger = logging.getLogger("botocore.auth")
    if not any(isinstance(f, _NoCanonicalRequests) for f in logger.filters):
        logger.addFilter(_NoCanonicalRequests())


class AwsSigV4(AuthBase):
    """Requests signed for AWS with botocore's SigV4 signer (``service`` ``aps`` for Amazon Managed
    Service for Prometheus). Credentials come from botocore's chain, with ``profile`` if given.

    Before signing, the query string is re-encoded as AWS canonicalises it (RFC 3986: ``%20``, not
    ``+``, for a space): botocore signs the URL as it is, and a ``+`` would not match the signature
    the service computes.
    """

    def __init__(self, region: str, *, service: str = "aps", profile: str | None = None) -> None:
        self.region = region
        self.service = service
        self.profile = profile
        self._session: Any = None
        _quiet_botocore_auth()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AwsSigV4(region={self.region!r}, service={self.service!r}, profile={self.profile!r})"

    def _credentials(self) -> Any:
        import botocore.exceptions
        import botocore.session

        with self._lock:
            try:
                if self._session is None:
                    self._session = botocore.session.Session(profile=self.profile)
                credentials = self._session.get_credentials()
            except botocore.exceptions.BotoCoreError as exc:
                raise CredentialsError(f"AWS credentials for SigV4: {exc}") from None
        if credentials is None:
            raise CredentialsError(
                "no AWS credentials for SigV4 (looked in the environment, the shared credentials "
                "and config files, and the container and instance roles)"
            )
        return credentials.get_frozen_credentials()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request.url = canonical_query_url(request.url or "")
        signed = AWSRequest(method=request.method, url=request.url, data=request.body or b"")
        if "Content-Type" in request.headers:
            signed.headers["Content-Type"] = request.headers["Content-Type"]
        SigV4Auth(self._credentials(), self.service, self.region).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        return request


def canonical_query_url(url: str) -> str:
    """``url`` with its query string encoded as AWS canonicalises it (RFC 3986 percent-encoding)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode(pairs, quote_via=quote, safe="-_.~")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
