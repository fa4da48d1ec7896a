#!/usr/bin/env bash
# The GPU path in one go, for a machine with a CUDA GPU: the GPU tests, timed runs on one GPU (fp32 and
# bf16-mixed), DDP on every GPU when there are several, and the speed benchmark on cuda, eager and with CUDA
# graphs (compile=reduce-overhead). Figures go to stdout and to ${OUT:-outputs/gpu}. Run it from the repository
# root after `pip install -e '.[test]'`. A step that fails is reported and the next one runs (GPU time is short);
# the script exits non-zero if any failed.
set -uo pipefail
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT"
failed=()
step() {  # step NAME COMMAND...: run it, say how long it took, remember a failure
  local name=$1 start=$SECONDS
  shift
  echo "== $name"
  "$@" || failed+=("$name")
  echo "== $name: $((SECONDS - start)) s"
}
quiet_run() { dlkit "$@" paths.output_dir="$OUT" tracking.experiment=gpu-check 2>&1 | tail -2; }

step "machine" nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step "torch" python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
step "GPU tests" pytest -q -n 0 tests/test_devices.py
for model in mlp lenet5 resnet; do
  for precision in 32-true bf16-mixed; do
    step "$model $precision" quiet_run trainer=gpu model=$model trainer.precision=$precision
  done
done
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -gt 1 ]; then
  step "ddp sweep" quiet_run -m trainer=ddp seed=0,1
fi
step "speed, eager and CUDA graphs" python bench/speed.py --device cuda --compile reduce-overhead --out "$OUT/speed_cuda.json"
step "report" bash -o pipefail -c "dlkit report --experiment gpu-check paths.output_dir='$OUT' | tail -20"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
