#!/usr/bin/env bash
# The CUDA checks, in one go on a machine with a GPU (needs torch, torchvision, pyyaml, numpy,
# matplotlib, pytest; no Ray or MLflow):
#   1. the machine: GPU, driver, torch;
#   2. the host-sync benchmark on the GPU (benchmarks/host_syncs.py --device cuda), alone;
#   3. tests/test_cuda.py and the unit tests of the training path, on the GPU's machine;
#   4. real runs at the paper's schedule (15 epochs per task, batch 64, ResNet-18 ImageNet stem, no
#      pretraining, seed 1): PAH with the shipped defaults, PAH in the official-code mode, fine-tune,
#      side by side on the one GPU, each under a time limit.
#
#   benchmarks/cuda_check.sh DATA_ROOT OUT [cifar100|tinyimagenet] [RUN_LIMIT_S]
#
# DATA_ROOT holds cifar-100-python/ (and/or tiny-imagenet-200/); OUT receives machine.txt,
# host_syncs.json, pytest.log and one <run>.json (results.json) and <run>.log per run.
set -uo pipefail
data=${1:?usage: cuda_check.sh DATA_ROOT OUT [cifar100|tinyimagenet] [RUN_LIMIT_S]}
out=${2:?usage: cuda_check.sh DATA_ROOT OUT [cifar100|tinyimagenet] [RUN_LIMIT_S]}
dataset=${3:-cifar100}
limit=${4:-420}
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PAH_DATA_ROOT=$data
mkdir -p "$out"
work=$(mktemp -d)

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $py -c 'import platform, sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0), "cpus", __import__("os").cpu_count(), platform.machine())'
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

if [[ $dataset == cifar100 ]]; then
  $py benchmarks/host_syncs.py --device cuda --data-root "$data" > "$out/host_syncs.log" 2>&1
  cp benchmarks/out/host_syncs.json "$out/host_syncs.json" 2>/dev/null
  tail -3 "$out/host_syncs.log"
  config=configs/cifar100_pah.yaml
else
  config=configs/tinyimagenet_pah.yaml
fi

official=$($py -c 'from sweeps.ablation import VARIANTS; print(" ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in VARIANTS["official_code"].items()))')
common=(--config "$config" run.device=cuda run.progress=false run.threads=2 schedule.epochs_per_task=15 schedule.eval_future=true)
declare -A runs=(
  [pah]=""
  [pah_official]="$official"
  [finetune]="method.name=finetune"
)
for name in "${!runs[@]}"; do
  # shellcheck disable=SC2086 # the overrides are words
  (timeout "$limit" $py -m pah_core.train --out "$work/$name" "${common[@]}" ${runs[$name]} > "$out/$name.log" 2>&1
   echo "exit $?" >> "$out/$name.log"; cp "$work/$name/results.json" "$out/$name.json" 2>/dev/null) &
done
# The unit tests beside the runs: correctness only, their timing is not reported.
$py -m pytest -q -p no:cacheprovider -m "not slow" tests/test_cuda.py tests/test_engine.py \
  tests/test_pah.py tests/test_task_inference.py tests/test_fidelity.py tests/test_baselines.py \
  tests/test_diagnostics.py tests/test_metrics.py tests/test_bad_inputs.py tests/test_safety.py \
  > "$out/pytest.log" 2>&1
tail -3 "$out/pytest.log"
wait
for name in "${!runs[@]}"; do echo "== $name"; tail -4 "$out/$name.log"; done
