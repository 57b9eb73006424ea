"""SSRF guard for the builder, job webhooks and the keyserver: which URLs Hutch may fetch (or
POST to) on a user's behalf, and requests that cannot be steered to an internal address.

Two checks, at two moments:
- `check_url_literal` when a build is requested: https only, no credentials in the URL, and
  no host that is, or spells, a non-public address (IPv4 in decimal/octal/hex/short forms,
  IPv6 including IPv4-mapped, 6to4 and NAT64 forms, `localhost` and `*.localhost`).
- `fetch` when the builder runs: every hop's host is resolved, refused if ANY address is
  not public, and the connection goes to the checked address itself (the request keeps the
  real name in the Host header and in TLS SNI/certificate checks), so a DNS answer that
  changes between check and connect (rebinding) cannot redirect it. Redirects are followed
  by hand, each hop checked again; bodies are capped; every step has a deadline.
- `post` (job webhooks) makes the same checked request once, with a body, following no
  redirect.

`HUTCH_BUILDER_ALLOW_NETWORKS` (e.g. "127.0.0.0/8,::1/128") names networks that count as
allowed anyway, for tests and private deployments; `parse_allowed_networks` reads it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AllowedNetworks = Sequence[IPNetwork]

ALLOW_NETWORKS_ENV = "HUTCH_BUILDER_ALLOW_NETWORKS"
MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_LEGACY_V4 = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}")
_REDIRECTS = {301, 302, 303, 307, 308}


class FetchError(Exception):
    """The URL could not be fetched (network, TLS, timeout, too large, too many redirects)."""


class BlockedURL(FetchError):
    """The URL, or an address its host resolves to, is not one Hutch may fetch."""


class TooLarge(FetchError):
    """The answer is larger than the caller's limit; it was not read past it."""


def parse_allowed_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDR networks; ValueError names the first malformed one."""
    networks = []
    for item in text.split(","):
        if item := item.strip():
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{ALLOW_NETWORKS_ENV}: {item!r} is not a network") from None
    return tuple(networks)


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _public(ip: IPAddress) -> bool:
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


def address_allowed(ip: IPAddress, allowed: AllowedNetworks = ()) -> bool:
    """Public (and carrying no non-public IPv4), or inside one of the allowed networks."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    inner = _embedded_v4(ip)
    candidates = [ip] if inner is None else [ip, inner]
    if any(c.version == n.version and c in n for c in candidates for n in allowed):
        return True
    return all(_public(c) for c in candidates)


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells, in any form a resolver would accept, or None for a name."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_V4.fullmatch(host):
        try:  # inet_aton reads 127.1, 2130706433, 0x7f000001, 0177.0.0.1 like resolvers do
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _describe(ip: IPAddress) -> str:
    return f"{ip} is not a public address"


def check_url_literal(
    url: str, allowed: AllowedNetworks = (), schemes: Iterable[str] = ("https",)
) -> str | None:
    """Why `url` may not be fetched, judging by its text alone; None when it may be.

    Does no DNS: names that resolve to private addresses are caught by `fetch`.
    """
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return f"url must be a string of at most {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        return f"url is malformed: {exc}"
    if parts.scheme not in schemes:
        return f"url must use {' or '.join(schemes)}"
    if parts.username is not None or parts.password is not None:
        return "url must not contain credentials"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "url has no host"
    if port == 0:
        return "url has an invalid port"
    ip = literal_address(host)
    if ip is None and (
        host == "localhost" or host.endswith(".localhost") or host == "localhost.localdomain"
    ):
        ip = ipaddress.IPv4Address("127.0.0.1")
    if ip is not None:
        return None if address_allowed(ip, allowed) else f"url host {host} is not public"
    if ":" in host or "%" in host:
        return "url host is not a valid address"
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "url host is not a valid domain name"
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return "url host is not a valid domain name"
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        return "url host looks like an IP address but is not a valid one"
    return None


async def resolve_and_check(
    host: str, port: int, allowed: AllowedNetworks = (), timeout_s: float = 5.0
) -> list[IPAddress]:
    """Every address `host` resolves to, in resolver order; BlockedURL if any is not allowed.

    Connect only to the returned addresses: resolving again could answer differently.
    """
    literal = literal_address(host)
    if literal is not None:
        if not address_allowed(literal, allowed):
            raise BlockedURL(f"{host}: {_describe(literal)}")
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from None
    except TimeoutError:
        raise FetchError(f"resolving {host} timed out") from None
    return check_resolved(host, [str(info[4][0]) for info in infos], allowed)


