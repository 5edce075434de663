#!/usr/bin/env bash
# The GPU checks, in one call on a GPU machine (see docs/hardware.md, docs/memory.md): unpacks
# the bundle from scripts/make-gpu-bundle.sh, then
#   0. the CUDA backend (cuda-backend.log): the backend-ops harness on cuda:0 against the CPU,
#      the seed's model trained with --device cuda (5 epochs, batch 64) while nvidia-smi and
#      accel smi look at the process, staged batches next to resident ones, and bench/gpu_train_bench.py (accel against PyTorch eager,
#      torch.compile reduce-overhead and JAX jit at batch 64, 512, 4096, with the GEMM floor),
#   1. accel smi / accel info next to nvidia-smi (the same --query-gpu fields side by side),
#   2. the test suites (the CudaAllocator tests run for real there),
#   3. the CUDA allocator benchmark next to PyTorch's caching allocator, and the seed model's
#      memory_allocated/memory_reserved in PyTorch,
#   4. the runtime service on the real GPU: a gpu runtime, nvidia-smi and accel info inside it,
#      its resources, delete,
#   5. XLA through JAX's CUDA PJRT plugin, where the machine's Python has one (xla.log).
# Writes logs to $OUT (the device tool brings them back) or /tmp/gpu-check.
#
#   device run: bash scripts/gpu-check.sh        (carry: .gpu-bundle)
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tar -xJf .gpu-bundle/bundle.tar.xz
export LD_LIBRARY_PATH="$PWD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The test binaries name the source and build folders of the machine that built them.
if [ "$PWD" != /work/main ] && [ ! -e /work/main ]; then mkdir -p /work && ln -s "$PWD" /work/main; fi
A=$PWD/build/accel
DATA=$PWD/data/fashion-mnist  # from the bundle
# cuBLASLt: the toolkit's, else the one in PyTorch's wheel (nvidia-cublas).
if [ ! -e /usr/local/cuda/lib64/libcublasLt.so.13 ] && [ -z "${ACCEL_CUBLASLT_LIBRARY:-}" ]; then
  lt=$(python3 -c "import glob, os, nvidia.cublas as c; print((glob.glob(os.path.join(list(c.__path__)[0], 'lib', 'libcublasLt.so.*')) or [''])[0])" 2>/dev/null)
  [ -n "$lt" ] && export ACCEL_CUBLASLT_LIBRARY=$lt
fi
step() { printf '\n===== %s\n' "$*"; }
{
  step "CUDA backend: the backend-ops harness and the device math on cuda:0"
  timeout 120 build/tests/accel_tests --gtest_filter='BackendOps*:GemmRowSums*:GemmReluMask*:TakeRows*:DeviceBatches*:StagedBatches*:CudaDeviceMath*:Module*Cuda*:TensorDevice*'
  step "CUDA backend: accel train --device cuda --epochs 5 --batch-size 64, with nvidia-smi and accel smi during it"
  timeout 240 "$A" train --device cuda --data "$DATA" --epochs 5 --batch-size 64 --json >"$OUT/train-cuda.log" 2>&1 &
  trainer=$!
  sleep 8
  nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
  "$A" smi | tail -6
  wait $trainer
  echo "accel train exit status $?"
  cat "$OUT/train-cuda.log"
  step "CUDA backend: --device-data staged (pinned buffers, the copy stream): the same losses as resident, and its speed"
  timeout 90 "$A" train --device cuda --data "$DATA" --epochs 2 --batch-size 64 --device-data staged | tail -5
  timeout 90 "$A" train --device cuda --data "$DATA" --epochs 2 --batch-size 64 --device-data resident | tail -5
  step "CUDA backend: --amp bf16 and --amp fp16, 2 epochs at batch 512"
  timeout 90 "$A" train --device cuda --data "$DATA" --epochs 2 --batch-size 512 --amp bf16 | tail -4
  timeout 90 "$A" train --device cuda --data "$DATA" --epochs 2 --batch-size 512 --amp fp16 | tail -4
  step "CUDA backend: speed against PyTorch eager, torch.compile and JAX (bench/gpu_train_bench.py)"
  timeout 300 python3 bench/gpu_train_bench.py --accel "$A" --data "$DATA" --epochs 3
} 2>&1 | tee "$OUT/cuda-backend.log"
{
  step "machine"
  nvidia-smi -L; uname -r; nproc
  step "nvidia-smi"
  nvidia-smi
  step "accel smi"
  "$A" smi
  fields=name,pci.bus_id,driver_version,memory.total,memory.used,memory.free,memory.reserved,utilization.gpu,temperature.gpu,power.draw,power.limit,clocks.sm,clocks.mem,clocks.max.sm,compute_cap
  step "nvidia-smi --query-gpu=$fields --format=csv"
  nvidia-smi --query-gpu=$fields --format=csv
  step "accel smi --query-gpu=$fields --format=csv"
  "$A" smi --query-gpu=$fields --format=csv
  step "a PyTorch process holding 1 GiB: nvidia-smi's and accel smi's process lists"
  python3 -c "import torch, time; x = torch.empty(2**30, dtype=torch.uint8, device='cuda'); time.sleep(8)" &
  holder=$!
  sleep 5
  nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
  "$A" smi --query-gpu=memory.used,memory.free --format=csv
  nvidia-smi --query-gpu=memory.used,memory.free --format=csv
  "$A" smi | tail -8
  wait $holder
  step "accel info"
  "$A" info
  "$A" info --json >"$OUT/info.json"
} 2>&1 | tee "$OUT/hardware.log"

