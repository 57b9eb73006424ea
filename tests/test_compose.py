"""docker-compose.yml holds together: the services a deployment relies on, their images, the
one public port, Hutch settings that exist and point at services that exist, start-up order,
health checks, volumes and restart policies. No Docker engine is needed: the file is read
as data, with `${VAR...}` interpolations resolved as Compose would from .env.example.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from base.settings import OPTIONS, Settings, url_scheme
from hutch.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
INFRA = ("kafka", "clickhouse", "postgres")
HUTCH = ("migrate", "query", "ingest", "project")
LONG_RUNNING = ("kafka", "clickhouse", "postgres", "query", "ingest", "project")
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def example_env() -> dict[str, str]:
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip() or f"example-{name.strip().lower()}"
    return env


def interpolate(value: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if name in env:
            return env[name]
        if operator in ("-", ":-"):
            return argument
        raise AssertionError(f"${{{name}}} is required but not in .env.example")

    return _VARIABLE.sub(replace, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {name: interpolate(str(value), example_env()) for name, value in env.items()}


def test_every_part_of_the_topology_is_there(services: dict[str, Any]) -> None:
    assert set(services) == {*INFRA, *HUTCH}


def test_images_are_the_official_ones(services: dict[str, Any]) -> None:
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    postgres = services["postgres"]["image"]
    assert postgres.startswith("postgres:")
    assert int(postgres.split(":")[1].split(".")[0]) >= 15


def test_hutch_services_are_built_from_the_dockerfile(services: dict[str, Any]) -> None:
    for name in HUTCH:
        assert services[name]["build"] == ".", name
        assert services[name]["image"] == services["ingest"]["image"], name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users
    assert users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["hutch"]' in dockerfile
    build_stage = dockerfile.split("\nFROM ", 2)[1]
    assert "gcc" in build_stage  # the wheel carries the compiled otel_traces transform


def test_each_hutch_service_runs_a_real_hutch_command(services: dict[str, Any]) -> None:
    expected = {"migrate": "migrate", "query": "query", "ingest": "ingest", "project": "project"}
    for name, command in expected.items():
        argv = services[name]["command"]
        assert argv[0] == command
        assert _parser().parse_args(argv).command == command


def test_clients_reach_reads_and_writes_on_one_port(services: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert published == {"ingest": ["8080:8080"]}
    ingest, query = environment(services["ingest"]), environment(services["query"])
    assert ingest["HUTCH_BIND"].endswith(":8080")
    forward = urlsplit(ingest["HUTCH_QUERY_URL"])
    assert forward.hostname == "query"
    assert f":{forward.port}" == query["HUTCH_BIND"][query["HUTCH_BIND"].rindex(":") :]
    assert str(forward.port) in services["query"]["expose"]


def test_every_hutch_variable_is_a_real_setting(services: dict[str, Any]) -> None:
    known = {option.env for option in OPTIONS.values()}
    for name in HUTCH:
        env = environment(services[name])
        assert set(env) <= known, f"{name}: {sorted(set(env) - known)}"
        assert {"HUTCH_LOG", "HUTCH_ANALYTICS", "HUTCH_DB", "HUTCH_SECRET_KEY"} <= set(env)
        settings = Settings.from_env(env)  # parses: numbers are numbers
        assert url_scheme(settings.analytics_url) == "clickhouse"  # a server, not chDB


def test_secrets_come_from_the_env_file(services: dict[str, Any]) -> None:
    raw = services["ingest"]["environment"]
    assert _VARIABLE.fullmatch(raw["HUTCH_SECRET_KEY"])
    assert "${POSTGRES_PASSWORD" in raw["HUTCH_DB"]
    assert "${CLICKHOUSE_PASSWORD" in raw["HUTCH_ANALYTICS"]
    assert "${POSTGRES_PASSWORD" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert "${CLICKHOUSE_PASSWORD" in services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"]


def test_store_urls_point_at_the_services(services: dict[str, Any]) -> None:
    env = environment(services["project"])
    log = urlsplit(env["HUTCH_LOG"])
    assert (log.scheme, log.hostname, log.port) == ("kafka", "kafka", 9092)
    assert (
        "PLAINTEXT://kafka:9092" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )

    analytics = urlsplit(env["HUTCH_ANALYTICS"])
    clickhouse = environment(services["clickhouse"])
    assert (analytics.scheme, analytics.hostname, analytics.port) == (
        "clickhouse",
        "clickhouse",
        8123,
    )
    assert analytics.username == clickhouse["CLICKHOUSE_USER"]
    assert analytics.password == clickhouse["CLICKHOUSE_PASSWORD"]
    assert analytics.path == "/" + clickhouse["CLICKHOUSE_DB"]

    db = urlsplit(env["HUTCH_DB"])
    postgres = environment(services["postgres"])
    assert (db.scheme, db.hostname, db.port) == ("postgresql", "postgres", 5432)
    assert (db.username, db.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    assert db.path == "/" + postgres["POSTGRES_DB"]


def test_objects_live_on_a_volume_every_hutch_service_shares(services: dict[str, Any]) -> None:
    for name in HUTCH:
        objects = urlsplit(environment(services[name])["HUTCH_OBJECTS"])
        assert objects.scheme == "file"
        mounts = {m.split(":")[1]: m.split(":")[0] for m in services[name]["volumes"]}
        assert mounts.get(objects.path.removeprefix("/")) == "objects", name


def test_start_up_waits_for_health_and_migrations(services: dict[str, Any]) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert conditions("migrate") == dict.fromkeys(INFRA, "service_healthy")
    for name in ("query", "ingest", "project"):
        assert conditions(name)["migrate"] == "service_completed_successfully", name
    assert conditions("ingest")["query"] == "service_healthy"
    for name in ("query", "project"):
        assert {dep for dep, c in conditions(name).items() if c == "service_healthy"} == set(INFRA)


def test_health_checks_probe_what_they_should(services: dict[str, Any]) -> None:
    def probe(name: str) -> str:
        return " ".join(services[name]["healthcheck"]["test"])

    assert "kafka-broker-api-versions.sh" in probe("kafka")
    assert "http://localhost:8123/ping" in probe("clickhouse")
    assert "pg_isready" in probe("postgres")
    for name in ("ingest", "query"):
        port = environment(services[name])["HUTCH_BIND"].rsplit(":", 1)[1]
        assert f"http://127.0.0.1:{port}/api/health" in probe(name), name
    for name in (*INFRA, "ingest", "query"):
        assert services[name]["healthcheck"]["retries"] > 0


def test_state_is_on_named_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    expected = {
        "kafka": "/var/lib/kafka/data",
        "clickhouse": "/var/lib/clickhouse",
        "postgres": "/var/lib/postgresql/data",
    }
    for name, path in expected.items():
        assert f"{name}:{path}" in services[name]["volumes"]
    assert services["kafka"]["environment"]["KAFKA_LOG_DIRS"] == expected["kafka"]
    used = {m.split(":")[0] for s in services.values() for m in s.get("volumes", [])}
    assert used == declared


def test_restart_policies(services: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        assert services[name]["restart"] in ("unless-stopped", "always"), name
    assert services["migrate"]["restart"] == "no"
