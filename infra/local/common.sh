# Shared settings and helpers of infra/local/{up,down,status}. Sourced, not run.
# Every address, port and path is an environment variable, so tests and engineers sharing one
# machine can run clusters side by side (distinct ports and state dirs).

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HOST="${FACESR_HOST:-127.0.0.1}"
STATE="${FACESR_SERVICES_DIR:-$REPO/.facesr/services}"
# Which services `up` starts, in start order; `down` stops them in reverse.
SERVICES="${FACESR_SERVICES:-postgres prefect mlflow ray_head ray_worker}"
if [[ -z "${FACESR_BIN:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/ray" ]]; then FACESR_BIN="$REPO/.venv/bin"; else FACESR_BIN="$(dirname "$(command -v ray || echo /usr/bin/ray)")"; fi
fi

PREFECT_PORT="${FACESR_PREFECT_PORT:-4200}"
MLFLOW_PORT="${FACESR_MLFLOW_PORT:-5000}"
POSTGRES_PORT="${FACESR_POSTGRES_PORT:-5433}"
RAY_PORT="${FACESR_RAY_PORT:-6380}"
# Ray picks its other ports itself unless told (workers take 10002-19999: keep RAY_PORT+20 out of it); two nodes on one host, or two engineers' clusters,
# then collide on the fixed defaults (8265, 10001, 52365, 44217, 44227). Derive them from RAY_PORT instead.
RAY_DASHBOARD_PORT="${FACESR_RAY_DASHBOARD_PORT:-$((RAY_PORT + 1885))}"
RAY_HEAD_CPUS="${FACESR_RAY_HEAD_CPUS:-1}"
RAY_WORKER_CPUS="${FACESR_RAY_WORKER_CPUS:-1}"
RAY_OBJECT_STORE_BYTES="${FACESR_RAY_OBJECT_STORE_BYTES:-268435456}"
# Unix socket paths must stay under ~107 bytes: a short temp dir, not one inside the repo. Its name
# is predictable, so `up` creates it 0700 and refuses one that someone else could have planted.
RAY_TEMP="${FACESR_RAY_TEMP_DIR:-/tmp/facesr-ray-$(id -u)-$RAY_PORT}"
# Debian's PostgreSQL; any other install: FACESR_PG_BIN=$(pg_config --bindir)
PG_BIN="${FACESR_PG_BIN:-/usr/lib/postgresql/15/bin}"

START_TIMEOUT="${FACESR_START_TIMEOUT:-120}"
STOP_TIMEOUT="${FACESR_STOP_TIMEOUT:-10}"

PREFECT_URL="http://$HOST:$PREFECT_PORT"
MLFLOW_URL="http://$HOST:$MLFLOW_PORT"
RAY_ADDR="$HOST:$RAY_PORT"

# Secrets, generated per cluster by `up` (each file 0600, the folder 0700).
SECRETS="$STATE/secrets"
# Postgres' folder (its data in data/): owned by the postgres user when `up` runs as root, which
# must then be able to reach it (the state dir is made 0711 for that).
PGDIR="${FACESR_POSTGRES_DIR:-$STATE/postgres}"
PGDATA="$PGDIR/data"
PGPASSFILE_PATH="$SECRETS/pgpass"         # libpq's and asyncpg's password file: 127.0.0.1:*:*:facesr:PW
MLFLOW_ADMIN_FILE="$SECRETS/mlflow_admin_password"
MLFLOW_USER=facesr                         # the pipeline's MLflow user (not an admin)
MLFLOW_PASSWORD_FILE="$SECRETS/mlflow_password"
MLFLOW_FLASK_KEY_FILE="$SECRETS/mlflow_flask_secret_key"
MLFLOW_AUTH_INI="$SECRETS/mlflow_basic_auth.ini"
PREFECT_AUTH_FILE="$SECRETS/prefect_auth_string"   # user:password, Prefect's basic-auth form
DB_USER=facesr

export PREFECT_HOME="$STATE/prefect"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export MLFLOW_DISABLE_TELEMETRY=true
export RAY_USAGE_STATS_ENABLED=0
export DO_NOT_TRACK=1
# Ray turns token auth on whenever ~/.ray/auth_token exists, and every cluster of this user then
# shares (and may regenerate) that one file. Give this cluster its own token instead; env.sh hands
# it to the drivers that join.
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$STATE/ray_auth_token"

log() { printf '%s\n' "$*" >&2; }

pidfile() { printf '%s/%s.pid' "$STATE" "$1"; }
logfile() { printf '%s/logs/%s.log' "$STATE" "$1"; }

# MLflow and Prefect keep their stores in the cluster's Postgres once it has one (the postgres
# service made it); without it they fall back to sqlite, which takes one writer at a time.
has_postgres() { [[ -d "$PGDATA" ]]; }

