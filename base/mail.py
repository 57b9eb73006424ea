"""Sending e-mail through the operator's mail server (`HUTCH_SMTP_URL`): job triggers'
build mails (ingest/job_trigger_sends.py) and tenant e-mail verification links
(ingest/tenants_api.py). The standard library's smtplib, in a thread.

An `Outcome` says whether another attempt may help (`retry`): a network error, a timeout, an
SMTP 4xx; not an SMTP 5xx or a missing mail server. Details name no mail server: job
deliveries show them to the job's readers.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from base.settings import Settings

_SMTP_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    detail: str
    retry: bool = False


@dataclass(frozen=True, slots=True)
class MailServer:
    scheme: str
    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> MailServer:
        """`smtp://`, `smtp+starttls://` or `smtps://`, with `user:password@` when the server
        wants a login (percent-encoded as in any URL)."""
        parts = urlsplit(url)
        if parts.scheme not in _SMTP_PORTS or not parts.hostname:
            raise ValueError("HUTCH_SMTP_URL must be smtp://, smtp+starttls:// or smtps://host")
        return cls(
            parts.scheme,
            parts.hostname,
            parts.port or _SMTP_PORTS[parts.scheme],
            None if parts.username is None else unquote(parts.username),
            None if parts.password is None else unquote(parts.password),
        )


def mail_server(settings: Settings) -> MailServer | None:
    """The configured mail server; None without HUTCH_SMTP_URL."""
    return MailServer.from_url(settings.smtp_url) if settings.smtp_url else None


def sender(settings: Settings) -> str:
    """HUTCH_SMTP_FROM, else hutch@ the public URL's host."""
    return settings.smtp_from or f"hutch@{urlsplit(settings.public_url).hostname}"


async def send_mail(
    server: MailServer | None, msg: EmailMessage, to: Sequence[str], timeout_s: float
) -> Outcome:
    if server is None:
        return Outcome(False, "no mail server is configured (HUTCH_SMTP_URL); nothing was sent")
    try:
        refused = await asyncio.to_thread(_send, server, msg, to, timeout_s)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        temporary = any(400 <= code < 500 for code in codes)
        return Outcome(False, f"SMTP: every recipient refused ({codes})", retry=temporary)
    except smtplib.SMTPResponseException as exc:
        said = exc.smtp_error
        if isinstance(said, bytes):
            said = said.decode("utf-8", "replace")
        return Outcome(False, f"SMTP {exc.smtp_code}: {said}".strip(), retry=exc.smtp_code < 500)
    except (smtplib.SMTPException, OSError) as exc:  # a refused connection, a timeout, TLS
        return Outcome(False, f"SMTP: {type(exc).__name__}: {exc}", retry=True)
    if refused:
        return Outcome(True, f"sent; refused by the server: {', '.join(sorted(refused))}")
    return Outcome(True, f"sent to {len(to)} recipient(s)")


def _send(
    server: MailServer, msg: EmailMessage, to: Sequence[str], timeout_s: float
) -> dict[str, tuple[int, bytes]]:
    client: smtplib.SMTP
    if server.scheme == "smtps":
        context = ssl.create_default_context()
        client = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout_s, context=context)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=timeout_s)
    with client:
        if server.scheme == "smtp+starttls":
            client.starttls(context=ssl.create_default_context())
        if server.user is not None:
            client.login(server.user, server.password or "")
        return client.send_message(msg, to_addrs=list(to))
