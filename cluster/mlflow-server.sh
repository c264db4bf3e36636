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
# Options: --print-command prints the command instead of running it.
set -euo pipefail

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

echo "[mlflow] serving $MLFLOW_BACKEND_STORE_URI on http://$MLFLOW_HOST:$MLFLOW_PORT (artifacts: $MLFLOW_ARTIFACTS_DESTINATION)" >&2
exec "${cmd[@]}"
