#!/usr/bin/env bash
# One command for a GPU machine (at most 9 minutes on one H200 with the defaults): the GPU tests,
# CSDI on AQI-36 and PhysioNet 10% at the paper configuration with 50-step ancestral and few-step
# sampling, and training / sampling throughput against PyPOTS's CSDI. See benchmarks/gpu/README.md.
#
#   benchmarks/gpu/run.sh [reproduce.py options, e.g. --aqi-epochs 60 --stages env aqi36]
#
# Environment:
#   OUT            where the tarball of everything, summary.json and run.log go (default benchmarks/gpu/out)
#   TSDIFF_DATA    the data folder (default: .devdata beside this checkout, then ../shared/data)
#   TSDIFF_WHEELS  a folder of wheels to install first into /tmp/site (machines without a network)
#   PYTHON         the interpreter (default python3)
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
OUT_DIR="${OUT:-benchmarks/gpu/out}"
WORK="${GPU_WORK:-$(mktemp -d /tmp/tsdiff_gpu.XXXXXX)}"
if [ -n "${TSDIFF_WHEELS:-}" ]; then
  if [ ! -f /tmp/site/.tsdiff-wheels ]; then  # once per machine
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$TSDIFF_WHEELS"/*.whl || { echo "installing the wheels of $TSDIFF_WHEELS failed" >&2; exit 1; }
    touch /tmp/site/.tsdiff-wheels
  fi
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "${TSDIFF_DATA:-}" ]; then
  if [ -d .devdata ]; then TSDIFF_DATA="$PWD/.devdata"; else TSDIFF_DATA="$(cd .. && pwd)/shared/data"; fi
fi
export TSDIFF_DATA
mkdir -p "$OUT_DIR"
"$PYTHON" benchmarks/gpu/reproduce.py --out "$WORK" --archive "$OUT_DIR/gpu_run.tar.gz" "$@" 2>&1 | tee "$OUT_DIR/run.log"
code=${PIPESTATUS[0]}
cp "$WORK/summary.json" "$OUT_DIR/summary.json" 2>/dev/null
exit "$code"
