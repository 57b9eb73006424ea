"""One attempt at a job trigger: a webhook POST or an e-mail, and what came of it.

Webhooks go through the SSRF guard (base/net_guard.py: public addresses only, unless
`HUTCH_WEBHOOK_ALLOW_NETWORKS` allows a network; each address checked as connected to; no
redirect followed). E-mail goes to the operator's mail server (`HUTCH_SMTP_URL`) with the
standard library's smtplib, in a thread. The message is the one builds.sr.ht sends: subject
`[<tags>] build <status>`, a body naming the job's number, status, duration, note, link and
tasks.

An `Outcome` says whether another attempt may help (`retry`): a network error, a timeout, an
HTTP 408, 429 or 5xx, an SMTP 4xx; not a refused address, another HTTP answer, an SMTP 5xx or
a missing mail server. Details name no mail server: they are shown to the job's readers.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

from base.net_guard import AllowedNetworks, BlockedURL, FetchError, post
from schemas.jobs.manifest_fields import format_duration

WEBHOOK_SCHEMES = ("http", "https")
MAX_ANSWER_BYTES = 1 << 20
"""How much of a webhook receiver's answer is read (and dropped): only its status counts."""
_SMTP_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    detail: str
    retry: bool = False


async def post_webhook(
    url: str, body: bytes, allowed: AllowedNetworks, timeout_s: float
) -> Outcome:
    try:
        answer = await post(
            url,
            body,
            headers={"content-type": "application/json", "user-agent": "Hutch job trigger"},
            allowed=allowed,
            timeout_s=timeout_s,
            max_bytes=MAX_ANSWER_BYTES,
            schemes=WEBHOOK_SCHEMES,
        )
    except BlockedURL as exc:
        return Outcome(False, f"refused: {exc}")
    except FetchError as exc:
        return Outcome(False, str(exc), retry=True)
    status = answer.status
    if 200 <= status < 300:
        return Outcome(True, f"HTTP {status}")
    return Outcome(False, f"HTTP {status}", retry=status in (408, 429) or status >= 500)


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


@dataclass(frozen=True, slots=True)
class JobMail:
    """What an e-mail says about an ended job."""

    number: int
    status: str
    tags: tuple[str, ...]
    note: str | None
    link: str
    duration_s: int
    tasks: Sequence[tuple[str, str]]
    """(name, status) in order, the setup step left out."""


def message(
    mail: JobMail, sender: str, to: Sequence[str], cc: Sequence[str], in_reply_to: str | None
) -> EmailMessage:
    """builds.sr.ht's build e-mail. Raises ValueError for a header that cannot be written."""
    msg = EmailMessage()
    label = "/".join(mail.tags)
    msg["Subject"] = f"[{label or 'hutch'}] build {mail.status}"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    marks = {"success": "✓", "failed": "✗"}
    tasks = " ".join(f"{marks.get(status, '-')} {name}" for name, status in mail.tasks)
    note = f"{mail.note}\n\n" if mail.note else ""
    msg.set_content(
        f"{label or 'Job'} #{mail.number}: {mail.status.upper()} in "
        f"{format_duration(mail.duration_s)}\n\n{note}{mail.link}\n\n{tasks}\n"
    )
    return msg


def recipients(*lists: Sequence[str]) -> list[str]:
    """The bare addresses of address lists as written (`A <a@x.org>, b@y.org`)."""
    found = [address for _, address in getaddresses([item for items in lists for item in items])]
    return list(dict.fromkeys(a for a in found if a))


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
