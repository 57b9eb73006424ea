"""One attempt at a job trigger: a webhook POST or an e-mail, and what came of it.

Webhooks go through the SSRF guard (base/net_guard.py: public addresses only, unless
`HUTCH_WEBHOOK_ALLOW_NETWORKS` allows a network; each address checked as connected to; no
redirect followed). E-mail goes to the operator's mail server (base/mail.py). The message is
the one builds.sr.ht sends: subject `[<tags>] build <status>`, a body naming the job's number,
status, duration, note, link and tasks.

An `Outcome` says whether another attempt may help (`retry`): a network error, a timeout, an
HTTP 408, 429 or 5xx, an SMTP 4xx; not a refused address, another HTTP answer, an SMTP 5xx or
a missing mail server. Details name no mail server: they are shown to the job's readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr

from base.mail import Outcome
from base.net_guard import AllowedNetworks, BlockedURL, FetchError, post
from schemas.jobs.manifest_fields import format_duration

WEBHOOK_SCHEMES = ("http", "https")
MAX_ANSWER_BYTES = 1 << 20
"""How much of a webhook receiver's answer is read (and dropped): only its status counts."""


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
