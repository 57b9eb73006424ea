"""Build manifests as builds.sr.ht documents them (man.sr.ht/builds.sr.ht/manifest.md): the
YAML a job is submitted with, parsed into a `Manifest`, or refused with a `ManifestError` that
names the field and the line (`line 12: tasks[1]: task names must match ^[a-z0-9_-]+$`).

The builds.sr.ht keys: `image` (required), `arch`, `packages`, `repositories`, `sources` (git
URLs, optional `#ref`), `environment`, `secrets` (UUIDs), `tasks` (ordered `name: script`
pairs, at least one), `triggers` (`email` / `webhook`), `artifacts` (literal relative paths),
`shell` and `oauth`. A key given as null takes its default, as in builds.sr.ht.

Two optional keys are Hutch's own, for Builtiful's provisioners; they change nothing of the
keys above:

- `vcpus`: how many virtual CPUs the job needs, 1 to 64 (default 1). A provisioner is handed
  only jobs that fit the CPUs it has free.
- `timeout`: how long the job may run, as `90s`, `30m`, `1h` or `1h30m` (default 1h, at most
  24h). A job still running then ends as `timeout`.

Stricter than builds.sr.ht, which ignores top-level keys it does not know: an unknown key is
refused with its name, because a typo (`artifact:`) silently ignored would lose a build's
output. Each key's reader and checks: `manifest_fields.py`; how the YAML is read, with its
size, depth and alias bounds: `manifest_yaml.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

from yaml.nodes import Node

from schemas.jobs import manifest_fields as read
from schemas.jobs.manifest_fields import DEFAULT_TIMEOUT_S, EnvValue, Source, Task
from schemas.jobs.manifest_triggers import EmailTrigger, Trigger, WebhookTrigger, triggers
from schemas.jobs.manifest_yaml import (
    MAX_DEPTH,
    MAX_EXPANDED_SIZE,
    MAX_MANIFEST_BYTES,
    ManifestError,
    boolean,
    compose,
    entries,
    fail,
    is_null,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPANDED_SIZE",
    "MAX_MANIFEST_BYTES",
    "EmailTrigger",
    "EnvValue",
    "Manifest",
    "ManifestError",
    "Source",
    "Task",
    "Trigger",
    "WebhookTrigger",
    "parse_manifest",
]

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
_T = TypeVar("_T")


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Manifest:
    image: str
    tasks: tuple[Task, ...]
    arch: str | None = None
    packages: tuple[str, ...] = ()
    repositories: Mapping[str, str] = field(default_factory=_empty, hash=False)
    """Name (a file name) -> the package manager's line for it."""
    sources: tuple[Source, ...] = ()
    environment: Mapping[str, EnvValue] = field(default_factory=_empty, hash=False)
    """A list is a shell array."""
    secrets: tuple[str, ...] = ()
    """Canonical (lowercase, hyphenated) UUIDs."""
    triggers: tuple[Trigger, ...] = ()
    artifacts: tuple[str, ...] = ()
    shell: bool = False
    oauth: str | None = None
    vcpus: int = 1
    timeout_s: int = DEFAULT_TIMEOUT_S

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def to_json(self) -> dict[str, JsonValue]:
        """The manifest with its own keys, defaults filled in. JSON is YAML, so
        `parse_manifest(orjson.dumps(m.to_json()).decode()) == m`."""
        out: dict[str, JsonValue] = {"image": self.image}
        if self.arch is not None:
            out["arch"] = self.arch
        out["packages"] = list(self.packages)
        out["repositories"] = dict(self.repositories)
        out["sources"] = [source.text for source in self.sources]
        out["environment"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.environment.items()
        }
        out["secrets"] = list(self.secrets)
        out["tasks"] = [{task.name: task.script} for task in self.tasks]
        out["triggers"] = [_trigger_json(t) for t in self.triggers]
        out["artifacts"] = list(self.artifacts)
        out["shell"] = self.shell
        if self.oauth is not None:
            out["oauth"] = self.oauth
        out["vcpus"] = self.vcpus
        out["timeout"] = read.format_duration(self.timeout_s)
        return out


def _trigger_json(trigger: Trigger) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {"action": trigger.action, "condition": trigger.condition}
    if isinstance(trigger, WebhookTrigger):
        out["url"] = trigger.url
        return out
    out["to"] = list(trigger.to)
    if trigger.cc:
        out["cc"] = list(trigger.cc)
    if trigger.in_reply_to is not None:
        out["in_reply_to"] = trigger.in_reply_to
    return out


KEYS = (
    "image", "arch", "packages", "repositories", "sources", "environment", "secrets", "tasks",
    "triggers", "artifacts", "shell", "oauth", "vcpus", "timeout",
)  # fmt: skip


def parse_manifest(text: str) -> Manifest:
    """Parse a build manifest; raises ManifestError naming the field and the line."""
    root = compose(text)
    given = entries(root, "")
    for name, (key, _) in given.items():
        if name not in KEYS:
            fail(key, name, f"unknown key; a manifest takes {', '.join(KEYS)}")
    values = {name: value for name, (_, value) in given.items() if not is_null(value)}
    if "image" not in values:
        fail(root, "image", "required (e.g. debian/bookworm)")
    if "tasks" not in values:
        fail(root, "tasks", "at least one task is required")

    def optional(key: str, reader: Callable[[Node], _T], default: _T) -> _T:
        return reader(values[key]) if key in values else default

    return Manifest(
        image=read.matching(values["image"], "image", read.IMAGE, "an image like debian/bookworm"),
        tasks=read.tasks(values["tasks"]),
        arch=optional("arch", lambda n: read.matching(n, "arch", read.ARCH, "an arch"), None),
        packages=optional("packages", read.packages, ()),
        repositories=MappingProxyType(optional("repositories", read.repositories, {})),
        sources=optional("sources", read.sources, ()),
        environment=MappingProxyType(optional("environment", read.environment, {})),
        secrets=optional("secrets", read.secrets, ()),
        triggers=optional("triggers", triggers, ()),
        artifacts=optional("artifacts", read.artifacts, ()),
        shell=optional("shell", lambda n: boolean(n, "shell"), False),
        oauth=optional("oauth", lambda n: read.one_line(n, "oauth"), None),
        vcpus=optional("vcpus", read.vcpus, 1),
        timeout_s=optional("timeout", read.timeout_s, DEFAULT_TIMEOUT_S),
    )
