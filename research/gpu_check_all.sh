#!/usr/bin/env bash
# One short GPU check of every model family, sized for a 10-minute device slot.
#   bash research/gpu_check_all.sh [DATA_DIR] [LOG_DIR]
# DATA_DIR holds ml-1m_clean/ and amazon_beauty/ (default gpu_data). Each step has its own
# timeout so one slow step cannot eat the others; every JSON line goes to LOG_DIR/gpu.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-gpu_data}"
LOG_DIR="${2:-build}"
mkdir -p "$LOG_DIR"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOG="$LOG_DIR/gpu.jsonl"
: > "$LOG"

step() {  # step SECONDS NAME CMD...
  local secs=$1 name=$2; shift 2
  local t0=$(date +%s)
  echo "== $name (limit ${secs}s)"
  timeout "$secs" "$@" > "$LOG_DIR/$name.out" 2> "$LOG_DIR/$name.err"
  local rc=$?
  tail -n 3 "$LOG_DIR/$name.err" | sed 's/^/   stderr: /'
  grep '^{' "$LOG_DIR/$name.out" | tail -n 3 | tee -a "$LOG"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 ))}" | tee -a "$LOG"
}

"$PY" -c 'import torch, json; print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))' | tee -a "$LOG"
R="benchmarks/reproduce.py"
ML="--dataset ml-1m_clean --data-dir $DATA_DIR --device cuda --no-progress"
BE="--dataset amazon_beauty --data-dir $DATA_DIR --device cuda --no-progress"
step 90  diffrec    "$PY" $R diffrec $ML --seed 1
step 45  multivae   "$PY" $R multivae $ML
step 60  tdiffrec   "$PY" $R tdiffrec $ML --epochs 40
step 60  ldiffrec   "$PY" $R ldiffrec $ML --epochs 40
step 30  scaling    "$PY" research/ldiffrec_scaling.py --items 100000 --device cuda
step 40  speed_diffurec "$PY" benchmarks/recipes/sequential.py speed diffurec --data-dir "$DATA_DIR" --device cuda --batches 30 --chunk-size 128
step 45  sasrec     "$PY" $R sasrec $BE --epochs 30
step 100 diffurec   "$PY" $R diffurec $BE --epochs 20
step 60  seqdiffrec "$PY" $R seqdiffrec $BE --epochs 10
