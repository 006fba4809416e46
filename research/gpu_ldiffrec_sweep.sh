#!/usr/bin/env bash
# L-DiffRec's validation sweep (diffrec_sweep.py --family ldiffrec) as parallel jobs on one GPU,
# sized for one device call: jobs run in the order given, WORKERS at a time, until SECONDS_LIMIT.
#
#   bash research/gpu_ldiffrec_sweep.sh DATA_DIR OUT WORKERS SECONDS_LIMIT JOB [JOB ...]
#     JOB   INDEX:SEED, an LGRID index and a seed, e.g. 2:1 1:1 7:1 2:2
#
# OUT receives sweep.jsonl (one JSON line per finished run, as diffrec_sweep.py prints it, plus a
# first line naming the GPU) and errors.log (each job's stderr, prefixed by its INDEX:SEED).
# Runs share the GPU and its host, so their "seconds" are not single-run figures; a job still
# running at SECONDS_LIMIT is killed and leaves no line. Order jobs by priority. DEVICE=cpu runs
# the same jobs without a GPU (the test does).
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=$1 OUT=$2 WORKERS=$3 SECONDS_LIMIT=$4
shift 4
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 PY DATA_DIR OUT
"$PY" -c 'import torch, json; print(json.dumps({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))' >> "$OUT/sweep.jsonl"

one_job() {  # one_job INDEX:SEED
  local index=${1%%:*} seed=${1##*:}
  "$PY" research/diffrec_sweep.py --family ldiffrec --only "$index" --seeds "$seed" \
    --data-dir "$DATA_DIR" --device "${DEVICE:-cuda}" >> "$OUT/sweep.jsonl" 2> >(sed "s/^/$1 /" >> "$OUT/errors.log")
}
export -f one_job
timeout --signal=TERM "$SECONDS_LIMIT" \
  bash -c 'printf "%s\n" "$@" | xargs -P "$0" -I{} bash -c "one_job {}"' "$WORKERS" "$@"
echo "sweep ended with status $? after $SECONDS s; $(grep -c '"index"' "$OUT/sweep.jsonl") runs finished"
