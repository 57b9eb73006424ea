"""Settings, read once from the environment into a frozen dataclass and passed down.

Every option is listed in OPTIONS with its environment variable, default and meaning; the
`hutch` command prints them in `--help`, so this table is the one place they are documented.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Option:
    env: str
    default: str
    help: str


OPTIONS: dict[str, Option] = {
    "data": Option("HUTCH_DATA", "./data", "data directory for the embedded backends"),
    "log_url": Option(
        "HUTCH_LOG",
        "sqlite:///{data}/log.db",
        "event log: sqlite:///path (embedded) or kafka://host:9092[,host:9092]",
    ),
    "analytics_url": Option(
        "HUTCH_ANALYTICS",
        "chdb:///{data}/clickhouse",
        "analytics store: chdb:///path (in-process) or clickhouse://user:pw@host:8123/db",
    ),
    "db_url": Option(
        "HUTCH_DB",
        "sqlite:///{data}/hutch.db",
        "relational store: sqlite:///path or postgresql://user:pw@host:5432/db",
    ),
    "objects_url": Option(
        "HUTCH_OBJECTS",
        "file:///{data}/objects",
        "object store: file:///path (signed URLs served by Hutch) or s3://bucket?endpoint=...",
    ),
    "bind": Option("HUTCH_BIND", "127.0.0.1:8080", "address the HTTP service listens on"),
    "workers": Option("HUTCH_WORKERS", "2", "gunicorn workers for ingest"),
    "query_url": Option(
        "HUTCH_QUERY_URL",
        "",
        "where ingest forwards reads (http://host:port or unix:///path); empty: not forwarded",
    ),
    "public_url": Option(
        "HUTCH_PUBLIC_URL", "", "base URL clients reach Hutch at (for signed links); default: bind"
    ),
    "max_body_bytes": Option(
        "HUTCH_MAX_BODY", "1048576", "largest JSON request body accepted, in bytes"
    ),
    "otlp_max_body_bytes": Option(
        "HUTCH_OTLP_MAX_BODY", "20971520", "largest OTLP body after decompression, in bytes"
    ),
    "retention_days": Option(
        "HUTCH_RETENTION_DAYS", "30", "default analytics retention per app, in days"
    ),
    "projector_batch": Option(
        "HUTCH_PROJECTOR_BATCH", "50000", "most log records a projector applies in one batch"
    ),
    "projector_wait_ms": Option(
        "HUTCH_PROJECTOR_WAIT_MS", "50", "ms a projector waits after a small batch, to batch more"
    ),
    "append_timeout_s": Option(
        "HUTCH_APPEND_TIMEOUT", "5", "seconds ingest waits for the log before answering 503"
    ),
    "log_level": Option("HUTCH_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    "builder_allow_networks": Option(
        "HUTCH_BUILDER_ALLOW_NETWORKS",
        "",
        "non-public networks the builder may fetch from, e.g. 127.0.0.0/8,::1/128 (tests)",
    ),
    "webhook_allow_networks": Option(
        "HUTCH_WEBHOOK_ALLOW_NETWORKS",
        "",
        "non-public networks job webhooks may be sent to, e.g. 127.0.0.0/8,::1/128 (tests)",
    ),
    "smtp_url": Option(
        "HUTCH_SMTP_URL",
        "",
        "mail server for job e-mail triggers and tenant e-mail verification links: "
        "smtp://[user:pw@]host[:25], "
        "smtp+starttls://user:pw@host[:587] or smtps://user:pw@host[:465]; empty: none "
        "(e-mail deliveries are recorded as failed; tenant e-mail changes answer 503)",
    ),
    "smtp_from": Option(
        "HUTCH_SMTP_FROM",
        "",
        "From address of Hutch's e-mails, e.g. 'Hutch CI <ci@example.org>'; empty: "
        "hutch@<the host of HUTCH_PUBLIC_URL>",
    ),
    "github_url": Option(
        "HUTCH_GITHUB_URL",
        "https://github.com",
        "GitHub's web base URL: OAuth sign-in's authorize and token endpoints",
    ),
    "github_api_url": Option(
        "HUTCH_GITHUB_API_URL", "https://api.github.com", "GitHub's REST API base URL"
    ),
    "github_client_id": Option(
        "HUTCH_GITHUB_CLIENT_ID",
        "",
        "the GitHub App's OAuth client id; empty: sign-in with GitHub is off (503)",
    ),
    "github_client_secret": Option(
        "HUTCH_GITHUB_CLIENT_SECRET", "", "the GitHub App's OAuth client secret"
    ),
    "github_app_id": Option(
        "HUTCH_GITHUB_APP_ID",
        "",
        "the GitHub App's id: Hutch signs app JWTs with it to check installations and read "
        "repositories' manifests; empty: installations cannot be linked",
    ),
    "github_app_key": Option(
        "HUTCH_GITHUB_APP_KEY",
        "",
        "path of the GitHub App's private key (PEM), which signs those JWTs",
    ),
    "github_webhook_secret": Option(
        "HUTCH_GITHUB_WEBHOOK_SECRET",
        "",
        "the GitHub App's webhook secret (X-Hub-Signature-256); empty: webhooks refused (503)",
    ),
    "redirect_origins": Option(
        "HUTCH_REDIRECT_ORIGINS",
        "",
        "origins (https://app.example.org, comma-separated) that sign-in and logout may "
        "redirect to, besides HUTCH_PUBLIC_URL's; cookie-authenticated writes are accepted "
        "from these origins too",
    ),
    "session_ttl_s": Option(
        "HUTCH_SESSION_TTL", "1209600", "seconds a browser session lasts after sign-in (14 days)"
    ),
    "email_link_ttl_s": Option(
        "HUTCH_EMAIL_LINK_TTL",
        "86400",
        "seconds a tenant e-mail verification link stays valid (1 day)",
    ),
    "secret_key": Option(
        "HUTCH_SECRET_KEY",
        "",
        "key that signs object URLs; empty: generated once into the data dir",
    ),
    "secrets_key": Option(
        "HUTCH_SECRETS_KEY",
        "",
        "AES-256-GCM key sealing CI job secrets at rest: 32 bytes as 64 hex digits or base64; "
        "empty: derived from the server key (HUTCH_SECRET_KEY or the data dir's)",
    ),
    "secrets_old_keys": Option(
        "HUTCH_SECRETS_OLD_KEYS",
        "",
        "comma-separated earlier HUTCH_SECRETS_KEY values (`derived`: the default derived "
        "from the server key) still opening the secrets sealed with them; keep each while "
        "`hutch secret keys` shows it in use",
    ),
    "sql_max_rows": Option(
        "HUTCH_SQL_MAX_ROWS", "10000", "most rows POST /api/sql returns (a request may ask fewer)"
    ),
    "sql_timeout_s": Option(
        "HUTCH_SQL_TIMEOUT",
        "10",
        "seconds a POST /api/sql query (or a release-health or flag-impact aggregation) may run",
    ),
    "sql_max_memory": Option(
        "HUTCH_SQL_MAX_MEMORY",
        "1073741824",
        "bytes of memory one POST /api/sql query (or a release-health or flag-impact "
        "aggregation) may use",
    ),
    "sql_max_result_bytes": Option(
        "HUTCH_SQL_MAX_RESULT_BYTES", "67108864", "largest POST /api/sql result, in bytes"
    ),
    "sql_max_concurrent": Option(
        "HUTCH_SQL_MAX_CONCURRENT", "4", "POST /api/sql queries running at once, in all"
    ),
    "sql_max_per_developer": Option(
        "HUTCH_SQL_MAX_PER_DEVELOPER", "2", "POST /api/sql queries one developer runs at once"
    ),
    "max_upload_bytes": Option(
        "HUTCH_MAX_UPLOAD", "209715200", "largest build upload accepted, in bytes (200 MiB)"
    ),
    "job_lease_s": Option(
        "HUTCH_JOB_LEASE",
        "60",
        "seconds a CI runner holds a job without reporting before it is requeued",
    ),
    "build_lease_s": Option(
        "HUTCH_BUILD_LEASE",
        "300",
        "seconds a builder worker holds a build without reporting before it is requeued",
    ),
    "start_wait_s": Option(
        "HUTCH_START_WAIT",
        "30",
        "seconds a start waits for the processes of a killed previous owner of the data "
        "directory to exit (a running owner: refused at once)",
    ),
    "client_timeout_s": Option(
        "HUTCH_CLIENT_TIMEOUT",
        "30",
        "seconds a client has to send a request, head and body, from connecting (or from its "
        "first byte on a kept-alive connection), and the longest it may go without sending a "
        "byte; later: 408 and the connection is closed",
    ),
    "client_min_rate": Option(
        "HUTCH_CLIENT_MIN_RATE",
        "1024",
        "bytes per second a client must keep up while sending: each such amount it sends "
        "earns it one more second past HUTCH_CLIENT_TIMEOUT",
    ),
    "git_timeout_s": Option(
        "HUTCH_GIT_TIMEOUT",
        "15",
        "seconds `git ls-remote` may run for GET /api/branches before it is killed",
    ),
    "git_max_output": Option(
        "HUTCH_GIT_MAX_OUTPUT",
        "1048576",
        "bytes of `git ls-remote` output GET /api/branches reads before giving up",
    ),
    "git_ca_file": Option(
        "HUTCH_GIT_CA_FILE",
        "",
        "CA certificates git trusts for HTTPS source repositories; empty: the system's",
    ),
    "keyserver_url": Option(
        "HUTCH_KEYSERVER_URL",
        "https://keys.openpgp.org",
        "OpenPGP keyserver POST /api/pgp/fetch-key asks, over its VKS API (/vks/v1/...); "
        "https:// only",
    ),
    "keyserver_ca": Option(
        "HUTCH_KEYSERVER_CA",
        "",
        "CA certificates (PEM file) trusted for the keyserver instead of the usual ones (tests, "
        "private keyservers); empty: the usual ones",
    ),
    "keyserver_allow_networks": Option(
        "HUTCH_KEYSERVER_ALLOW_NETWORKS",
        "",
        "non-public networks the keyserver, and what it redirects to, may be in, e.g. "
        "10.0.0.0/8 (a private keyserver) or 127.0.0.0/8 (tests); empty: public addresses only",
    ),
    "keyserver_timeout_s": Option(
        "HUTCH_KEYSERVER_TIMEOUT",
        "10",
        "seconds a key fetch may take in all (connecting, redirects, reading); later: 504",
    ),
    "keyserver_max_bytes": Option(
        "HUTCH_KEYSERVER_MAX_BYTES",
        "1048576",
        "largest keyserver answer read, in bytes; a larger one is refused (502) unread",
    ),
    "challenge_max_number": Option(
        "HUTCH_CHALLENGE_MAX_NUMBER",
        "100000",
        "difficulty of GET /api/validate's ALTCHA challenges: the secret number is drawn from "
        "0 to this, so a browser tries half as many SHA-256 hashes on average",
    ),
    "challenge_ttl_s": Option(
        "HUTCH_CHALLENGE_TTL",
        "600",
        "seconds an ALTCHA challenge stays solvable after it is issued",
    ),
    "publish_retry_delay_s": Option(
        "HUTCH_PUBLISH_RETRY_DELAY",
        "5",
        "seconds a publish run waits after a transient failure (connection refused, timed "
        "out, hung up) before its next attempt, doubling each time; 3 attempts in all",
    ),
}


@dataclass(frozen=True, slots=True)
class Settings:
    data: Path
    log_url: str
    analytics_url: str
    db_url: str
    objects_url: str
    bind: str
    workers: int
    query_url: str
    public_url: str
    max_body_bytes: int
    otlp_max_body_bytes: int
    retention_days: int
    projector_batch: int
    projector_wait_ms: int
    append_timeout_s: float
    log_level: str
    builder_allow_networks: str
    webhook_allow_networks: str
    smtp_url: str = field(repr=False)  # may hold the mail server's password
    smtp_from: str
    github_url: str
    github_api_url: str
    github_client_id: str
    github_client_secret: str = field(repr=False)
    github_app_id: str
    github_app_key: str
    github_webhook_secret: str = field(repr=False)
    redirect_origins: str
    session_ttl_s: int
    email_link_ttl_s: int
    secret_key: str
    secrets_key: str = field(repr=False)
    secrets_old_keys: str = field(repr=False)
    sql_max_rows: int
    sql_timeout_s: float
    sql_max_memory: int
    sql_max_result_bytes: int
    sql_max_concurrent: int
    sql_max_per_developer: int
    max_upload_bytes: int
    build_lease_s: int
    job_lease_s: int
    start_wait_s: float
    client_timeout_s: float
    client_min_rate: int
    git_timeout_s: float = 15.0
    git_max_output: int = 1 << 20
    git_ca_file: str = ""
    keyserver_url: str = "https://keys.openpgp.org"
    keyserver_ca: str = ""
    keyserver_allow_networks: str = ""
    keyserver_timeout_s: float = 10.0
    keyserver_max_bytes: int = 1 << 20
    challenge_max_number: int = 100_000
    challenge_ttl_s: int = 600
    publish_retry_delay_s: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, /, **overrides: str) -> Settings:
        """Read every option from `env` (default: os.environ); `overrides` win (CLI flags)."""
        source = os.environ if env is None else env
        raw = {
            name: overrides.get(name) or source.get(opt.env) or opt.default
            for name, opt in OPTIONS.items()
        }
        data = raw["data"]
        values = {name: value.replace("{data}", data) for name, value in raw.items()}
        try:
            return cls(
                data=Path(data),
                log_url=values["log_url"],
                analytics_url=values["analytics_url"],
                db_url=values["db_url"],
                objects_url=values["objects_url"],
                bind=values["bind"],
                workers=int(values["workers"]),
                query_url=values["query_url"],
                public_url=values["public_url"] or f"http://{values['bind']}",
                max_body_bytes=int(values["max_body_bytes"]),
                otlp_max_body_bytes=int(values["otlp_max_body_bytes"]),
                retention_days=int(values["retention_days"]),
                projector_batch=int(values["projector_batch"]),
                projector_wait_ms=int(values["projector_wait_ms"]),
                append_timeout_s=float(values["append_timeout_s"]),
                log_level=values["log_level"].upper(),
                builder_allow_networks=values["builder_allow_networks"],
                webhook_allow_networks=values["webhook_allow_networks"],
                smtp_url=_smtp_url(values["smtp_url"]),
                smtp_from=values["smtp_from"],
                github_url=values["github_url"].rstrip("/"),
                github_api_url=values["github_api_url"].rstrip("/"),
                github_client_id=values["github_client_id"],
                github_client_secret=values["github_client_secret"],
                github_app_id=values["github_app_id"],
                github_app_key=values["github_app_key"],
                github_webhook_secret=values["github_webhook_secret"],
                redirect_origins=values["redirect_origins"],
                session_ttl_s=int(_positive(int(values["session_ttl_s"]), "session_ttl_s")),
                email_link_ttl_s=int(
                    _positive(int(values["email_link_ttl_s"]), "email_link_ttl_s")
                ),
                secret_key=values["secret_key"],
                secrets_key=values["secrets_key"],
                secrets_old_keys=values["secrets_old_keys"],
                sql_max_rows=int(values["sql_max_rows"]),
                sql_timeout_s=float(values["sql_timeout_s"]),
                sql_max_memory=int(values["sql_max_memory"]),
                sql_max_result_bytes=int(values["sql_max_result_bytes"]),
                sql_max_concurrent=int(values["sql_max_concurrent"]),
                sql_max_per_developer=int(values["sql_max_per_developer"]),
                max_upload_bytes=int(values["max_upload_bytes"]),
                build_lease_s=int(values["build_lease_s"]),
                job_lease_s=int(values["job_lease_s"]),
                start_wait_s=float(values["start_wait_s"]),
                client_timeout_s=_positive(float(values["client_timeout_s"]), "client_timeout_s"),
                client_min_rate=int(_positive(int(values["client_min_rate"]), "client_min_rate")),
                git_timeout_s=_positive(float(values["git_timeout_s"]), "git_timeout_s"),
                git_max_output=int(_positive(int(values["git_max_output"]), "git_max_output")),
                git_ca_file=values["git_ca_file"],
                keyserver_url=_https_url(values["keyserver_url"], "keyserver_url"),
                keyserver_ca=_file(values["keyserver_ca"], "keyserver_ca"),
                keyserver_allow_networks=values["keyserver_allow_networks"],
                keyserver_timeout_s=_positive(
                    float(values["keyserver_timeout_s"]), "keyserver_timeout_s"
                ),
                keyserver_max_bytes=int(
                    _positive(int(values["keyserver_max_bytes"]), "keyserver_max_bytes")
                ),
                challenge_max_number=int(
                    _positive(int(values["challenge_max_number"]), "challenge_max_number")
                ),
                challenge_ttl_s=int(_positive(int(values["challenge_ttl_s"]), "challenge_ttl_s")),
                publish_retry_delay_s=_positive(
                    float(values["publish_retry_delay_s"]), "publish_retry_delay_s"
                ),
            )
        except ValueError as exc:
            raise SettingsError(f"invalid setting: {exc}") from exc

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            env[OPTIONS[f.name].env] = str(value)
        if self.public_url == f"http://{self.bind}":
            del env["HUTCH_PUBLIC_URL"]  # derived from the bind: let a changed bind move it
        return env


class SettingsError(ValueError):
    pass


def _positive(value: float, name: str) -> float:
    if value <= 0:
        raise ValueError(f"{OPTIONS[name].env} must be above 0, not {value:g}")
    return value


def _file(path: str, name: str) -> str:
    """Empty, or a file that exists (a typo is refused at start, not at first use)."""
    if path and not Path(path).is_file():
        raise ValueError(f"{OPTIONS[name].env}: no file {path!r}")
    return path


def _https_url(url: str, name: str) -> str:
    """An https:// URL with a host: what Hutch fetches from on its own behalf is reached over
    TLS only."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{OPTIONS[name].env} must be an https:// URL, not {url!r}")
    return url.rstrip("/")


SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")


def _smtp_url(url: str) -> str:
    if url and url_scheme(url) not in SMTP_SCHEMES:
        raise ValueError(f"HUTCH_SMTP_URL must start with {', '.join(SMTP_SCHEMES)} (://)")
    return url


def url_path(url: str) -> Path:
    """The filesystem path of a sqlite:///, chdb:/// or file:/// URL.

    As in SQLAlchemy, what follows the third slash is the path: `sqlite:///./data/log.db` is
    relative, `sqlite:////var/lib/hutch/log.db` absolute.
    """
    path = urlsplit(url).path
    return Path(path[1:] if path.startswith("/") else path)


def url_scheme(url: str) -> str:
    return urlsplit(url).scheme
