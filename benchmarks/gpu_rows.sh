#!/usr/bin/env bash
# The GPU rows of docs/performance.md, as one short script for a lent accelerator (docs/performance.md, "GPU").
# Expects: python3 with torch (CUDA); the wheels of what that machine lacks in .whl/ (ART, torchattacks,
# jsonschema); Debian's Fashion-MNIST IDX files in .fmnist/. Writes everything under ${OUT:-/tmp/gpu-out}.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 UNLEARN_AUDIT_NO_PROGRESS=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="$PWD:/tmp/site"
if [ -d .fmnist ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  mkdir -p /usr/share/datasets/fashion-mnist && cp .fmnist/*.gz /usr/share/datasets/fashion-mnist/
fi
{ nvidia-smi -L; python3 -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0), 'python', platform.python_version())"; nproc; } | tee "$OUT/machine.txt"

# 1. The demo on the GPU: every verdict as expected (exit 0), and its wall time.
start=$SECONDS
timeout 240 python3 -m unlearn_audit demo --device cuda --out /tmp/demo-gpu > "$OUT/demo.log" 2>&1
echo "demo exit $? in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
cp /tmp/demo-gpu/summary.json "$OUT/demo-summary.json" 2>/dev/null

# 2. The same check on cuda and on cpu: verdicts and R (GPU kernels round differently; report, do not assert).
F=reference_models/fmnist-small
for dev in cuda cpu; do
  timeout 180 python3 -m unlearn_audit check $F/gd.safetensors --forget $F/forget.npz --reference $F/retrain-1.safetensors \
    --reference $F/retrain-2.safetensors --reference $F/retrain-3.safetensors --taus 0:8/255:4 --draws 20 \
    --device $dev --no-cache --json "$OUT/check-$dev.json" > "$OUT/check-$dev.log" 2>&1
  echo "check --device $dev exit $?" | tee -a "$OUT/summary.txt"
done
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
out = sys.argv[1]
docs = {d: json.load(open(f"{out}/check-{d}.json")) for d in ("cuda", "cpu")}
for name in docs["cpu"]["probes"]:
    r = {d: docs[d]["probes"][name]["pooled"]["value"] for d in docs}
    print(f"{name}: R cuda {r['cuda']:.4f} cpu {r['cpu']:.4f}; verdict cuda {docs['cuda']['probes'][name]['verdict']['kind']} cpu {docs['cpu']['probes'][name]['verdict']['kind']}")
print("overall:", {d: docs[d]["verdict"]["kind"] for d in docs}, "precision:", {d: docs[d]["precision"]["used"] for d in docs},
      "engine seconds:", {d: docs[d]["provenance"]["time"]["seconds"] for d in docs})
PY

# 3. The whole-check benchmark on the GPU: check (cold and warm cache) against torchattacks and ART loops on cuda.
timeout 330 python3 benchmarks/check.py --device cuda --settings a,b,c --no-profile --no-remediate \
  --out "$OUT/performance-gpu.md" > "$OUT/bench.log" 2>&1
echo "benchmark exit $?" | tee -a "$OUT/summary.txt"
ls "$OUT"
