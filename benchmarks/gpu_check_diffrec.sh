#!/usr/bin/env bash
# GPU check for DiffRec and its baselines on ml-1m_clean (the paper's settings), < 3 min on an H100.
#   bash benchmarks/gpu_check_diffrec.sh [DATA_DIR]     (default gpu_data; holds ml-1m_clean/)
# Prints one JSON line per run (the last line of each reproduce.py call).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-gpu_data}"
if [ ! -f "$DATA_DIR/ml-1m_clean/train_list.npy" ]; then
  echo "{\"error\": \"$DATA_DIR/ml-1m_clean/train_list.npy not found\"}"; exit 1
fi
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import torch, json; print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))'
timeout 100 "$PY" benchmarks/reproduce.py diffrec --dataset ml-1m_clean --data-dir "$DATA_DIR" \
  --device cuda --seed 1 --no-progress | tail -n 1 || echo '{"model": "diffrec", "error": "failed or timed out"}'
timeout 60 "$PY" benchmarks/reproduce.py multivae --dataset ml-1m_clean --data-dir "$DATA_DIR" \
  --device cuda --no-progress | tail -n 1 || echo '{"model": "multivae", "error": "failed or timed out"}'
