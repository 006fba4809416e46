#!/usr/bin/env bash
# DiffuRec's full Amazon Beauty run (500 epochs, the paper's settings) in pieces that fit the
# 10-minute device calls: each call resumes the checkpoint, trains for SECONDS, pauses, and
# leaves the checkpoint (split into parts of 15 MB, the device's 16 MiB per-file limit) in OUT.
#
#   bash research/gpu_diffurec_pieces.sh DATA_DIR STATE_DIR OUT SECONDS
#     DATA_DIR   holds amazon_beauty/dataset.pkl (e.g. gpu_data, carried)
#     STATE_DIR  the parts of the previous piece (e.g. build/diffurec_state, carried); may be empty
#     OUT        where the new parts and the JSON line go ($OUT on the device machine)
#     SECONDS    training seconds for this piece (e.g. 450 in a 600-second call, with WALL_LIMIT=560)
#
# Between calls copy OUT's diffurec.pt.part-* into STATE_DIR. OUT/diffurec.log has a line per
# epoch; the JSON line (OUT/diffurec.json) says "paused": true until the run has finished (early
# stopping or 500 epochs); its metrics are those of the best validation epoch so far.
# DEVICE=cpu EXTRA=--fast tries the mechanics on a CPU; EXTRA passes any other reproduce.py
# options (e.g. --seed 2; a run with other options needs its own, empty STATE_DIR). The recorded
# release-padding runs (LOG.md) used the ablation that research/ablations.py now holds.
#
# A run begun on a CPU continues here: its checkpoint is device-neutral (CPU tensors, the lr
# decay follows the epoch count), so split it into STATE_DIR first, e.g.
#   mkdir -p build/diffurec_state
#   split -b 15000000 -d build/diffurec_cpu.pt build/diffurec_state/diffurec.pt.part-
# (both train in fp32, but their kernels round differently: the resumed run is not bit-identical
# to one that ran on either device alone.)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=$1 STATE_DIR=$2 OUT=$3 SECONDS_LIMIT=$4
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p build "$OUT"
CKPT="${CKPT:-build/diffurec_piece.pt}"    # the joined checkpoint this piece trains on
rm -f "$CKPT"
if compgen -G "$STATE_DIR/diffurec.pt.part-*" > /dev/null; then
  cat "$STATE_DIR"/diffurec.pt.part-* > "$CKPT"
  echo "resuming from $(ls "$STATE_DIR"/diffurec.pt.part-* | wc -l) parts ($(du -h "$CKPT" | cut -f1))"
fi
# WALL_LIMIT (seconds, default none) kills the run if it overruns (e.g. a slow test evaluation):
# the checkpoint written at the pause is kept, and the parts below are still written.
status=0
timeout "${WALL_LIMIT:-0}" "$PY" benchmarks/reproduce.py diffurec --dataset amazon_beauty --data-dir "$DATA_DIR" \
  --device "${DEVICE:-cuda}" ${EXTRA:-} --no-progress --log-every 1 --checkpoint "$CKPT" \
  --time-limit "$SECONDS_LIMIT" | tee "$OUT/diffurec.log" | tail -n 1 | tee "$OUT/diffurec.json" || status=$?
[ -f "$CKPT" ] && split -b 15000000 -d "$CKPT" "$OUT/diffurec.pt.part-"
ls -l "$OUT"
exit "$status"
