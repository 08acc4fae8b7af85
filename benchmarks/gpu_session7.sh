#!/usr/bin/env bash
# One GPU run for issue 14 (items 2-4): the fast path checked against the normal path on the
# device, training steps/s conlearn vs deepmd-kit, 192-atom latency and the 24,576-atom box.
# Run from the repository root with .whl carried (../shared/bench/device_wheels.sh made it):
#   bash benchmarks/gpu_session7.sh            # results and logs under $OUT
# Each part has its own timeout, so one failure does not eat the budget (at most 8.3 min in all,
# about 6 expected).
# CPU dry run (tiny sizes; deepmd-kit from an existing venv's python):
#   DEVICE=cpu OUT=/tmp/out DPPY=/path/to/venv/bin/python QUICK_ARGS="--copies 2 --repeat 2" BUDGET=10 TSCALE=4 \
#     bash benchmarks/gpu_session7.sh
set -u
DEVICE=${DEVICE:-cuda}
OUT=${OUT:?set OUT}
SITE=${SITE:-/tmp/site}
WORK=${WORK:-/tmp/conlearn-gpu7}
QUICK_ARGS=${QUICK_ARGS:-}
mkdir -p "$OUT" "$WORK"
T0=$(date +%s)
stamp() { echo "== $(( $(date +%s) - T0 )) s: $*" | tee -a "$OUT/timeline.txt"; }

if [ -z "${DPPY:-}" ]; then  # the GPU machine: packages from the wheels, deepmd-kit fixes
  stamp "installing wheels"
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl > "$OUT/pip.log" 2>&1
  sed -i 's/^    load_mpi_library()$/    pass/' "$SITE/deepmd/pt/cxx_op.py"
  [ -f "$SITE/deepmd/lib/libdeepmd_op_pt.so" ] && mv "$SITE/deepmd/lib/libdeepmd_op_pt.so" "$SITE/deepmd/lib/libdeepmd_op_pt.so.off"
  export PYTHONPATH="$SITE:$PWD"
  DPPY=python3
  DPPATH="$SITE"
else
  export PYTHONPATH="$PWD"
  DPPATH=""
fi
# deepmd_ref.py runs <venv>/bin/python and <venv>/bin/dp: a venv of two wrappers
DPV="$WORK/dpvenv"
mkdir -p "$DPV/bin"
printf '#!/bin/sh\nexport PYTHONPATH=%s\nexec %s "$@"\n' "$DPPATH" "$DPPY" > "$DPV/bin/python"
printf '#!/bin/sh\nexport PYTHONPATH=%s\nexec %s -c "import sys; from deepmd.main import main; sys.exit(main())" "$@"\n' \
  "$DPPATH" "$DPPY" > "$DPV/bin/dp"
chmod +x "$DPV/bin/python" "$DPV/bin/dp"
export CONLEARN_DEEPMD_VENV="$DPV" OMP_NUM_THREADS=1
[ "$DEVICE" = cuda ] && export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
PY=python3
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1

bench() {  # bench SECONDS NAME ARGS...
  local t=$1 name=$2; shift 2
  stamp "start $name"
  timeout "$(( t * ${TSCALE:-1} ))" $PY benchmarks/deeppot_water.py --quick --device "$DEVICE" --work "$WORK/$name" $QUICK_ARGS "$@" \
    > "$OUT/$name.log" 2>&1
  echo "rc=$?" >> "$OUT/$name.log"
  for f in "$WORK/$name"/results_*.json; do [ -f "$f" ] && cp "$f" "$OUT/${name}_$(basename "$f")"; done
  stamp "end $name ($(tail -1 "$OUT/$name.log"))"
}

bench 40 check --parts check --skip-deepmd
bench 160 train --parts train --budget ${BUDGET:-15}
# the training run's conlearn model and deepmd-kit checkpoint serve the next parts
CK=$(ls -t "$WORK"/train/deepmd/main/model.ckpt-*.pt 2>/dev/null | head -1)
mkdir -p "$WORK/small/deepmd/main" "$WORK/large/deepmd/main"
if [ -n "$CK" ]; then
  for p in small large; do cp "$CK" "$WORK/$p/deepmd/main/"; done
fi
cp "$WORK/train/conlearn/out/model.pt" "$OUT/conlearn_gpu_trained_model.pt" 2>/dev/null
cp "$WORK/train/conlearn/out/lcurve.out" "$OUT/conlearn_lcurve.out" 2>/dev/null
cp "$WORK/train/deepmd/main/lcurve.out" "$OUT/deepmd_lcurve.out" 2>/dev/null
bench 100 small --parts small
bench 130 large --parts large
bench 45 profile --parts profile --skip-deepmd
# spare time (up to 8.5 min in all): a longer conlearn training, the model for the CPU NVE drift
LEFT=$(( ${TOTAL_S:-510} - $(date +%s) + T0 ))
if [ "$LEFT" -gt 70 ]; then
  bench $(( LEFT / ${TSCALE:-1} )) model --parts train --skip-deepmd --budget $(( LEFT - 40 ))
  cp "$WORK/model/conlearn/out/model.pt" "$OUT/conlearn_gpu_model_long.pt" 2>/dev/null
  cp "$WORK/model/conlearn/out/lcurve.out" "$OUT/conlearn_long_lcurve.out" 2>/dev/null
fi
stamp "done"