{
  step "CUDA allocator tests"
  timeout 120 build/tests/accel_tests --gtest_filter='CudaAllocator*:DeviceMemoryApi*:TensorDevice*:Hw*:*Smi*:*Info*'
  step "whole accel_tests (data-set tests fail here: no Fashion-MNIST on this machine)"
  timeout 200 build/tests/accel_tests --gtest_brief=1 2>&1 | tail -40
  step "accel_service_tests"
  timeout 200 build/tests/accel_service_tests --gtest_brief=1 2>&1 | tail -30
} >"$OUT/tests.log" 2>&1
{
  # XLA on the GPU through JAX's CUDA PJRT plugin (docs/xla.md), when this machine's Python has
  # it: the plugin wheel (jax-cuda13-pjrt, 135 MB) is larger than what reaches this machine.
  step "XLA through PJRT: JAX's CUDA plugin"
  if ACCEL_PJRT_PLUGIN=cuda "$A" info --xla | grep -E 'XLA|PJRT'; then
    if [ -f "$DATA/train-images-idx3-ubyte.gz" ]; then
      ACCEL_PJRT_PLUGIN=cuda timeout 300 "$A" train --device xla --data "$DATA" --epochs 2 --batch-size 512
      timeout 300 "$A" train --device cuda --data "$DATA" --epochs 2 --batch-size 512
    else
      echo "no Fashion-MNIST on this machine: accel train cannot run here"
    fi
  fi
} >"$OUT/xla.log" 2>&1
grep -E '^\[  (PASSED|FAILED|SKIPPED) |tests? ran|^=====' "$OUT/tests.log" | head -60

{
  step "CUDA allocator: accel vs PyTorch"
  timeout 150 python3 bench/cuda_alloc_vs_torch.py build/allocator_bench 300
  step "host rows"
  timeout 60 build/allocator_bench --rounds 20000
  step "the seed model's parameters on CUDA in PyTorch"
  python3 - <<'PY'
import torch
model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)).cuda()
print("torch", torch.__version__, "memory_allocated", torch.cuda.memory_allocated(),
      "memory_reserved", torch.cuda.memory_reserved())
PY
} 2>&1 | tee "$OUT/memory.log"

{
  step "runtime service on the real GPU"
  data=$(mktemp -d)
  chmod 755 "$data"  # runtimes run as nobody, who must reach their folders
  echo '{}' >"$data/service.json"
  token=$("$A" admin user add gpuuser --tier enterprise --data-dir "$data/d" 2>/dev/null)
  "$A" serve --config "$data/service.json" --data-dir "$data/d" --listen 127.0.0.1:8470 >"$OUT/serve.log" 2>&1 &
  serve=$!
  export ACCEL_TOKEN=$token ACCEL_SERVER=http://127.0.0.1:8470
  for _ in $(seq 50); do "$A" runtime ls >/dev/null 2>&1 && break; sleep 0.1; done
  python3 -c "import json,urllib.request as u; r=u.Request('$ACCEL_SERVER/v1/runtime-types', headers={'Authorization': 'Bearer $token'}); print(json.dumps([t for t in json.load(u.urlopen(r))['types'] if t['total']], indent=1))"
  id=$("$A" runtime create --type gpu 2>&1)
  echo "$id"
  id=$(echo "$id" | grep -oE 'rt-[A-Za-z0-9]+' | head -1)
  "$A" runtime show "$id"
  timeout 60 "$A" run "$id" -- nvidia-smi -L
  timeout 60 "$A" run "$id" -- sh -c 'echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES ACCEL_DEVICE=$ACCEL_DEVICE; id -un'
  timeout 60 "$A" run "$id" -- "$A" info
  # The tier's limits as the job sees them (no address-space cap on a real GPU).
  timeout 60 "$A" run "$id" -- sh -c "grep -E '^Max (address space|open files|file size)' /proc/self/limits; cut -d' ' -f19 /proc/self/stat"
  "$A" runtime resources "$id"
  "$A" runtime delete "$id"
  "$A" runtime events "$id"
  curl -s 127.0.0.1:8470/metrics 2>/dev/null | grep accel_accelerators || true
  kill "$serve"; wait "$serve"
} 2>&1 | tee "$OUT/service.log"
