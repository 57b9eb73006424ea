"""Triggers, which run when a job ends (builds.sr.ht's `triggers`): an e-mail to some addresses
or a webhook POST of the job's JSON, on `always`, `success` or `failure`."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses
from typing import Literal, TypeAlias

from yaml.nodes import Node, ScalarNode

from schemas.jobs.manifest_fields import SPACE_OR_CONTROL, one_line, split_url
from schemas.jobs.manifest_yaml import entries, fail, is_null, items, join, text

Condition = Literal["always", "success", "failure"]
CONDITIONS: tuple[Condition, ...] = ("always", "success", "failure")
WEBHOOK_SCHEMES = frozenset({"https", "http"})


@dataclass(frozen=True, slots=True)
class EmailTrigger:
    condition: Condition
    to: tuple[str, ...]
    """Address lists as written (`a@x.org, B <b@y.org>`, or one per item)."""
    cc: tuple[str, ...] = ()
    in_reply_to: str | None = None
    action: Literal["email"] = "email"


@dataclass(frozen=True, slots=True)
class WebhookTrigger:
    condition: Condition
    url: str
    """http or https; which hosts Hutch may reach is decided when it is delivered."""
    action: Literal["webhook"] = "webhook"


Trigger: TypeAlias = EmailTrigger | WebhookTrigger


_TRIGGER_KEYS = {"email": ("to", "cc", "in_reply_to"), "webhook": ("url",)}


def triggers(node: Node) -> tuple[Trigger, ...]:
    return tuple(_trigger(n, f"triggers[{i}]") for i, n in enumerate(items(node, "triggers")))


def _trigger(node: Node, path: str) -> Trigger:
    given = entries(node, path)
    values = {name: value for name, (_, value) in given.items() if not is_null(value)}
    if "action" not in values:
        fail(node, join(path, "action"), "required: email or webhook")
    action = text(values["action"], join(path, "action"))
    if action not in _TRIGGER_KEYS:
        fail(
            values["action"],
            join(path, "action"),
            f"unknown trigger action {action!r}; one of email, webhook",
        )
    takes = ("action", "condition", *_TRIGGER_KEYS[action])
    for name, (key, _) in given.items():
        if name not in takes:
            article = "an" if action == "email" else "a"
            fail(
                key,
                join(path, name),
                f"unknown key for {article} {action} trigger; it takes {', '.join(takes)}",
            )
    if "condition" not in values:
        fail(node, join(path, "condition"), "required: always, success or failure")
    condition = text(values["condition"], join(path, "condition"))
    if condition not in CONDITIONS:
        fail(
            values["condition"],
            join(path, "condition"),
            f"unknown condition {condition!r}; one of always, success, failure",
        )
    if action == "webhook":
        if "url" not in values:
            fail(node, join(path, "url"), "required: the http(s) URL to POST the job to")
        return WebhookTrigger(condition, _webhook_url(values["url"], join(path, "url")))
    if "to" not in values:
        fail(node, join(path, "to"), "required: the addresses to write to")
    in_reply_to = values.get("in_reply_to")
    return EmailTrigger(
        condition,
        _addresses(values["to"], join(path, "to")),
        _addresses(values["cc"], join(path, "cc")) if "cc" in values else (),
        None if in_reply_to is None else one_line(in_reply_to, join(path, "in_reply_to")),
    )


def _addresses(node: Node, path: str) -> tuple[str, ...]:
    listed: list[tuple[Node, str]]
    if isinstance(node, ScalarNode):
        listed = [(node, path)]
    else:
        listed = [(n, f"{path}[{i}]") for i, n in enumerate(items(node, path))]
    if not listed:
        fail(node, path, "at least one address is required")
    for item, at in listed:
        value = one_line(item, at)
        addresses = getaddresses([value])
        if not addresses or not all(_is_address(address) for _, address in addresses):
            fail(item, at, f"{value!r} is not a list of e-mail addresses")
    return tuple(text(item, at) for item, at in listed)


def _webhook_url(node: Node, path: str) -> str:
    url = text(node, path)
    if SPACE_OR_CONTROL.search(url) or split_url(url, WEBHOOK_SCHEMES) is None:
        fail(node, path, "expected an http:// or https:// URL")
    return url


def _is_address(address: str) -> bool:
    local, _, domain = address.rpartition("@")
    return bool(local and domain)
