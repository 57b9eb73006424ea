"""Build manifests (schemas/jobs/job_manifest.py): what a builds.sr.ht manifest parses into, and
every kind of bad manifest refused with its field and its line, within time and memory."""

from __future__ import annotations

import random
import time
import tracemalloc
from pathlib import Path

import orjson
import pytest
import yaml

from schemas.jobs.job_manifest import (
    MAX_DEPTH,
    MAX_MANIFEST_BYTES,
    EmailTrigger,
    Manifest,
    ManifestError,
    Source,
    Task,
    WebhookTrigger,
    parse_manifest,
)
from schemas.validation import Invalid

SECRET = "7ebab70c-36a0-4e29-8b85-c2d7b2f5a5f1"

FULL = f"""\
image: debian/bookworm
arch: x86_64
packages:
  - curl
  - build-essential
repositories:
  extra: "deb http://deb.example.org/debian bookworm main"
sources:
  - https://git.example.org/~alice/app#v1.2
  - git@github.com:alice/lib.git
  - ssh://git@git.example.org/tools
environment:
  CC: gcc
  JOBS: 4
  RATIO: 0.5
  DEBUG: false
  FLAGS: [-O2, -g]
secrets:
  - {SECRET.upper()}
tasks:
  - build: |
      make -j"$JOBS"
  - test: make check
  - package: tar czf out/app.tar.gz build
triggers:
  - action: email
    condition: failure
    to: "Alice <alice@example.org>, bob@example.org"
    cc: [carol@example.org]
    in_reply_to: <1234@example.org>
  - action: webhook
    condition: always
    url: https://hooks.example.org/ci
artifacts:
  - out/app.tar.gz
shell: true
oauth: git.sr.ht/REPOSITORIES:RO
vcpus: 4
timeout: 1h30m
"""

BASE = "image: debian/bookworm\ntasks:\n  - build: make\n"
"""Three lines; a case adds its own from line 4 on."""


def refused(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text)
    return caught.value


def test_a_manifest_with_every_key() -> None:
    manifest = parse_manifest(FULL)

    assert manifest == Manifest(  # noqa: S604 (shell is the manifest's key, not a subprocess's)
        image="debian/bookworm",
        arch="x86_64",
        packages=("curl", "build-essential"),
        repositories={"extra": "deb http://deb.example.org/debian bookworm main"},
        sources=(
            Source(
                "https://git.example.org/~alice/app#v1.2",
                "https://git.example.org/~alice/app",
                "v1.2",
                "app",
            ),
            Source("git@github.com:alice/lib.git", "git@github.com:alice/lib.git", None, "lib"),
            Source(
                "ssh://git@git.example.org/tools", "ssh://git@git.example.org/tools", None, "tools"
            ),
        ),
        environment={"CC": "gcc", "JOBS": 4, "RATIO": 0.5, "DEBUG": False, "FLAGS": ("-O2", "-g")},
        secrets=(SECRET,),
        tasks=(
            Task("build", 'make -j"$JOBS"\n'),
            Task("test", "make check"),
            Task("package", "tar czf out/app.tar.gz build"),
        ),
        triggers=(
            EmailTrigger(
                "failure",
                to=("Alice <alice@example.org>, bob@example.org",),
                cc=("carol@example.org",),
                in_reply_to="<1234@example.org>",
            ),
            WebhookTrigger("always", "https://hooks.example.org/ci"),
        ),
        artifacts=("out/app.tar.gz",),
        shell=True,
        oauth="git.sr.ht/REPOSITORIES:RO",
        vcpus=4,
        timeout_s=5400,
    )
    assert manifest.task_names == ("build", "test", "package")


