#!/usr/bin/env bash
# Submit a sweep to a Ray cluster as a Ray job (token auth), with this repository as working_dir.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: cluster/submit.sh [options] [--] [sweep arguments ...]

Submits `python <script> [sweep arguments]` with `ray job submit`, uploading the repository
(minus .rayignore/.gitignore) as the job's working directory. Every argument it does not know
is passed to the sweep script (see `python sweeps/cifar100_search.py --help`).

options:
  --script PATH          sweep script, relative to the repository (default: sweeps/cifar100_search.py)
  --submission-id ID     job id (default: pah-<timestamp>); reusing an id is refused by Ray
  --no-wait              return after submitting; then `ray job logs -f ID`
  --entrypoint-num-cpus N  CPUs reserved for the sweep driver process (default: 0)
  -h, --help             this text

environment:
  RAY_ADDRESS            the cluster's job server, e.g. http://<head>:8265 (required)
  RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token
                         the cluster's token, looked up in this order (RAY_AUTH_MODE=token is set here)
  MLFLOW_TRACKING_URI    MLflow tracking server for the job, e.g. http://<head>:5000
  MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD
                         the MLflow server's credentials (basic auth), forwarded to the job
  PAH_DATA_ROOT          dataset folder on the nodes (shared file system)
  PAH_STORAGE            Ray results folder or s3:// URI, passed as --storage (a later --storage wins)
  PAH_ENV_VARS           extra space-separated NAME names whose values are forwarded to the job
  PYTHON                 python used to build the runtime env JSON (default: python3)

examples:
  RAY_ADDRESS=http://head:8265 MLFLOW_TRACKING_URI=http://head:5000 PAH_STORAGE=/mnt/shared/ray_results \
    cluster/submit.sh --preset paper --num-samples 64 --name cifar-paper
  ray job logs -f <id>; ray job stop <id>
  cluster/submit.sh --submission-id cifar-paper-2 --resume --name cifar-paper
USAGE
}

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT="sweeps/cifar100_search.py"
SUBMISSION_ID="pah-$(date +%Y%m%d-%H%M%S)"
ENTRY_CPUS=""
EXTRA=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --script) SCRIPT="${2:?--script needs a path}"; shift 2 ;;
        --submission-id) SUBMISSION_ID="${2:?--submission-id needs a value}"; shift 2 ;;
        --no-wait) EXTRA+=(--no-wait); shift ;;
        --entrypoint-num-cpus) ENTRY_CPUS="${2:?--entrypoint-num-cpus needs a number}"; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done

if [[ -z "${RAY_ADDRESS:-}" ]]; then
    echo "error: set RAY_ADDRESS to the cluster's job server, e.g. http://<head>:8265" >&2
    usage >&2
    exit 2
fi
if [[ ! -f "$REPO/$SCRIPT" ]]; then
    echo "error: no sweep script $SCRIPT in $REPO" >&2
    exit 2
fi

# Ray's CLI sends the token only in token mode; without it a token-auth cluster answers 401.
export RAY_AUTH_MODE=token
if [[ -z "${RAY_AUTH_TOKEN:-}" && ! -s "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ]]; then
    echo "error: no Ray auth token: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, or copy the cluster's" \
        "token to ~/.ray/auth_token (on the head node: ray get-auth-token)" >&2
    exit 2
fi

# Environment of the job (driver and trials): the names below, when set here.
names=(MLFLOW_TRACKING_URI MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD PAH_DATA_ROOT RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S ${PAH_ENV_VARS:-})
RUNTIME_ENV="$("${PYTHON:-python3}" - "${names[@]}" <<'PY'
import json, os, sys
print(json.dumps({"env_vars": {n: os.environ[n] for n in sys.argv[1:] if os.environ.get(n)}}))
PY
)"

SWEEP_ARGS=()
if [[ -n "${PAH_STORAGE:-}" ]]; then
    SWEEP_ARGS+=(--storage "$PAH_STORAGE")
fi
if [[ -n "$ENTRY_CPUS" ]]; then
    EXTRA+=(--entrypoint-num-cpus "$ENTRY_CPUS")
fi

echo "[submit] $SUBMISSION_ID -> $RAY_ADDRESS: python $SCRIPT ${SWEEP_ARGS[*]} $*" >&2
cd "$REPO"
exec ray job submit \
    --address "$RAY_ADDRESS" \
    --submission-id "$SUBMISSION_ID" \
    --working-dir "$REPO" \
    --runtime-env-json "$RUNTIME_ENV" \
    "${EXTRA[@]}" \
    -- python "$SCRIPT" "${SWEEP_ARGS[@]}" "$@"
