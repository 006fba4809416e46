#!/usr/bin/env bash
# Several DiffuRec pieces at once on one GPU, for experiments compared at equal epochs (an
# ablation beside a control run, say). Each job is one gpu_diffurec_pieces.sh call with its own
# state folder, which this script refreshes after the piece: a second call on the same (still
# warm) device machine resumes every job without carrying its checkpoint again.
#
#   bash research/gpu_diffurec_parallel.sh DATA_DIR OUT SECONDS JOB [JOB ...]
#     JOB   NAME:STATE_DIR[:EXTRA], EXTRA's words joined by commas, e.g.
#           main:build/jobs/main:--seed,1   control:build/jobs/control:--seed,2
#
# OUT receives logs.tar.gz (each job's per-epoch log and JSON line, as NAME/diffurec.{log,json})
# and, for the jobs named in RETURN_PARTS (space-separated), NAME.diffurec.pt.part-* (the device
# sends back at most 8 files). RESUME_ONLY=1 skips a job whose state folder is empty, so that a
# call that lands on a fresh machine does not restart a run from epoch 0 by mistake.
# The jobs share the GPU and its host: their seconds per epoch are not single-run figures.
# Each job's working files go to JOBS_DIR/NAME (default build/gpu_jobs).
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=$1 OUT=$2 SECONDS_LIMIT=$3
shift 3
JOBS="${JOBS_DIR:-build/gpu_jobs}"
mkdir -p "$OUT" "$JOBS"
pids=() names=()
for job in "$@"; do
  IFS=: read -r name state extra <<< "$job"
  mkdir -p "$state" "$JOBS/$name"
  if [ "${RESUME_ONLY:-0}" = 1 ] && ! compgen -G "$state/diffurec.pt.part-*" > /dev/null; then
    echo "$name: no state in $state, skipped (RESUME_ONLY=1)"; continue
  fi
  (
    OMP_NUM_THREADS="${THREADS_PER_JOB:-4}" CKPT="$JOBS/$name/diffurec.pt" EXTRA="${extra//,/ }" \
      bash research/gpu_diffurec_pieces.sh "$DATA_DIR" "$state" "$JOBS/$name" "$SECONDS_LIMIT" \
      > "$JOBS/$name/driver.log" 2>&1
    status=$?
    if compgen -G "$JOBS/$name/diffurec.pt.part-*" > /dev/null; then
      rm -f "$state"/diffurec.pt.part-*
      mv "$JOBS/$name"/diffurec.pt.part-* "$state"/
    fi
    exit $status
  ) &
  pids+=($!) names+=("$name")
done
failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "${names[$i]}: exit $?"; failed=1; }
  echo "${names[$i]}: $(tail -n 1 "$JOBS/${names[$i]}/diffurec.json" 2>/dev/null)"
done
tar czf "$OUT/logs.tar.gz" -C "$JOBS" --exclude='*.pt' --exclude='*.part-*' .
for name in ${RETURN_PARTS:-}; do
  state=$(printf '%s\n' "$@" | awk -F: -v n="$name" '$1 == n {print $2}')
  for part in "$state"/diffurec.pt.part-*; do cp "$part" "$OUT/$name.$(basename "$part")"; done
done
ls -l "$OUT"
exit $failed
