#!/usr/bin/env bash
# The GPU path in one go, for a machine with a CUDA GPU: the GPU tests, timed runs on one GPU (fp32 and
# bf16-mixed), DDP on every GPU when there are several, and the speed benchmark on cuda.
# Figures go to stdout and to ${OUT:-outputs/gpu}. Run it from the repository root after `pip install -e '.[test]'`.
set -euo pipefail
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
pytest -q -n 0 tests/test_devices.py
for model in mlp lenet5 resnet; do
  for precision in 32-true bf16-mixed; do
    /usr/bin/time -f "$model $precision: %e s wall" dlkit trainer=gpu model=$model trainer.precision=$precision \
      paths.output_dir="$OUT" tracking.experiment=gpu-check 2>&1 | tail -2
  done
done
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -gt 1 ]; then
  /usr/bin/time -f "ddp sweep: %e s wall" dlkit -m trainer=ddp seed=0,1 paths.output_dir="$OUT" tracking.experiment=gpu-check 2>&1 | tail -3
fi
python bench/speed.py --device cuda --compile reduce-overhead --out "$OUT/speed_cuda.json"  # eager, and CUDA graphs
dlkit report --experiment gpu-check paths.output_dir="$OUT" | tail -20
