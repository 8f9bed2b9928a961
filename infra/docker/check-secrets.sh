#!/bin/sh
# Refuse to start the stack on placeholder or weak secrets. Compose's ${VAR:?} only catches unset
# or empty variables; this catches the rest: too short, a known placeholder, characters that would
# need quoting (the secrets end up in URLs and config files), or a scoped credential that repeats
# the root one. Run by the `check-secrets` service of compose.yaml, which every other service waits
# for; runnable by hand too: `set -a; . infra/docker/.env; sh infra/docker/check-secrets.sh`.
# Generate a secret: openssl rand -hex 32
set -u

SECRETS="POSTGRES_PASSWORD MLFLOW_DB_PASSWORD PREFECT_DB_PASSWORD MINIO_ROOT_PASSWORD MLFLOW_S3_SECRET_KEY
MLFLOW_ADMIN_PASSWORD MLFLOW_PASSWORD MLFLOW_FLASK_SECRET_KEY RAY_AUTH_TOKEN"
NAMES="MINIO_ROOT_USER MLFLOW_S3_ACCESS_KEY"
bad=0

fail() {
    echo "check-secrets: $1" >&2
    bad=1
}

value_of() {
    eval "printf '%s' \"\${$1-}\""
}

check() {  # name value min_length
    case "$2" in
        "") fail "$1 is not set (infra/docker/.env)"; return ;;
        *[!A-Za-z0-9._~-]*) fail "$1 has characters other than A-Z a-z 0-9 . _ ~ - (use: openssl rand -hex 32)"; return ;;
    esac
    lower=$(printf '%s' "$2" | tr 'A-Z' 'a-z')
    case "$lower" in
        *change*me* | *generate*me* | *placeholder* | *example* | *password* | *secret* | *xxxx* | *todo*)
            fail "$1 is a placeholder; set a real value (openssl rand -hex 32)"; return ;;
    esac
    if [ "${#2}" -lt "$3" ]; then
        fail "$1 is ${#2} characters long; use at least $3 (openssl rand -hex 32)"
    fi
}

for name in $SECRETS; do
    check "$name" "$(value_of "$name")" 16
done
for name in $NAMES; do
    check "$name" "$(value_of "$name")" 3
done

# Prefect's basic auth is user:password; the password half is a secret like the others.
auth="${PREFECT_AUTH_STRING-}"
case "$auth" in
    ?*:?*) check "PREFECT_AUTH_STRING's password" "${auth#*:}" 16; check "PREFECT_AUTH_STRING's user" "${auth%%:*}" 3 ;;
    *) fail "PREFECT_AUTH_STRING must be user:password (e.g. facesr:\$(openssl rand -hex 32))" ;;
esac

# MLflow gets a MinIO user of its own, limited to its bucket: not the root credentials.
if [ -n "${MLFLOW_S3_ACCESS_KEY-}" ] && [ "${MLFLOW_S3_ACCESS_KEY-}" = "${MINIO_ROOT_USER-}" ]; then
    fail "MLFLOW_S3_ACCESS_KEY equals MINIO_ROOT_USER: give MLflow its own MinIO user"
fi
seen=""
for name in $SECRETS; do
    v=$(value_of "$name")
    [ -n "$v" ] || continue
    for other in $seen; do
        if [ "$v" = "$(value_of "$other")" ]; then
            fail "$name repeats $other: every secret gets its own value"
        fi
    done
    seen="$seen $name"
done

if [ "$bad" -ne 0 ]; then
    echo "check-secrets: refusing to start; fix infra/docker/.env (see .env.example)" >&2
    exit 1
fi
echo "check-secrets: ok"
