#!/usr/bin/env bash
# GPU check for DiffuRec and SASRec on Amazon Beauty (the paper's settings), < 3.5 min on an H100.
#   bash research/gpu_check_sequential.sh [DATA_DIR]   (default gpu_data; holds amazon_beauty/dataset.pkl)
# Prints JSON lines: the environment; seconds per training batch / epoch of each model (timed
# batches, extrapolated, labelled so); then short trainings (the epochs that fit in ~2 minutes)
# with test HR/NDCG @5/10/20 x100 under both protocols.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-gpu_data}"
if [ ! -f "$DATA_DIR/amazon_beauty/dataset.pkl" ]; then
  echo "{\"error\": \"$DATA_DIR/amazon_beauty/dataset.pkl not found\"}"; exit 1
fi
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import torch, json; print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))'

# 1. speed at the paper's settings: 30 timed batches each (bf16 autocast, chunks of 128)
timeout 60 "$PY" benchmarks/recipes/sequential.py speed diffurec --data-dir "$DATA_DIR" --device cuda \
  --batches 30 --chunk-size 128 > /tmp/gpu_speed_diffurec.json || echo '{"model": "diffurec", "error": "speed failed"}' > /tmp/gpu_speed_diffurec.json
cat /tmp/gpu_speed_diffurec.json
timeout 30 "$PY" benchmarks/recipes/sequential.py speed sasrec --data-dir "$DATA_DIR" --device cuda \
  --batches 50 --chunk-size 128 || echo '{"model": "sasrec", "error": "speed failed"}'

# 2. short trainings: SASRec 30 epochs (eval every 5), DiffuRec as many epochs as fit in ~80 s
timeout 45 "$PY" benchmarks/reproduce.py sasrec --dataset amazon_beauty --data-dir "$DATA_DIR" \
  --device cuda --epochs 30 --no-progress | tail -n 1 || echo '{"model": "sasrec", "error": "failed or timed out"}'
EPOCHS=$("$PY" -c 'import json,sys
try: s = json.load(open("/tmp/gpu_speed_diffurec.json"))["seconds_per_epoch_extrapolated"]
except Exception: s = 30
print(max(1, min(40, int(80 // max(s, 1e-3)))))')
timeout 150 "$PY" benchmarks/reproduce.py diffurec --dataset amazon_beauty --data-dir "$DATA_DIR" \
  --device cuda --epochs "$EPOCHS" --no-progress | tail -n 1 || echo "{\"model\": \"diffurec\", \"epochs\": $EPOCHS, \"error\": \"failed or timed out\"}"
