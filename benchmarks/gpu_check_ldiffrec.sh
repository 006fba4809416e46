#!/usr/bin/env bash
# GPU check for L-DiffRec / T-DiffRec (owner: the L-/T-DiffRec part). Run from the repo root:
#     bash benchmarks/gpu_check_ldiffrec.sh [DATA_DIR]      # DATA_DIR holds ml-1m_clean/ (default gpu_data)
# Prints JSON lines: the ldiffrec and tdiffrec recipes on CUDA with a capped epoch budget
# (a device check, not the paper's full run), then the scaling benchmark at 100k items.
# Budget: < 3 minutes on one H100.
set -uo pipefail
DATA_DIR="${1:-gpu_data}"
export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
EPOCHS="${EPOCHS:-40}"
"$PY" - <<'PY'
import json, torch
print(json.dumps({"check": "cuda", "available": torch.cuda.is_available(),
                  "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))
PY
for model in ldiffrec tdiffrec; do
  timeout 70 "$PY" benchmarks/reproduce.py "$model" --dataset ml-1m_clean --data-dir "$DATA_DIR" \
      --device cuda --epochs "$EPOCHS" --no-progress 2>/dev/null | tail -n 1 \
    || echo "{\"model\": \"$model\", \"error\": \"failed or timed out (70 s)\"}"
done
timeout 35 "$PY" benchmarks/ldiffrec_scaling.py --items 100000 --device cuda 2>/dev/null | grep '^{' \
  || echo '{"check": "scaling", "error": "failed or timed out (35 s)"}'
