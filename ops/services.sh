#!/usr/bin/env bash
# Install (once) and run the real services the production-backend tests talk to, without
# Docker: a single-node Kafka broker (KRaft, jars from Maven Central) and a PostgreSQL cluster
# (Debian packages), both on 127.0.0.1 with their data, logs and pids in one run dir.
#
#   bash ops/services.sh start|stop|status|env
#   bash ops/services.sh kafka-start|kafka-stop|pg-start|pg-stop   (one service; data kept)
#
# `env` prints only the export lines, so `eval "$(bash ops/services.sh env)"` works; every
# other message goes to stderr. See ops/README.md.
set -euo pipefail

OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$OPS_DIR")
RUN_DIR=${HUTCH_SERVICES_DIR:-$REPO_DIR/.services}
CACHE_DIR=${HUTCH_CACHE:-${HOME:-/root}/.cache/hutch}
# Absolute paths: they end up in the broker's config and in commands run from another cwd.
[[ $RUN_DIR == /* ]] || RUN_DIR=$PWD/$RUN_DIR
[[ $CACHE_DIR == /* ]] || CACHE_DIR=$PWD/$CACHE_DIR

KAFKA_PORT=${HUTCH_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${HUTCH_KAFKA_CONTROLLER_PORT:-19093}
KAFKA_HEAP=${HUTCH_KAFKA_HEAP:-512m}
KAFKA_START_TIMEOUT=${HUTCH_KAFKA_START_TIMEOUT:-120}
PG_PORT=${HUTCH_PG_PORT:-55432}

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

VERSITYGW_VERSION=${HUTCH_VERSITYGW_VERSION:-v1.8.0}
VERSITYGW_BIN=$CACHE_DIR/versitygw-$VERSITYGW_VERSION/versitygw

print_env() {
    printf 'export HUTCH_TEST_KAFKA=kafka://127.0.0.1:%s\n' "$KAFKA_PORT"
    printf 'export HUTCH_TEST_POSTGRES=postgresql://hutch:hutch@127.0.0.1:%s/hutch_test\n' "$PG_PORT"
    if [[ -x $VERSITYGW_BIN ]]; then
        printf 'export HUTCH_TEST_VERSITYGW=%s\n' "$VERSITYGW_BIN"
    fi
}

# Versity's S3 gateway: an S3 server that verifies presigned URLs' signatures and expiry
# (moto does not), for the S3 object store's tests. A Go program from the module proxy, built
# once into the cache; the tests start it themselves.
s3_install() {
    [[ -x $VERSITYGW_BIN ]] && return 0
    command -v go >/dev/null || { log "go not found: the S3 signature tests need versitygw"; return 1; }
    log "building versitygw $VERSITYGW_VERSION (once; about two minutes)"
    mkdir -p "$(dirname "$VERSITYGW_BIN")"
    GOBIN=$(dirname "$VERSITYGW_BIN") go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# True while process $1 exists and is not a zombie (a container may have no init to reap it).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# ---------------------------------------------------------------------------------------------
# Kafka

KAFKA_DIR=$RUN_DIR/kafka
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_LOGS=$KAFKA_DIR/logs
KAFKA_PIDFILE=$KAFKA_DIR/kafka.pid
KAFKA_CONFIG=$KAFKA_DIR/server.properties
KAFKA_POM=$OPS_DIR/kafka/pom.xml

kafka_version() {
    sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$KAFKA_POM" | head -n 1
}

kafka_home() { printf '%s/kafka-%s' "$CACHE_DIR" "$(kafka_version)"; }

# Fetch the broker's jars into the cache unless the cached set came from this very pom.
kafka_fetch_libs() {
    local home want tmp
    home=$(kafka_home)
    want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
    if [[ -f $home/pom.sha256 && $(cat "$home/pom.sha256") == "$want" ]]; then
        return
    fi
    command -v mvn >/dev/null || die "mvn not found: Maven fetches the Kafka jars"
    log "fetching Kafka $(kafka_version) jars from Maven Central into $home (once)"
    mkdir -p "$CACHE_DIR"
    tmp=$(mktemp -d "$home.partial.XXXXXX")
    if ! mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
        tail -n 40 "$tmp/mvn.log" >&2
        rm -rf "$tmp"
        die "mvn could not fetch the Kafka jars"
    fi
    printf '%s\n' "$want" >"$tmp/pom.sha256"
    # Swap the whole folder in at once, so a run interrupted mid-download is never mistaken
    # for a complete cache.
    rm -rf "$home"
    mv "$tmp" "$home"
}

# The JVM command line shared by the broker and the storage tool, into the array KAFKA_JAVA.
kafka_java_cmd() {
    local java=java
    [[ -n ${JAVA_HOME:-} ]] && java=$JAVA_HOME/bin/java
    KAFKA_JAVA=("$java" -Xms128m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
        -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$OPS_DIR/kafka/log4j2.properties"
        "-Dkafka.logs.dir=$KAFKA_LOGS"
        -cp "$(kafka_home)/libs/*")
}

kafka_java() {
    kafka_java_cmd
    "${KAFKA_JAVA[@]}" "$@"
}

kafka_render_config() {
    sed -e "s|@PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@DATA_DIR@|$KAFKA_DATA|g" "$OPS_DIR/kafka/server.properties" >"$KAFKA_CONFIG"
}

# Format the storage once; a formatted log dir (meta.properties) keeps its data and cluster id.
kafka_format() {
    [[ -f $KAFKA_DATA/meta.properties ]] && return
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid)
    log "formatting Kafka storage in $KAFKA_DATA (cluster id $cluster_id)"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONFIG" \
        --ignore-formatted >"$KAFKA_LOGS/format.out" 2>&1 \
        || { cat "$KAFKA_LOGS/format.out" >&2; die "Kafka storage format failed"; }
}

# The broker's pid, if the pid file names a live broker (not a recycled pid).
kafka_pid() {
    local pid
    [[ -f $KAFKA_PIDFILE ]] || return 1
    pid=$(cat "$KAFKA_PIDFILE")
    [[ -n $pid ]] && alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    printf '%s\n' "$pid"
}

kafka_start() {
    local pid offset waited=0
    if pid=$(kafka_pid); then
        log "kafka already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return
    fi
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        port_open "$port" && die "port $port is taken by another process; Kafka cannot start"
    done
    kafka_fetch_libs
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    kafka_render_config
    kafka_format
    # Only log lines written after this point count as this start's "started" line.
    offset=$(stat -c %s "$KAFKA_LOGS/lifecycle.log" 2>/dev/null || echo 0)
    rm -f "$KAFKA_PIDFILE"
    log "starting kafka on 127.0.0.1:$KAFKA_PORT (log: $KAFKA_LOGS/server.log)"
    # setsid: the broker outlives this shell and a Ctrl-C in the terminal that started it. The
    # inner shell writes its own pid and execs java, so the pid file names the JVM itself.
    kafka_java_cmd
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PIDFILE" \
        "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_CONFIG" \
        </dev/null >>"$KAFKA_LOGS/kafka.out" 2>&1 9>&- &
    while true; do
        if pid=$(kafka_pid) && port_open "$KAFKA_PORT" \
            && tail -c "+$((offset + 1))" "$KAFKA_LOGS/lifecycle.log" 2>/dev/null \
            | grep -q 'Kafka Server started'; then
            log "kafka ready (pid $pid)"
            return
        fi
        if [[ -s $KAFKA_PIDFILE ]] && ! alive "$(cat "$KAFKA_PIDFILE")"; then
            kafka_failed "the broker exited during start-up"
        fi
        if ((waited >= 2 * KAFKA_START_TIMEOUT)); then
            kafka_failed "the broker was not ready after ${KAFKA_START_TIMEOUT}s"
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
}

kafka_failed() {
    log "last lines of $KAFKA_LOGS/kafka.out:"
    tail -n 20 "$KAFKA_LOGS/kafka.out" >&2 || true
    log "last lines of $KAFKA_LOGS/server.log:"
    tail -n 40 "$KAFKA_LOGS/server.log" >&2 || true
    die "$1"
}

kafka_stop() {
    local pid waited=0
    if ! pid=$(kafka_pid); then
        rm -f "$KAFKA_PIDFILE"
        log "kafka not running"
        return
    fi
    log "stopping kafka (pid $pid)"
    kill -TERM "$pid"
    while alive "$pid"; do
        if ((waited >= 120)); then
            log "kafka still running after 60s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            while alive "$pid"; do sleep 0.2; done
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    rm -f "$KAFKA_PIDFILE"
    log "kafka stopped"
}

kafka_status() {
    local pid
    if pid=$(kafka_pid); then
        echo "kafka: running (pid $pid) on 127.0.0.1:$KAFKA_PORT, data in $KAFKA_DATA"
    else
        echo "kafka: stopped"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

PG_HOME=$RUN_DIR/postgres

# The directory holding initdb, pg_ctl and postgres: Debian keeps them off PATH, in
# /usr/lib/postgresql/<major>/bin; the newest major wins.
pg_find_bindir() {
    local dir
    if command -v pg_ctl >/dev/null; then
        dir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
        [[ -x $dir/initdb && -x $dir/postgres ]] && { printf '%s\n' "$dir"; return; }
    fi
    for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        [[ -x $dir/pg_ctl && -x $dir/initdb && -x $dir/postgres ]] \
            && { printf '%s\n' "$dir"; return; }
    done
    return 1
}

pg_bindir() {
    local dir
    if dir=$(pg_find_bindir); then
        printf '%s\n' "$dir"
        return
    fi
    is_root || die "PostgreSQL is not installed; run as root, or: sudo apt-get install -y postgresql"
    log "installing PostgreSQL from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q postgresql >&2; then
        apt-get update -q >&2
        apt-get install -y -q postgresql >&2
    fi
    pg_find_bindir || die "PostgreSQL installed but pg_ctl not found"
}

# Run a PostgreSQL server program as the user owning the cluster: postgres refuses to run as
# root, so root hands over to the `postgres` user the Debian package creates.
pg_as() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Make PG_HOME a directory the cluster's owner can write. When root runs this from a repo the
# postgres user cannot reach (say under /root), the cluster lives in /var/tmp instead and
# PG_HOME becomes a symlink to it.
pg_prepare_home() {
    local alt
    if [[ -L $PG_HOME ]]; then
        PG_HOME=$(readlink -f "$PG_HOME")
        return
    fi
    mkdir -p "$PG_HOME"
    is_root || return 0
    id postgres >/dev/null 2>&1 \
        || die "no postgres user (the Debian postgresql package creates it)"
    chown postgres:postgres "$PG_HOME"
    if ! runuser -u postgres -- test -w "$PG_HOME/." 2>/dev/null; then
        alt=/var/tmp/hutch-services-$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)/postgres
        log "the postgres user cannot reach $PG_HOME; keeping the cluster in $alt"
        rmdir "$PG_HOME" || die "$PG_HOME is not empty"
        mkdir -p "$alt"
        chown postgres:postgres "$alt"
        ln -s "$alt" "$PG_HOME"
        PG_HOME=$alt
    fi
}

pg_data() { printf '%s/data' "$PG_HOME"; }

pg_init() {
    local bindir=$1 data pwfile
    data=$(pg_data)
    [[ -f $data/PG_VERSION ]] && return
    pwfile=$PG_HOME/superuser.password
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$pwfile")
    is_root && chown postgres:postgres "$pwfile"
    log "creating a PostgreSQL cluster in $data"
    pg_as "$bindir/initdb" -D "$data" -U postgres --pwfile="$pwfile" -E UTF8 --no-locale \
        --auth-host=scram-sha-256 --auth-local=peer >"$PG_HOME/initdb.log" 2>&1 \
        || { cat "$PG_HOME/initdb.log" >&2; die "initdb failed"; }
    # Settings this script owns live in hutch.conf, rewritten on every start.
    printf "\ninclude_if_exists = 'hutch.conf'\n" | pg_as tee -a "$data/postgresql.conf" >/dev/null
}

# TCP on loopback only: no unix socket, whose path would depend on the run dir's length and,
# for the Debian default /var/run/postgresql, on who runs this.
pg_render_config() {
    printf '%s\n' \
        "# Written by ops/services.sh on every start." \
        "listen_addresses = '127.0.0.1'" \
        "port = $PG_PORT" \
        "unix_socket_directories = ''" \
        | pg_as tee "$(pg_data)/hutch.conf" >/dev/null
}

pg_running() { pg_as "$1/pg_ctl" -D "$(pg_data)" status >/dev/null 2>&1; }

pg_psql() {
    local bindir=$1
    shift
    PGPASSWORD=$(cat "$PG_HOME/superuser.password") "$bindir/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"
}

# Idempotent: the `hutch` role and its two databases.
pg_create_databases() {
    pg_psql "$1" >/dev/null <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hutch') THEN
        CREATE ROLE hutch LOGIN CREATEDB PASSWORD 'hutch';
    END IF;
END
$$;
SELECT 'CREATE DATABASE hutch OWNER hutch'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'hutch') \gexec
SELECT 'CREATE DATABASE hutch_test OWNER hutch'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'hutch_test') \gexec
SQL
}

pg_start() {
    local bindir
    bindir=$(pg_bindir)
    pg_prepare_home
    if pg_running "$bindir"; then
        log "postgres already running on 127.0.0.1:$PG_PORT"
        return
    fi
    port_open "$PG_PORT" && die "port $PG_PORT is taken by another process; PostgreSQL cannot start"
    pg_init "$bindir"
    pg_render_config
    log "starting postgres on 127.0.0.1:$PG_PORT (log: $PG_HOME/postgresql.log)"
    # 9>&-: the server must not inherit this script's lock.
    pg_as "$bindir/pg_ctl" -D "$(pg_data)" -l "$PG_HOME/postgresql.log" -w -t 60 start \
        >/dev/null 2>&1 9>&- || {
        tail -n 30 "$PG_HOME/postgresql.log" >&2 || true
        die "PostgreSQL did not start"
    }
    pg_create_databases "$bindir"
    log "postgres ready"
}

pg_stop() {
    local bindir
    bindir=$(pg_find_bindir) || { log "postgres not installed"; return; }
    [[ -L $PG_HOME ]] && PG_HOME=$(readlink -f "$PG_HOME")
    if [[ ! -f $(pg_data)/PG_VERSION ]] || ! pg_running "$bindir"; then
        log "postgres not running"
        return
    fi
    log "stopping postgres"
    pg_as "$bindir/pg_ctl" -D "$(pg_data)" -m fast -w -t 60 stop >/dev/null
    log "postgres stopped"
}

pg_status() {
    local bindir
    [[ -L $PG_HOME ]] && PG_HOME=$(readlink -f "$PG_HOME")
    if bindir=$(pg_find_bindir) && [[ -f $(pg_data)/PG_VERSION ]] && pg_running "$bindir"; then
        echo "postgres: running on 127.0.0.1:$PG_PORT, data in $(pg_data)"
    else
        echo "postgres: stopped"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------

usage() {
    echo "usage: $0 start|stop|status|env|kafka-start|kafka-stop|pg-start|pg-stop|s3-install" >&2
    exit 2
}

# One command at a time per run dir: two `start`s racing would both format and launch.
lock() {
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/.lock"
    flock 9
}

main() {
    [[ $# -eq 1 ]] || usage
    case $1 in
        env) print_env ;;
        status)
            local ok=0
            kafka_status || ok=3
            pg_status || ok=3
            return "$ok"
            ;;
        start) lock && kafka_start && pg_start && s3_install && print_env ;;
        s3-install) s3_install ;;
        stop) lock && kafka_stop && pg_stop ;;
        kafka-start) lock && kafka_start ;;
        kafka-stop) lock && kafka_stop ;;
        pg-start) lock && pg_start ;;
        pg-stop) lock && pg_stop ;;
        *) usage ;;
    esac
}

main "$@"
