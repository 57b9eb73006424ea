"""Public keys from an OpenPGP keyserver over its VKS API, as keys.openpgp.org serves it:

    GET /vks/v1/by-fingerprint/{FINGERPRINT}   upper-case hex, no spaces
    GET /vks/v1/by-keyid/{KEYID}               upper-case hex (16 digits)
    GET /vks/v1/by-email/{address}             URL-encoded

200 is the ASCII-armoured key, 404 no such key. The keyserver is a setting
(HUTCH_KEYSERVER_URL, https:// only: base/settings.py refuses another at start). Each fetch goes
through the SSRF guard (base/net_guard.py): every hop, redirects included, must be https and
resolve to public addresses only (or to HUTCH_KEYSERVER_ALLOW_NETWORKS), each connection goes
to the address that was checked, the answer is read up to HUTCH_KEYSERVER_MAX_BYTES (a larger
one is refused without reading on), and the whole fetch has HUTCH_KEYSERVER_TIMEOUT seconds.

What goes wrong is the client's answer: 404 `key_not_found`; 504 `keyserver_timeout`; 502
`keyserver_unreachable`, `keyserver_refused` (an address the guard refuses, e.g. a redirect
to 127.0.0.1 or to http://), `key_too_large`, `keyserver_error` (another status).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from urllib.parse import quote

from base.client_errors import BadGateway, HutchError, NotFound
from base.net_guard import (
    AllowedNetworks,
    BlockedURL,
    FetchError,
    TooLarge,
    fetch,
    parse_allowed_networks,
)
from base.settings import Settings, SettingsError

ACCEPT = "application/pgp-keys"
_SLACK_S = 5.0
"""The guard's own limits are set this much past the fetch's: its deadline is ours."""


class KeyserverTimeout(HutchError):
    status, code = 504, "keyserver_timeout"


@dataclass(frozen=True, slots=True)
class Keyserver:
    url: str
    allowed: AllowedNetworks
    verify: ssl.SSLContext | bool = field(repr=False)
    timeout_s: float
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyserver:
        """Raises SettingsError for an unreadable CA file or a malformed network."""
        verify: ssl.SSLContext | bool = True
        if settings.keyserver_ca:
            try:
                verify = ssl.create_default_context(cafile=settings.keyserver_ca)
            except (OSError, ssl.SSLError) as exc:
                raise SettingsError(f"HUTCH_KEYSERVER_CA: cannot read it: {exc}") from None
        try:
            allowed = parse_allowed_networks(settings.keyserver_allow_networks)
        except ValueError:
            raise SettingsError(
                "HUTCH_KEYSERVER_ALLOW_NETWORKS must be comma-separated networks such as "
                f"10.0.0.0/8, not {settings.keyserver_allow_networks!r}"
            ) from None
        return cls(
            settings.keyserver_url,
            allowed,
            verify,
            settings.keyserver_timeout_s,
            settings.keyserver_max_bytes,
        )

    async def by_fingerprint(self, fingerprint: str) -> bytes:
        return await self._get(f"/vks/v1/by-fingerprint/{fingerprint.upper()}")

    async def by_key_id(self, key_id: str) -> bytes:
        return await self._get(f"/vks/v1/by-keyid/{key_id.upper()}")

    async def by_email(self, email: str) -> bytes:
        return await self._get(f"/vks/v1/by-email/{quote(email, safe='')}")

    async def _get(self, path: str) -> bytes:
        """The key the keyserver answers at `path`; raises the client's error otherwise."""
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await fetch(
                    self.url + path,
                    allowed=self.allowed,
                    max_bytes=self.max_bytes,
                    timeout_s=self.timeout_s + _SLACK_S,
                    total_timeout_s=self.timeout_s + _SLACK_S,
                    verify=self.verify,
                    headers={"accept": ACCEPT, "user-agent": "Hutch"},
                )
        except TimeoutError:
            raise KeyserverTimeout(
                f"the keyserver did not answer within {self.timeout_s:g} s"
            ) from None
        except BlockedURL as exc:
            raise BadGateway(
                f"the keyserver led to an address Hutch does not fetch from: {exc}",
                code="keyserver_refused",
            ) from None
        except TooLarge:
            raise BadGateway(
                f"the keyserver's answer is larger than {self.max_bytes} bytes; it was not "
                "read further",
                code="key_too_large",
            ) from None
        except FetchError as exc:
            raise BadGateway(
                f"the keyserver could not be reached: {exc}", code="keyserver_unreachable"
            ) from None
        if answer.status == 404:
            raise NotFound("the keyserver has no such key", code="key_not_found")
        if answer.status != 200:
            raise BadGateway(f"the keyserver answered HTTP {answer.status}", code="keyserver_error")
        return answer.body
