#!/usr/bin/env bash
# Issue #28 point 4 in one command, on a machine with a GPU (needs torch, pyyaml, numpy, scipy,
# matplotlib; no Ray or MLflow):
#   1. the machine: GPU, driver, torch;
#   2. benchmarks/gpu.py: k trials packed on the one GPU against one (trials per GPU-hour, images
#      per second), and PAH's step eager against compiled and CUDA-graph-captured;
#   3. with --numerics: benchmarks/numerics.py --device cuda --skip-runs (bf16, channels_last,
#      compile on the step, on CUDA).
#
#   benchmarks/gpu.sh DATA_ROOT OUT [--numerics] [gpu.py flags, e.g. --quick --pack 1,2,4,8]
#
# DATA_ROOT holds cifar-100-python/; OUT receives machine.txt, gpu.json, gpu.log (and numerics.*).
# Without a visible CUDA device it stops at once with exit code 3, having written machine.txt.
set -uo pipefail
usage="usage: benchmarks/gpu.sh DATA_ROOT OUT [--numerics] [gpu.py flags]"
data=${1:?$usage}
out=${2:?$usage}
shift 2
numerics=0
if [[ ${1:-} == --numerics ]]; then numerics=1; shift; fi
py=${PYTHON:-python3}
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PAH_DATA_ROOT=$data
mkdir -p "$out"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "no nvidia-smi"
  $py -c 'import os, platform, sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "cpus", os.cpu_count(), platform.machine())'
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
if ! $py -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu.sh: no CUDA device visible here: nothing to measure (run it where a GPU is)" >&2
  exit 3
fi

$py benchmarks/gpu.py --data-root "$data" --out "$out" "$@" 2>&1 | tee "$out/gpu.log"
code=${PIPESTATUS[0]}
if [[ $numerics == 1 ]]; then
  $py benchmarks/numerics.py --device cuda --skip-runs --data-root "$data" --out "$out" \
    2>&1 | tee "$out/numerics.log"
fi
exit "$code"