def test_the_json_form_has_the_manifest_keys_and_parses_back_to_the_same_manifest() -> None:
    manifest = parse_manifest(FULL)
    as_json = manifest.to_json()

    assert as_json["tasks"] == [
        {"build": 'make -j"$JOBS"\n'},
        {"test": "make check"},
        {"package": "tar czf out/app.tar.gz build"},
    ]
    assert as_json["environment"] == {
        "CC": "gcc", "JOBS": 4, "RATIO": 0.5, "DEBUG": False, "FLAGS": ["-O2", "-g"],
    }  # fmt: skip
    assert as_json["sources"] == [s.text for s in manifest.sources]
    assert as_json["triggers"] == [
        {
            "action": "email",
            "condition": "failure",
            "to": ["Alice <alice@example.org>, bob@example.org"],
            "cc": ["carol@example.org"],
            "in_reply_to": "<1234@example.org>",
        },
        {"action": "webhook", "condition": "always", "url": "https://hooks.example.org/ci"},
    ]
    assert (as_json["vcpus"], as_json["timeout"], as_json["secrets"]) == (4, "1h30m", [SECRET])
    assert parse_manifest(orjson.dumps(as_json).decode()) == manifest


def test_a_minimal_manifest_takes_the_defaults() -> None:
    manifest = parse_manifest(BASE)

    assert manifest == Manifest(image="debian/bookworm", tasks=(Task("build", "make"),))
    assert (manifest.vcpus, manifest.timeout_s, manifest.shell) == (1, 3600, False)
    assert manifest.to_json() == {
        "image": "debian/bookworm", "packages": [], "repositories": {}, "sources": [],
        "environment": {}, "secrets": [], "tasks": [{"build": "make"}], "triggers": [],
        "artifacts": [], "shell": False, "vcpus": 1, "timeout": "1h",
    }  # fmt: skip


def test_null_keys_take_their_defaults_as_in_builds_sr_ht() -> None:
    manifest = parse_manifest(BASE + "packages:\narch: ~\nenvironment: null\nshell:\n")

    assert manifest == parse_manifest(BASE)


def test_anchors_aliases_and_merge_keys_are_read_as_yaml_says() -> None:
    manifest = parse_manifest(
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - build: &make make -j4\n"
        "  - again: *make\n"
        "triggers:\n"
        "  - &mail {action: email, condition: failure, to: a@example.org}\n"
        "  - {<<: *mail, condition: success, cc: b@example.org}\n"
    )

    assert manifest.tasks == (Task("build", "make -j4"), Task("again", "make -j4"))
    assert manifest.triggers == (
        EmailTrigger("failure", ("a@example.org",)),
        EmailTrigger("success", ("a@example.org",), cc=("b@example.org",)),
    )


def test_hutch_keys_vcpus_and_timeout() -> None:
    for timeout, seconds in [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1h1m1s", 3661),
        ("24h", 86400),
    ]:
        manifest = parse_manifest(BASE + f"vcpus: 64\ntimeout: {timeout}\n")
        assert (manifest.vcpus, manifest.timeout_s) == (64, seconds)


def test_the_error_is_the_one_schema_error_the_web_layer_answers_with_422() -> None:
    error = refused(BASE + "  - Build: make\n")

    assert isinstance(error, Invalid)
    assert error.field == "tasks[1]"
    assert error.line == 4
    assert (
        error.message
        == "line 4: tasks[1]: task names must match ^[a-z0-9_-]+$ (at most 128 characters)"
    )
    assert str(error) == error.message


# Every class of bad manifest: (added to BASE or whole text, field, line, words of the message)