# Run "$@" as the user that owns the Postgres data: PostgreSQL refuses to run as root, so as root
# that is the `postgres` system user.
as_pg() {
    if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

# Live (non-zombie) processes of process group $1. Each service runs in its own session
# (setsid), so its group holds it and every child it spawned: killing the group leaves nothing.
group_pids() {
    ps -eo pid=,pgid=,stat= | awk -v g="$1" '$2 == g && $3 !~ /^Z/ {print $1}'
}

is_running() {
    local f; f="$(pidfile "$1")"
    [[ -s "$f" ]] && [[ -n "$(group_pids "$(cat "$f")")" ]]
}

http_ok() {  # url expected_body
    local body
    body="$(curl -fsS --noproxy '*' --max-time 3 "$1" 2>/dev/null)" || return 1
    [[ "$body" == "$2" ]]
}

ray_nodes() {  # number of active nodes `ray status` lists, or fail
    local out
    out="$(timeout 20 "$FACESR_BIN/ray" status --address "$RAY_ADDR" 2>/dev/null)" || return 1
    awk '/^Active:/ {a = 1; next} /^Pending:/ {a = 0} a && /^ *[0-9]+ node_/ {n += $1} END {print n + 0}' <<<"$out"
}

healthy() {
    case "$1" in
        postgres) "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -t 3 ;;
        prefect) http_ok "$PREFECT_URL/api/health" "true" ;;
        mlflow) http_ok "$MLFLOW_URL/health" "OK" ;;
        ray_head) [[ "$(ray_nodes)" -ge 1 ]] ;;
        ray_worker) [[ "$(ray_nodes)" -ge 2 ]] ;;
        *) log "unknown service '$1' (known: postgres prefect mlflow ray_head ray_worker)"; return 2 ;;
    esac
}

wait_healthy() {
    local name="$1" deadline=$((SECONDS + START_TIMEOUT))
    until healthy "$name"; do
        if ! is_running "$name"; then
            log "error: $name exited while starting; last lines of $(logfile "$name"):"
            tail -n 20 "$(logfile "$name")" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "error: $name not healthy after ${START_TIMEOUT}s (FACESR_START_TIMEOUT); see $(logfile "$name")"
            return 1
        fi
        sleep 1
    done
}

# SIGTERM the group, wait, then SIGKILL what is left; forget the pid file only once it is empty.
# (Postgres takes SIGTERM as its "smart" shutdown: it waits for its clients, which `down` stopped
# before it.)
stop_group() {
    local name="$1" f pgid deadline
    f="$(pidfile "$name")"
    [[ -s "$f" ]] || return 0
    pgid="$(cat "$f")"
    if [[ -n "$(group_pids "$pgid")" ]]; then
        kill -TERM -- "-$pgid" 2>/dev/null || true
        deadline=$((SECONDS + STOP_TIMEOUT))
        while [[ -n "$(group_pids "$pgid")" ]] && ((SECONDS < deadline)); do sleep 0.5; done
        if [[ -n "$(group_pids "$pgid")" ]]; then
            log "$name: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL -- "-$pgid" 2>/dev/null || true
            # a killed process holds its pid until its parent reaps it: give a loaded machine time
            deadline=$((SECONDS + 5))
            while [[ -n "$(group_pids "$pgid")" ]] && ((SECONDS < deadline)); do sleep 0.5; done
        fi
    fi
    if [[ -n "$(group_pids "$pgid")" ]]; then
        log "error: $name (process group $pgid) would not stop"
        return 1
    fi
    rm -f "$f"
    log "$name stopped"
}

# Where Ray's servers listen. Ray binds its gRPC servers (GCS, raylets, workers) to 127.0.0.1 only
# when a node's IP is 127.0.0.1, and on Linux `ray start` replaces a loopback --node-ip-address
# with the machine's address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray's switch for
# single-node Ray on laptops), which in turn makes `ray start` refuse a worker node. So:
#   loopback: the head alone, every Ray socket on 127.0.0.1 (FACESR_SERVICES without ray_worker)
#   all:      head + worker node; Ray listens on every interface, behind the cluster's token
# A running head records its mode in the state dir, so a later `up`, `status` or `down` agrees
# with it (a stale record, of a head that is gone, does not count).
if [[ -s "$STATE/ray_bind" ]] && is_running ray_head; then
    RAY_BIND="$(cat "$STATE/ray_bind")"
elif [[ " $SERVICES " == *" ray_worker "* ]]; then
    RAY_BIND=all
else
    RAY_BIND=loopback
fi
if [[ "$RAY_BIND" == loopback ]]; then
    export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
fi
