#!/usr/bin/env bash
# The MLflow tracking server for a VM cluster (run it on the head node or a small service VM).
# It binds 127.0.0.1 unless MLFLOW_HOST says otherwise: reach it through an SSH tunnel
# (ssh -L 5000:127.0.0.1:5000 head) or set MLFLOW_HOST to the cluster's private address.
#
#   small setups:  MLFLOW_BACKEND_STORE_URI=sqlite:////mnt/shared/mlflow/mlflow.db (the default)
#   production:    MLFLOW_BACKEND_STORE_URI=postgresql://mlflow@db:5432/mlflow with the password in
#                  PGPASSWORD or ~/.pgpass (libpq reads them; never write it into a file here),
#                  MLFLOW_ARTIFACTS_DESTINATION=s3://bucket/mlflow (AWS_* credentials from the
#                  environment; MLFLOW_S3_ENDPOINT_URL=http://minio:9000 for MinIO)
#
# Authentication (on by default): MLflow's basic-auth app. The admin password comes from the
# environment, MLFLOW_AUTH_ADMIN_PASSWORD (a Kubernetes Secret, a root-only env file), and is never
# written here; MLflow creates the admin user with it on first start. Users are kept in
# MLFLOW_AUTH_DATABASE_URI (default: basic_auth.db beside the store). Clients (sweeps, analysis,
# `mlflow ui` users) set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD. Other users: create
# them with MLflow's users API (mlflow.server.auth.client.AuthServiceClient). MLFLOW_AUTH=none
# serves without authentication: only behind an authenticating proxy.
#
# Options: --print-command prints the command instead of running it.
set -euo pipefail
# The stores and the auth config are the owner's alone.
umask 077

MLFLOW_HOST="${MLFLOW_HOST:-127.0.0.1}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
SHARED="${PAH_SHARED:-/mnt/shared}"
MLFLOW_BACKEND_STORE_URI="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$SHARED/mlflow/mlflow.db}"
MLFLOW_ARTIFACTS_DESTINATION="${MLFLOW_ARTIFACTS_DESTINATION:-$SHARED/mlflow/artifacts}"
MLFLOW_WORKERS="${MLFLOW_WORKERS:-2}"
MLFLOW_BIN="${MLFLOW_BIN:-mlflow}"
# MLflow 3.x starts a pool of job consumers for its GenAI features (judges, trace scoring), which
# sweeps do not use: off unless asked for.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

cmd=("$MLFLOW_BIN" server
    --host "$MLFLOW_HOST"
    --port "$MLFLOW_PORT"
    --workers "$MLFLOW_WORKERS"
    --backend-store-uri "$MLFLOW_BACKEND_STORE_URI"
    --serve-artifacts
    --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION")
MLFLOW_AUTH="${MLFLOW_AUTH:-basic}"
case "$MLFLOW_AUTH" in
    basic)
        if [[ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" && "${1:-}" != "--print-command" ]]; then
            echo "error: MLFLOW_AUTH=basic (the default) needs the admin password in" \
                "MLFLOW_AUTH_ADMIN_PASSWORD (from a Secret; never in a file here), or MLFLOW_AUTH=none" \
                "behind an authenticating proxy" >&2
            exit 2
        fi
        AUTH_DIR="$SHARED/mlflow"
        case "$MLFLOW_BACKEND_STORE_URI" in
            sqlite:///*) AUTH_DIR="$(dirname "${MLFLOW_BACKEND_STORE_URI#sqlite:///}")" ;;
        esac
        export MLFLOW_AUTH_CONFIG_PATH="${MLFLOW_AUTH_CONFIG_PATH:-$AUTH_DIR/basic_auth.ini}"
        MLFLOW_AUTH_DATABASE_URI="${MLFLOW_AUTH_DATABASE_URI:-sqlite:///$AUTH_DIR/basic_auth.db}"
        cmd+=(--app-name basic-auth)
        ;;
    none) ;;
    *) echo "error: MLFLOW_AUTH=$MLFLOW_AUTH: use basic (default) or none" >&2; exit 2 ;;
esac
# Another host name than the bind address (a DNS name, a tunnel) must be allowed explicitly.
if [[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]]; then
    cmd+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
fi

if [[ "${1:-}" == "--print-command" ]]; then
    printf '%q ' "${cmd[@]}"
    echo
    exit 0
fi
case "$MLFLOW_BACKEND_STORE_URI" in
    sqlite:///*) mkdir -p "$(dirname "${MLFLOW_BACKEND_STORE_URI#sqlite:///}")" ;;
esac
case "$MLFLOW_ARTIFACTS_DESTINATION" in
    *://*) ;;
    *) mkdir -p "$MLFLOW_ARTIFACTS_DESTINATION" ;;
esac
if [[ "$MLFLOW_AUTH" == basic ]]; then
    mkdir -p "$(dirname "$MLFLOW_AUTH_CONFIG_PATH")"
    # No password in the file: MLflow reads MLFLOW_AUTH_ADMIN_PASSWORD on first start.
    cat >"$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = $MLFLOW_AUTH_DATABASE_URI
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
INI
    # The auth app's CSRF key must be the same for every worker and across restarts: from the
    # environment (a Secret), else generated once beside the auth config, owner-only.
    if [[ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]]; then
        key_file="$(dirname "$MLFLOW_AUTH_CONFIG_PATH")/flask_secret_key"
        [[ -s "$key_file" ]] || "${PYTHON:-python3}" -c "import secrets; print(secrets.token_hex(32))" >"$key_file"
        MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$key_file")"
        export MLFLOW_FLASK_SERVER_SECRET_KEY
    fi
fi

echo "[mlflow] serving $MLFLOW_BACKEND_STORE_URI on http://$MLFLOW_HOST:$MLFLOW_PORT (artifacts: $MLFLOW_ARTIFACTS_DESTINATION; auth: $MLFLOW_AUTH)" >&2
exec "${cmd[@]}"
