#!/usr/bin/env bash
# Every GPU check of docs/benchmarks.md in one run, each under its own time limit, printing every
# ratio: the `gpu` tests, DB-MTL's step against equal weighting (default 2D model and the 3D
# benchmark MPNN), molmtl's epoch against the published PyG DataLoader loop, and prediction
# throughput. On one H200 it takes under 10 minutes.
#
#   bash scripts/gpu_check.sh                 # on a CUDA machine
#   bash scripts/gpu_check.sh --device cpu    # the same code paths at small sizes (~5 minutes)
#
# Data: $MOLMTL_DATA, else (GPU) ../shared/data/qm9 beside the checkout, else the 1,200-molecule
# test fixture (enough for the step and epoch ratios; what --device cpu uses). Needs the venv of scripts/setup.sh (or $PYTHON).
set -uo pipefail
cd "$(dirname "$0")/.."
device=cuda
if [ "${1:-}" = "--device" ]; then device="${2:?--device needs a value}"; fi
python="${PYTHON:-.venv/bin/python}"
data="${MOLMTL_DATA:-}"
if [ -z "$data" ] && [ "$device" != cpu ] && [ -d ../shared/data/qm9 ]; then
    data=../shared/data/qm9
fi
if [ -z "$data" ]; then data=tests/fixtures/qm9; fi
if [ "$device" = cpu ]; then  # one thread, small sizes: checks that every path runs
    repeats=2; batch=8; methods=(ew dbmtl); molecules=300; molecules_3d=60; epochs=1
    predict_n=1000
    threads=(--threads 1); limit_scale=3
else
    repeats=30; batch=120; methods=(ew dbmtl pcgrad nashmtl); molecules=20000; molecules_3d=20000
    epochs=3
    predict_n=100000; threads=(); limit_scale=1
fi
if [ "$data" = tests/fixtures/qm9 ] && [ "$molecules" -gt 1000 ]; then
    molecules=1000; molecules_3d=1000
fi
failed=0

check() {  # check NAME SECONDS COMMAND...: run COMMAND under a time limit, report its outcome
    local name="$1" limit=$(($2 * limit_scale))
    shift 2
    echo "=== $name (limit ${limit}s)"
    local started=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "=== $name: rc $rc in $((SECONDS - started)) s"
    if [ "$rc" -ne 0 ]; then failed=$((failed + 1)); fi
}

echo "device=$device data=$data molecules=$molecules"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
if [ "$device" != cpu ]; then
    check "pytest -m gpu" 120 "$python" -m pytest -q -m gpu -p no:cacheprovider
fi
for model in qm9-2d qm9-mpnn-complete; do
    check "balancer step, $model (target: dbmtl within 1.5x ew)" 90 \
        "$python" scripts/bench_balancers.py --device "$device" --model "$model" \
        --repeats "$repeats" --batch-size "$batch" --methods "${methods[@]}" "${threads[@]}"
done
for balancer in ew dbmtl; do
    check "epoch vs published loop, gine $balancer (target: >= 3x on GPU)" 120 \
        "$python" scripts/bench_train.py --device "$device" --data "$data" \
        --n-molecules "$molecules" --encoder gine --balancer "$balancer" --epochs "$epochs"
done
check "epoch vs published loop, 3D mpnn dbmtl" 150 \
    "$python" scripts/bench_train.py --device "$device" --data "$data" \
    --n-molecules "$molecules_3d" --encoder mpnn --featurizer 3d --balancer dbmtl --epochs "$epochs"
csv="$data"
if [ -d "$data" ]; then csv="$data/qm9.csv.xz"; fi
check "prediction throughput (shipped model)" 120 \
    "$python" scripts/bench_predict.py --device "$device" --data "$csv" --n "$predict_n" \
    --n-naive 200 --repeats 2 --stream-rows "" --model molmtl/pretrained/qm9-2d-dbmtl \
    "${threads[@]}"
echo "=== gpu_check: $failed check(s) failed"
exit "$failed"
