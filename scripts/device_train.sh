#!/usr/bin/env bash
# The GPU training runs of the detector (see scripts/DEVICE_CALL.md for the calls).
#
# On the GPU machine: installs the carried wheels (.whl/) into /tmp/site, renders the synthetic
# chips and the fair-drone pseudo pairs (from the carried .device/fairdrone/) with 16 processes,
# trains each config in turn under a hard time cap, validates on each validation set and copies to
# $OUT: per run the weights, the model card (with metrics), <name>.results.csv, and the log.
#
# TRAIN_CONFIG=models/configs/gpu_finetune.yaml trains another config; TRAIN_CONFIGS="a.yaml b.yaml"
# several in one call, on one chip store (the size comparison: gpu_seg_n/s/m.yaml);
# TRAIN_LIMIT_S caps each training, CALL_LIMIT_S the whole call.
#
# Locally (a dry run that proves the GPU run works; tiny sizes, CPU, the .venv, no pip):
#   DEVICE_TINY=1 OUT=/tmp/x bash scripts/device_train.sh
#   DEVICE_TINY=1 OUT=/tmp/x TRAIN_CONFIGS="models/configs/gpu_seg_n.yaml models/configs/gpu_seg_s.yaml" bash scripts/device_train.sh
set -uo pipefail
OUT=${OUT:-/tmp/buildwatch-device-out}
RUN=${RUN:-/tmp/bw-run}
mkdir -p "$OUT"
rm -rf "$RUN"
LOG="$OUT/train.log"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0
export YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-/tmp/bw-yolo-config}
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

STUB=/tmp/bw-stub
if [ -n "${DEVICE_TINY:-}" ]; then
  PY=${PY:-.venv/bin/python}
  SITE=""
  SETS=(--set device=cpu --set imgsz=128 --set batch=8 --set workers=0 --set epochs=1
        --set time_hours=0.01 --set cache=false --set data.workers=2
        --set data.synthetic.n_train=16 --set data.synthetic.n_val=4
        --set data.fairdrone.n_train=8 --set data.fairdrone.n_val=4)
  FORCE_STUB=1   # prove the polars stand-in works here too
  # a dry run on a busy CPU is slow; the GPU call's 600 s limit is not what it proves
  TRAIN_LIMIT_S=${TRAIN_LIMIT_S:-1800}
  CALL_LIMIT_S=${CALL_LIMIT_S:-3600}
else
  PY=python3
  SITE=/tmp/site
  SETS=()
  FORCE_STUB=""
  stamp "installing carried wheels"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl || { echo "wheel install failed"; exit 1; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
export PYTHONPATH="${SITE:+$SITE:}$PWD"
if [ -n "$FORCE_STUB" ] || ! $PY -c "import polars" 2>/dev/null; then
  mkdir -p "$STUB/polars" && cp scripts/device/polars_stub.py "$STUB/polars/__init__.py"
  export PYTHONPATH="$STUB:$PYTHONPATH"
  stamp "using the polars stand-in"
fi
$PY - <<'PYEOF' || { echo "import check failed"; exit 1; }
import os, sys, torch
from models.runtime import configure_ultralytics
configure_ultralytics()
import ultralytics, pydantic, cv2, numpy
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      "ultralytics", ultralytics.__version__, "pydantic", pydantic.__version__, "cv2", cv2.__version__,
      "cpus", os.cpu_count())
PYEOF
FAIRDRONE=${FAIRDRONE:-.device/fairdrone}  # prepared fair-drone mosaics (carried)
ls "$FAIRDRONE"/*.json >/dev/null 2>&1 || { echo "missing $FAIRDRONE (carry it)"; exit 1; }

stamp "training"
export BW_REPRODUCE="${BW_REPRODUCE:-bash scripts/device_train.sh on one NVIDIA H200 (carry .whl and .device/fairdrone; see scripts/DEVICE_CALL.md)}"
# One config (TRAIN_CONFIG) or several in turn (TRAIN_CONFIGS="a.yaml b.yaml"; configs that share
# data.chips_dir build their chips once). Each run is killed at TRAIN_LIMIT_S or when the call's
# time (CALL_LIMIT_S) would run out, whichever comes first.
read -r -a CONFIGS <<< "${TRAIN_CONFIGS:-${TRAIN_CONFIG:-models/configs/gpu.yaml}}"
RC=0
LAST_WEIGHTS=""
for CONFIG in "${CONFIGS[@]}"; do
  LEFT=$(( ${CALL_LIMIT_S:-585} - ($(date +%s) - T0) - 15 ))
  LIMIT=${TRAIN_LIMIT_S:-550}
  [ "$LEFT" -lt "$LIMIT" ] && LIMIT=$LEFT
  if [ "$LIMIT" -lt 30 ]; then stamp "no time left for $CONFIG; skipped"; RC=1; continue; fi
  NAME=$($PY -c "import sys, yaml;print(yaml.safe_load(open(sys.argv[1]))['name'])" "$CONFIG")
  RUN_C="$RUN/$NAME"
  stamp "training $CONFIG (at most ${LIMIT} s)"
  timeout --signal=TERM "$LIMIT" $PY -m pipelines.cli -v train --config "$CONFIG" --out "$RUN_C" \
    --set "data.chips_dir=$RUN/chips" --set "data.fairdrone.prepared=$FAIRDRONE" "${SETS[@]}"
  RC_C=$?
  stamp "train $NAME exited with $RC_C"
  [ "$RC_C" -ne 0 ] && RC=$RC_C
  cp "$RUN_C/$NAME.pt" "$RUN_C/$NAME.yaml" "$OUT/" 2>/dev/null || echo "no weights/card to copy for $NAME"
  cp "$RUN_C/train/results.csv" "$OUT/$NAME.results.csv" 2>/dev/null || true
  cp "$RUN_C/train/args.yaml" "$OUT/$NAME.args.yaml" 2>/dev/null || true
  if [ -f "$OUT/$NAME.pt" ]; then
    LAST_WEIGHTS="$OUT/$NAME.pt"
  else  # cut short: keep what training saved
    for w in best last; do
      [ -f "$RUN_C/train/weights/$w.pt" ] && cp "$RUN_C/train/weights/$w.pt" "$OUT/$NAME.$w.pt" && break
    done
  fi
done
# GPU inference benchmark on the last fresh weights, only with the time left (the call ends at 600 s)
LEFT=$(( ${CALL_LIMIT_S:-585} - ($(date +%s) - T0) ))
if [ -z "${DEVICE_TINY:-}" ] && [ -n "$LAST_WEIGHTS" ] && [ "$LEFT" -gt 45 ]; then
  stamp "gpu inference benchmark (${LEFT} s left)"
  timeout $(( LEFT - 5 )) $PY benchmarks/gpu_inference.py --weights "$LAST_WEIGHTS" --tiles 256 \
    || echo "gpu benchmark did not finish"
fi
# only 64 MiB travel back per call: say so here rather than lose the outputs there
SIZE_MB=$(du -sm "$OUT" | cut -f1)
[ "$SIZE_MB" -gt 60 ] && echo "WARNING: $OUT holds ${SIZE_MB} MB; more than a call carries back (64 MiB)"
stamp "done; outputs:"
ls -la "$OUT"
exit $RC
