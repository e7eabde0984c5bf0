#!/usr/bin/env bash
# The ONE GPU training run of the shipped detector (see scripts/DEVICE_CALL.md for the call).
#
# On the GPU machine: installs the carried wheels (.whl/) into /tmp/site, renders the synthetic
# chips and the fair-drone pseudo pairs (from the carried .device/fairdrone/) with 16 processes,
# trains yolo11n (6 channels, 512 px) under a hard time cap, validates on each validation set and
# copies to $OUT: the weights, the model card (with metrics), results.csv and the log.
#
# Another training config: TRAIN_CONFIG=models/configs/gpu_finetune.yaml (the second stage of the
# shipped weights); TRAIN_LIMIT_S caps training, CALL_LIMIT_S the whole call.
#
# Locally (a dry run that proves the GPU run works; tiny sizes, CPU, the .venv, no pip):
#   DEVICE_TINY=1 OUT=/tmp/x bash scripts/device_train.sh
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
ls .device/fairdrone/*.json >/dev/null 2>&1 || { echo "missing .device/fairdrone (carry it)"; exit 1; }

stamp "training"
export BW_REPRODUCE="${BW_REPRODUCE:-bash scripts/device_train.sh on one NVIDIA H200 (carry .whl and .device/fairdrone; see scripts/DEVICE_CALL.md)}"
CONFIG=${TRAIN_CONFIG:-models/configs/gpu.yaml}
timeout --signal=TERM "${TRAIN_LIMIT_S:-550}" $PY -m pipelines.cli -v train --config "$CONFIG" --out "$RUN" "${SETS[@]}"
RC=$?
stamp "train exited with $RC"
NAME=$($PY -c "import sys, yaml;print(yaml.safe_load(open(sys.argv[1]))['name'])" "$CONFIG")
cp "$RUN/$NAME.pt" "$RUN/$NAME.yaml" "$OUT/" 2>/dev/null || echo "no weights/card to copy"
cp "$RUN/train/results.csv" "$OUT/results.csv" 2>/dev/null || true
cp "$RUN/train/args.yaml" "$OUT/args.yaml" 2>/dev/null || true
if [ ! -f "$OUT/$NAME.pt" ]; then  # cut short: keep what training saved
  for w in best last; do
    [ -f "$RUN/train/weights/$w.pt" ] && cp "$RUN/train/weights/$w.pt" "$OUT/$w.pt" && break
  done
fi
# GPU inference benchmark on the fresh weights, only with the time left (the call ends at 600 s)
LEFT=$(( ${CALL_LIMIT_S:-585} - ($(date +%s) - T0) ))
if [ -z "${DEVICE_TINY:-}" ] && [ -f "$OUT/$NAME.pt" ] && [ "$LEFT" -gt 45 ]; then
  stamp "gpu inference benchmark (${LEFT} s left)"
  timeout $(( LEFT - 5 )) $PY benchmarks/gpu_inference.py --weights "$OUT/$NAME.pt" --tiles 256 \
    || echo "gpu benchmark did not finish"
fi
stamp "done; outputs:"
ls -la "$OUT"
exit $RC