CASES: dict[str, tuple[str, str, int | None, str]] = {
    # broken YAML, at the line the parser reports
    "yaml mapping in a value": (BASE + "arch: a: b\n", "", 4, "invalid YAML: mapping values are not allowed"),
    "yaml bad indentation": (BASE + " packages: [curl]\n", "", 4, "invalid YAML"),
    "yaml unclosed flow": (BASE + "packages: [curl\nshell: true\n", "", 5, "invalid YAML"),
    "yaml undefined alias": (BASE + "arch: *nope\n", "", 4, "undefined alias"),
    "yaml tab indentation": (BASE + "environment:\n\tA: b\n", "", 5, "invalid YAML"),
    # wrong types, key by key
    "image list": ("image: [debian]\ntasks:\n  - build: make\n", "image", 1, "expected a string, found a list"),
    "image date": ("image: 2024-01-01\ntasks:\n  - build: make\n", "image", 1, "found a date"),
    "arch number": (BASE + "arch: 64\n", "arch", 4, "expected a string, found an integer"),
    "packages string": (BASE + "packages: curl\n", "packages", 4, "expected a list, found a string"),
    "packages nested": (BASE + "packages: [[curl]]\n", "packages[0]", 4, "expected a string, found a list"),
    "repositories list": (BASE + "repositories: [a]\n", "repositories", 4, "expected a mapping"),
    "repositories value": (BASE + "repositories:\n  extra: 1\n", "repositories.extra", 5, "expected a string"),
    "sources string": (BASE + "sources: https://x.org/app\n", "sources", 4, "expected a list"),
    "sources number": (BASE + "sources: [1]\n", "sources[0]", 4, "expected a string, found an integer"),
    "environment list": (BASE + "environment: [A]\n", "environment", 4, "expected a mapping, found a list"),
    "environment mapping value": (BASE + "environment:\n  A: {b: c}\n", "environment.A", 5, "found a mapping"),
    "environment nested list": (BASE + "environment:\n  A: [[1]]\n", "environment.A[0]", 5, "found a list"),
    "environment null": (BASE + "environment:\n  A:\n", "environment.A", 5, "found nothing (null)"),
    "environment big integer": (BASE + "environment:\n  A: 9223372036854775808\n", "environment.A", 5, "too large (quote it"),
    "tagged float": (BASE + "environment:\n  A: !!float abc\n", "environment.A", 5, "'abc' is not a number"),
    "tagged int": (BASE + "environment:\n  A: !!int abc\n", "environment.A", 5, "'abc' is not an integer"),
    "tagged empty int": (BASE + "vcpus: !!int ''\n", "vcpus", 4, "'' is not an integer"),
    "tagged sign": (BASE + "environment:\n  A: !!int +\n", "environment.A", 5, "'+' is not an integer"),
    "tagged empty float": (BASE + "environment:\n  A: !!float ''\n", "environment.A", 5, "'' is not a number"),
    "tagged bool": (BASE + "shell: !!bool maybe\n", "shell", 4, "expected true or false, found 'maybe'"),
    "environment nan": (BASE + "environment:\n  A: .nan\n", "environment.A", 5, "finite number"),
    "secrets string": (BASE + f"secrets: {SECRET}\n", "secrets", 4, "expected a list"),
    "tasks mapping": ("image: x\ntasks:\n  build: make\n", "tasks", 3, "expected a list, found a mapping"),
    "task string": ("image: x\ntasks:\n  - make\n", "tasks[0]", 3, "a task is one `name: script` pair"),
    "task two pairs": ("image: x\ntasks:\n  - {a: b, c: d}\n", "tasks[0]", 3, "a task is one `name: script` pair"),
    "task script list": ("image: x\ntasks:\n  - build: [make]\n", "tasks[0].build", 3, "expected a string, found a list"),
    "task script null": ("image: x\ntasks:\n  - build:\n", "tasks[0].build", 3, "found nothing (null)"),
    "triggers mapping": (BASE + "triggers: {action: email}\n", "triggers", 4, "expected a list"),
    "trigger string": (BASE + "triggers: [email]\n", "triggers[0]", 4, "expected a mapping, found a string"),
    "artifacts string": (BASE + "artifacts: out/app\n", "artifacts", 4, "expected a list"),
    "shell quoted": (BASE + 'shell: "true"\n', "shell", 4, "expected true or false, found a string"),
    "oauth list": (BASE + "oauth: [x]\n", "oauth", 4, "expected a string, found a list"),
    "vcpus string": (BASE + 'vcpus: "4"\n', "vcpus", 4, "expected an integer, found a string"),
    "vcpus float": (BASE + "vcpus: 4.0\n", "vcpus", 4, "expected an integer, found a number"),
    "vcpus boolean": (BASE + "vcpus: yes\n", "vcpus", 4, "expected an integer, found a boolean"),
    "timeout seconds": (BASE + "timeout: 3600\n", "timeout", 4, "expected a string, found an integer"),
    "key not a string": (BASE + "1: x\n", "", 4, "keys must be strings, found an integer"),
    "custom tag": (BASE + "arch: !cpu x86\n", "arch", 4, "found a value tagged !cpu"),
    "set instead of mapping": (BASE + "environment: !!set {A}\n", "environment", 4, "expected a mapping"),
    "merge of a scalar": (BASE + "environment: {<<: [1]}\n", "environment", 4, "expected a mapping, found an integer"),
    "duplicate key": (BASE + "image: alpine/edge\n", "image", 4, "duplicate key (first on line 1)"),
    # values
    "image path": ("image: ../../etc\ntasks:\n  - build: make\n", "image", 1, "expected an image"),
    "image upper": ("image: Debian/Bookworm\ntasks:\n  - build: make\n", "image", 1, "expected an image"),
    "image null": ("image:\ntasks:\n  - build: make\n", "image", 1, "required"),
    "package option": (BASE + "packages: [-oAPT::Get::Foo=1]\n", "packages[0]", 4, "not starting with -"),
    "package spaces": (BASE + "packages: ['curl git']\n", "packages[0]", 4, "no spaces"),
    "repository name path": (BASE + "repositories:\n  ../x: deb y\n", "repositories.../x", 5, "file names"),
    "repository line break": (BASE + 'repositories:\n  x: "deb y\\ndeb z"\n', "repositories.x", 5, "one line"),
    "environment name": (BASE + "environment:\n  A-B: 1\n", "environment.A-B", 5, "must match"),
    "environment name digit": (BASE + "environment:\n  1A: x\n", "environment.1A", 5, "must match"),
    "environment date": (BASE + "environment:\n  D: 2024-01-01\n", "environment.D", 5, "found a date"),
    "vcpus zero": (BASE + "vcpus: 0\n", "vcpus", 4, "expected 1 to 64, found 0"),
    "vcpus too many": (BASE + "vcpus: 65\n", "vcpus", 4, "expected 1 to 64, found 65"),
    "vcpus huge": (BASE + "vcpus: " + "9" * 5000 + "\n", "vcpus", 4, "too large"),
    "timeout zero": (BASE + "timeout: 0s\n", "timeout", 4, "more than 0s"),
    "timeout too long": (BASE + "timeout: 25h\n", "timeout", 4, "at most 24h"),
    "timeout days": (BASE + "timeout: 1d\n", "timeout", 4, "expected a duration"),
    "timeout empty": (BASE + 'timeout: ""\n', "timeout", 4, "expected a duration"),
    "timeout bare number": (BASE + 'timeout: "90"\n', "timeout", 4, "expected a duration"),
    "oauth line break": (BASE + 'oauth: "a\\nb"\n', "oauth", 4, "one line"),
    # image and tasks required
    "missing image": ("tasks:\n  - build: make\n", "image", 1, "required"),
    "missing tasks": ("image: debian/bookworm\n", "tasks", 1, "at least one task is required"),
    "null tasks": ("image: debian/bookworm\ntasks:\n", "tasks", 1, "at least one task is required"),
    "no tasks": ("image: debian/bookworm\ntasks: []\n", "tasks", 2, "at least one task is required"),
    # task names
    "duplicate task": (BASE + "  - test: x\n  - build: y\n", "tasks[2]", 5, "duplicate task name 'build' (first on line 3)"),
    "task name upper": (BASE + "  - Test: x\n", "tasks[1]", 4, "task names must match ^[a-z0-9_-]+$"),
    "task name space": (BASE + "  - run tests: x\n", "tasks[1]", 4, "task names must match"),
    "task name accent": (BASE + "  - tést: x\n", "tasks[1]", 4, "task names must match"),
    "task name long": (BASE + f"  - {'a' * 129}: x\n", "tasks[1]", 4, "at most 128"),
    "task setup": (BASE + "  - setup: x\n", "tasks[1]", 4, "'setup' is reserved"),
    # triggers
    "trigger action unknown": (BASE + "triggers:\n  - {action: irc, condition: always}\n", "triggers[0].action", 5, "unknown trigger action 'irc'; one of email, webhook"),
    "trigger action missing": (BASE + "triggers:\n  - {condition: always}\n", "triggers[0].action", 5, "required"),
    "trigger condition unknown": (BASE + "triggers:\n  - action: webhook\n    condition: sometimes\n    url: https://x.org/\n", "triggers[0].condition", 6, "unknown condition 'sometimes'"),
    "trigger condition missing": (BASE + "triggers:\n  - {action: webhook, url: https://x.org/}\n", "triggers[0].condition", 5, "required"),
    "webhook url missing": (BASE + "triggers:\n  - {action: webhook, condition: always}\n", "triggers[0].url", 5, "required"),
    "webhook url scheme": (BASE + "triggers:\n  - {action: webhook, condition: always, url: 'ftp://x.org/'}\n", "triggers[0].url", 5, "http:// or https://"),
    "webhook url no host": (BASE + "triggers:\n  - {action: webhook, condition: always, url: 'https:///x'}\n", "triggers[0].url", 5, "http:// or https://"),
    "webhook with to": (BASE + "triggers:\n  - {action: webhook, condition: always, url: 'https://x.org', to: a@x.org}\n", "triggers[0].to", 5, "unknown key for a webhook trigger"),
    "email to missing": (BASE + "triggers:\n  - {action: email, condition: always}\n", "triggers[0].to", 5, "required"),
    "email to not an address": (BASE + "triggers:\n  - {action: email, condition: always, to: nobody}\n", "triggers[0].to", 5, "not a list of e-mail addresses"),
    "email to header injection": (BASE + 'triggers:\n  - {action: email, condition: always, to: "a@x.org\\r\\nBcc: e@vil.org"}\n', "triggers[0].to", 5, "one line"),
    "email cc item": (BASE + "triggers:\n  - action: email\n    condition: always\n    to: a@x.org\n    cc: [b@x.org, 3]\n", "triggers[0].cc[1]", 8, "expected a string"),
    "email to empty list": (BASE + "triggers:\n  - {action: email, condition: always, to: []}\n", "triggers[0].to", 5, "at least one address"),
    "email with url": (BASE + "triggers:\n  - {action: email, condition: always, to: a@x.org, url: 'https://x.org'}\n", "triggers[0].url", 5, "unknown key for an email trigger"),
    # secrets
    "secret not uuid": (BASE + "secrets: [deploy-key]\n", "secrets[0]", 4, "secrets are named by their UUID"),
    "secret number": (BASE + "secrets: [42]\n", "secrets[0]", 4, "expected a string, found an integer"),
    "secret twice": (BASE + f"secrets:\n  - {SECRET}\n  - {SECRET.upper()}\n", "secrets[1]", 6, "listed twice (first on line 5)"),
    # sources
    "source file url": (BASE + "sources: ['file:///srv/app']\n", "sources[0]", 4, "sources are git URLs"),
    "source local path": (BASE + "sources: [/srv/app]\n", "sources[0]", 4, "sources are git URLs"),
    "source relative path": (BASE + "sources: [../app]\n", "sources[0]", 4, "sources are git URLs"),
    "source ftp": (BASE + "sources: ['ftp://x.org/app']\n", "sources[0]", 4, "sources are git URLs"),
    "source mercurial": (BASE + "sources: ['hg+https://hg.x.org/app']\n", "sources[0]", 4, "sources are git URLs"),
    "source ext transport": (BASE + "sources: ['ext::sh%-c%touch%/tmp/x']\n", "sources[0]", 4, "sources are git URLs"),
    "source host option": (BASE + "sources: ['ssh://-oProxyCommand=x/app']\n", "sources[0]", 4, "sources are git URLs"),
    "source user option": (BASE + "sources: ['ssh://-oProxyCommand=x@host/app']\n", "sources[0]", 4, "sources are git URLs"),
    "source scp option": (BASE + "sources: ['git@host:-oProxyCommand=x']\n", "sources[0]", 4, "sources are git URLs"),
    "source ref option": (BASE + "sources: ['https://x.org/app#--upload-pack=x']\n", "sources[0]", 4, "is not a git ref"),
    "source empty ref": (BASE + "sources: ['https://x.org/app#']\n", "sources[0]", 4, "is not a git ref"),
    "source ref dots": (BASE + "sources: ['https://x.org/app#a..b']\n", "sources[0]", 4, "is not a git ref"),
    "source no repository": (BASE + "sources: ['https://x.org/']\n", "sources[0]", 4, "repository's name"),
    "source dot dot": (BASE + "sources: ['https://x.org/a/..']\n", "sources[0]", 4, "repository's name"),
    "source spaces": (BASE + "sources: ['https://x.org/a b']\n", "sources[0]", 4, "no spaces"),
    "source bad port": (BASE + "sources: ['https://x.org:port/a']\n", "sources[0]", 4, "sources are git URLs"),
    # artifacts
    "artifact parent": (BASE + "artifacts: [../etc/passwd]\n", "artifacts[0]", 4, "'..'"),
    "artifact inner parent": (BASE + "artifacts: [out/../../x]\n", "artifacts[0]", 4, "'..'"),
    "artifact absolute": (BASE + "artifacts: [/etc/passwd]\n", "artifacts[0]", 4, "is not relative"),
    "artifact home": (BASE + "artifacts: [~/out/app]\n", "artifacts[0]", 4, "is not relative"),
    "artifact star": (BASE + "artifacts: ['out/*.tar.gz']\n", "artifacts[0]", 4, "glob characters"),
    "artifact class": (BASE + "artifacts: ['out/app[12]']\n", "artifacts[0]", 4, "glob characters"),
    "artifact question": (BASE + "artifacts: ['out/app?']\n", "artifacts[0]", 4, "glob characters"),
    "artifact directory": (BASE + "artifacts: [out/]\n", "artifacts[0]", 4, "empty"),
    "artifact empty": (BASE + "artifacts: ['']\n", "artifacts[0]", 4, "empty"),
    "artifact twice": (BASE + "artifacts: [a, b, a]\n", "artifacts[2]", 4, "listed twice"),
    # unknown keys (builds.sr.ht ignores them; a typo must not lose output silently)
    "unknown key": (BASE + "artifact: [out/app]\n", "artifact", 4, "unknown key; a manifest takes image, arch"),
    "unknown key first": ("build: make\n" + BASE, "build", 1, "unknown key"),
    # the document
    "not a mapping list": ("- image: x\n", "", 1, "the manifest must be a mapping (of image, tasks…), not a list"),
    "not a mapping string": ("debian/bookworm\n", "", 1, "not a string"),
    "empty": ("", "", None, "the manifest is empty"),
    "comments only": ("# nothing\n", "", None, "the manifest is empty"),
    "two documents": (BASE + "---\nimage: alpine/edge\n", "", 4, "expected a single document"),
    "control character": ("image: debian/bookworm\ntasks:\n  - build: make \x1b[31m\n", "", 3, "character U+001B is not allowed"),
    "nul": (BASE + "arch: \x00\n", "", 4, "character U+0000 is not allowed"),
    "lone surrogate": (BASE + "arch: \ud800\n", "", 4, "character U+D800 is not allowed"),
    "cycle": (BASE + "environment: &e {A: *e}\n", "", 4, "an alias may not refer to a node that contains it"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_manifest_is_refused_with_its_field_and_line(case: str) -> None:
    text, field, line, words = CASES[case]

    error = refused(text)

    assert (error.field, error.line) == (field, line), error.message
    where = "".join([f"line {line}: " if line else "", f"{field}: " if field else ""])
    assert error.message.startswith(where), error.message
    assert words in error.message


def test_a_python_tag_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    error = refused(BASE + f'arch: !!python/object/apply:os.system ["touch {marker}"]\n')

    assert (error.field, error.line) == ("arch", 4)
    assert not marker.exists()


def test_the_size_limit_counts_utf8_bytes_before_parsing() -> None:
    def padded(size: int, filler: str) -> str:
        text = BASE + "# "
        return text + filler * ((size - len(text.encode())) // len(filler.encode())) + "\n"

    at_limit = padded(MAX_MANIFEST_BYTES - 1, "x")
    assert len(at_limit.encode()) == MAX_MANIFEST_BYTES
    assert parse_manifest(at_limit).task_names == ("build",)

    over = padded(MAX_MANIFEST_BYTES, "x")
    error = refused(over)
    assert (error.field, error.line) == ("", None)
    assert (
        error.message
        == f"the manifest is {MAX_MANIFEST_BYTES + 1} bytes; at most 65536 are accepted"
    )

    wide = padded(MAX_MANIFEST_BYTES + 10, "é")  # fewer characters than the limit, more bytes
    assert len(wide) < MAX_MANIFEST_BYTES < len(wide.encode())
    assert "bytes; at most 65536 are accepted" in refused(wide).message

    garbage = "[" * (10 * MAX_MANIFEST_BYTES)  # never reaches the parser
    assert refused(garbage).message.startswith(f"the manifest is {10 * MAX_MANIFEST_BYTES} bytes")


def _billion_laughs(levels: int) -> str:
    lines = [
        BASE,
        "environment:\n",
        '  L0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
    ]
    lines += [f"  L{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, levels)]
    return "".join(lines)


def _refused_within(text: str, seconds: float, megabytes: float) -> ManifestError:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = refused(text)
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f}s"
    assert peak < megabytes * 1e6, f"peaked at {peak / 1e6:.1f} MB"
    return error


def test_billion_laughs_is_refused_at_once_within_bounded_memory() -> None:
    text = _billion_laughs(10)  # 9**10 strings once expanded, in 600 bytes

    error = _refused_within(text, seconds=0.5, megabytes=5)

    assert error.field == ""
    assert "expands beyond" in error.message
    assert error.line is not None
    assert 6 <= error.line <= 13  # at the alias that crossed the bound


def test_aliases_of_a_long_string_count_its_length() -> None:
    text = (
        BASE + f"environment:\n  S: &s '{'x' * 30_000}'\npackages: [{', '.join(['*s'] * 5_000)}]\n"
    )

    error = _refused_within(text, seconds=1, megabytes=20)

    assert "expands beyond" in error.message
    assert error.line == 6


def test_aliases_that_stay_small_are_fine() -> None:
    text = BASE + "environment:\n  A: &a [x, y]\n  B: *a\n  C: *a\n"

    assert parse_manifest(text).environment == {"A": ("x", "y"), "B": ("x", "y"), "C": ("x", "y")}


def _nested(levels: int) -> str:
    """The top mapping (1), environment's (2), lists (3…), and the scalar at `levels`."""
    return BASE + "environment:\n  A: " + "[" * (levels - 3) + "x" + "]" * (levels - 3) + "\n"


def test_nesting_deeper_than_the_bound_is_refused() -> None:
    at_bound = refused(_nested(MAX_DEPTH))
    assert "nested deeper" not in at_bound.message  # refused for its type, having been read
    assert at_bound.field == "environment.A[0]"

    error = refused(_nested(MAX_DEPTH + 1))
    assert (error.field, error.line) == ("", 5)
    assert f"nested deeper than {MAX_DEPTH} levels" in error.message


def test_aliases_cannot_nest_deeper_than_the_text_shows() -> None:
    deep = "[" * 20 + "x" + "]" * 20
    text = BASE + f"environment:\n  A: &deep {deep}\n  B: {'[' * 15}*deep{']' * 15}\n"

    error = refused(text)

    assert error.line == 6  # the alias, whose own text is 17 levels deep
    assert f"nested deeper than {MAX_DEPTH} levels" in error.message


def test_pathological_inputs_are_refused_quickly() -> None:
    for text in [
        "[" * (MAX_MANIFEST_BYTES - 1),
        "{a: " * (MAX_MANIFEST_BYTES // 4),
        "- " * (MAX_MANIFEST_BYTES // 2),
        "".join(" " * i + "a:\n" for i in range(350)),
        "? " * (MAX_MANIFEST_BYTES // 2),
        "&a " * (MAX_MANIFEST_BYTES // 3),
    ]:
        _refused_within(text, seconds=1, megabytes=50)


# Random mutations: the parser answers a Manifest or a ManifestError, never anything else ---

_TOKENS = [
    ":", ": ", "-", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "<<: ", "!!str ", "!!int ",
    "!!binary ", "!!float ", "!!bool ", "!!null ", "!!timestamp ", "!!map ", "!!seq ", "!x ", "\t", "\n", "  ", "'", '"', "#", "---\n", "...\n", "?", "|", ">", "%",
    "@", "`", "~", "null", "yes", "0x1F", "1e999", ".nan", "2024-01-01", "\x00", "\ud800", "é",
    "\u2028", "\\", "setup", "../", "file:///", "*", "99999999999999999999", "\r\n",
]  # fmt: skip

_VALUES: list[object] = [
    None, 0, -1, 10**30, 1.5, float("inf"), True, "", "x", "-o", "../x", "/x", "file:///x",
    "setup", [], {}, [[]], [None], {"a": None}, {"action": "email"}, ["a", 1], "x" * 300,
]  # fmt: skip


def _answers(text: str) -> Manifest | None:
    try:
        manifest = parse_manifest(text)
    except ManifestError:
        return None
    except Exception as exc:  # the property: nothing but a ManifestError escapes
        pytest.fail(f"{type(exc).__name__}: {exc} for {text!r}")
    assert parse_manifest(orjson.dumps(manifest.to_json()).decode()) == manifest
    return manifest


def _mutate_text(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(text) + 1)
        kind = rng.randrange(4)
        if kind == 0:
            text = text[:at] + rng.choice(_TOKENS) + text[at:]
        elif kind == 1:
            text = text[:at] + text[at + rng.randint(1, 8) :]
        else:
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            if kind == 2:
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(i, lines[j])
            text = "\n".join(lines)
    return text


def _mutate_tree(rng: random.Random, node: object) -> object:
    """Replace, drop or add one thing somewhere in the loaded manifest."""
    if isinstance(node, dict) and node and rng.random() < 0.7:
        key = rng.choice(list(node))
        kind = rng.randrange(4)
        if kind == 0:
            return {k: v for k, v in node.items() if k != key}
        if kind == 1:
            return {
                **node,
                rng.choice(["extra", "to", "url", "<<", "Setup", "1"]): rng.choice(_VALUES),
            }
        return {**node, key: _mutate_tree(rng, node[key])}
    if isinstance(node, list) and node and rng.random() < 0.7:
        i = rng.randrange(len(node))
        return [*node[:i], _mutate_tree(rng, node[i]), *node[i + 1 :]]
    return rng.choice(_VALUES)


def test_random_text_mutations_give_a_manifest_or_a_manifest_error() -> None:
    rng = random.Random(15)
    accepted = 0
    for _ in range(1500):
        accepted += _answers(_mutate_text(rng, FULL)) is not None
    assert 0 < accepted < 1500  # the mutations reach both answers


def _dump(rng: random.Random, tree: object) -> str:
    """As YAML or as JSON (which is YAML too), as people and programs write manifests."""
    try:
        if rng.random() < 0.5:
            return orjson.dumps(tree).decode()
    except TypeError:  # an integer JSON cannot hold
        pass
    return yaml.dump(tree, Dumper=yaml.CSafeDumper, allow_unicode=True)


def test_random_value_mutations_give_a_manifest_or_a_manifest_error() -> None:
    rng = random.Random(13)
    tree = yaml.safe_load(FULL)
    accepted = 0
    for _ in range(1500):
        mutated = _mutate_tree(rng, tree)
        accepted += _answers(_dump(rng, mutated)) is not None
    assert 0 < accepted < 1500