def check_resolved(
    host: str, resolved: Iterable[str], allowed: AllowedNetworks = ()
) -> list[IPAddress]:
    """The distinct addresses, in order; BlockedURL if ANY of them is not allowed.

    One bad address is enough to refuse: a client connecting would pick among them.
    """
    addresses: list[IPAddress] = []
    for text in resolved:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if not address_allowed(ip, allowed):
            raise BlockedURL(f"{host} resolves to {ip}, which is not a public address")
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise FetchError(f"{host} has no address")
    return addresses


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str  # after redirects
    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def fetch(
    url: str,
    *,
    allowed: AllowedNetworks = (),
    max_bytes: int = 5 << 20,
    timeout_s: float = 10.0,
    total_timeout_s: float = 30.0,
    max_redirects: int = 5,
    verify: ssl.SSLContext | bool = True,
    schemes: Iterable[str] = ("https",),
    headers: Mapping[str, str] | None = None,
) -> FetchResult:
    """GET `url` under the guard. Raises BlockedURL (policy) or FetchError (everything else).

    Non-2xx answers are returned, not raised: the caller knows which it can use.
    """
    schemes = tuple(schemes)
    try:
        async with asyncio.timeout(total_timeout_s), _client(verify, timeout_s) as client:
            for _ in range(max_redirects + 1):
                result = await _fetch_once(client, url, allowed, schemes, max_bytes, headers)
                location = result.headers.get("location")
                if result.status not in _REDIRECTS or not location:
                    return result
                url = urljoin(url, location)
    except TimeoutError:
        raise FetchError(f"fetching {url} took longer than {total_timeout_s} s") from None
    raise FetchError(f"more than {max_redirects} redirects")


async def post(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    allowed: AllowedNetworks = (),
    max_bytes: int = 64 << 10,
    timeout_s: float = 10.0,
    verify: ssl.SSLContext | bool = True,
    schemes: Iterable[str] = ("https",),
) -> FetchResult:
    """POST `body` to `url` under the guard, once: a redirect is returned, not followed (a
    body is not sent again to wherever an answer points). Raises BlockedURL or FetchError;
    the answer's body is read up to `max_bytes`."""
    try:
        async with asyncio.timeout(timeout_s), _client(verify, timeout_s) as client:
            return await _fetch_once(
                client, url, allowed, tuple(schemes), max_bytes, headers, "POST", body
            )
    except TimeoutError:
        raise FetchError(f"posting to {url} took longer than {timeout_s} s") from None


def _client(verify: ssl.SSLContext | bool, timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=verify,
        trust_env=False,  # a proxy would resolve names itself, undoing the pinning
        follow_redirects=False,
        timeout=httpx.Timeout(timeout_s),
        # One connection per request: a pooled one could carry another name's TLS session.
        limits=httpx.Limits(max_keepalive_connections=0),
    )


async def _fetch_once(
    client: httpx.AsyncClient,
    url: str,
    allowed: AllowedNetworks,
    schemes: tuple[str, ...],
    max_bytes: int,
    extra_headers: Mapping[str, str] | None,
    method: str = "GET",
    content: bytes | None = None,
) -> FetchResult:
    problem = check_url_literal(url, allowed, schemes)
    if problem:
        raise BlockedURL(problem)
    target = httpx.URL(url)
    host = target.raw_host.decode("ascii")  # IDNA-encoded; IPv6 without brackets
    port = target.port or (443 if target.scheme == "https" else 80)
    addresses = await resolve_and_check(host, port, allowed)
    headers = {
        "accept-encoding": "gzip, deflate",
        **(extra_headers or {}),
        "host": target.netloc.decode("ascii"),
    }
    extensions = {}
    if target.scheme == "https" and literal_address(host) is None:
        extensions["sni_hostname"] = host  # also the name the certificate is checked against
    last_error: Exception | None = None
    for ip in addresses:
        request = client.build_request(
            method,
            target.copy_with(host=str(ip)),
            headers=headers,
            content=content,
            extensions=extensions,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            last_error = exc  # try the host's next address
            continue
        except httpx.HTTPError as exc:
            raise FetchError(f"fetching {url} failed: {exc}") from None
        try:
            body = await _read_capped(response, max_bytes, url)
        finally:
            await response.aclose()
        return FetchResult(
            url=url, status=response.status_code, headers=dict(response.headers), body=body
        )
    raise FetchError(f"cannot connect to {host}: {last_error}")


async def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"{url} is larger than {max_bytes} bytes")
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():  # decompressed: caps gzip bombs too
            body += chunk
            if len(body) > max_bytes:
                raise TooLarge(f"{url} is larger than {max_bytes} bytes")
    except httpx.HTTPError as exc:
        raise FetchError(f"reading {url} failed: {exc}") from None
    return bytes(body)
