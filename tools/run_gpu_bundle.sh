#!/usr/bin/env bash
# Runs the GPU checks of .gpu_bundle (tools/gpu_bundle.sh) on a machine with a
# GPU and no Bazel: the CUDA tests (a missing GPU fails them), then gpu_bench
# with the machine's python3 (PyTorch with CUDA). Logs go to $OUT (the device
# tool brings them back) or ./gpu_logs. Arguments go to gpu_bench.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_logs}
mkdir -p "$out"
[ -f .gpu_bundle/bundle.tar.xz ] || { echo "no .gpu_bundle/bundle.tar.xz: run tools/gpu_bundle.sh first"; exit 2; }
work=$(mktemp -d)
tar -C "$work" -xJf .gpu_bundle/bundle.tar.xz
echo "bundle of $(cat .gpu_bundle/COMMIT 2>/dev/null || echo '?'), working tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi -L || true

# cuBLAS from the machine's CUDA 13 (the toolkit or PyTorch's wheels).
cublas=$(ls /usr/local/cuda/lib64/libcublas.so.13 /usr/local/cuda/targets/x86_64-linux/lib/libcublas.so.13 2>/dev/null | head -n 1)
[ -n "$cublas" ] || cublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib", "libcublas.so.13"))' 2>/dev/null)
echo "cuBLAS: ${cublas:-not found}"
export LD_LIBRARY_PATH="$work/lib:$(dirname "${cublas:-/usr/local/cuda/lib64/x}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export STPAIN_REQUIRE_GPU=1 OMP_NUM_THREADS=4

status=0
for t in device_info_test cuda_parity_test cuda_training_test; do
  echo "== $t"
  "$work/bin/$t" -s > "$out/$t.log" 2>&1
  rc=$?
  tail -n 3 "$out/$t.log"
  grep -E "relative difference [0-9.e-]+" -o "$out/$t.log" | sort -t' ' -k3 -g | tail -n 1 | sed 's/^/  largest: /'
  [ "$rc" -eq 0 ] || status=1
done
echo "== gpu_bench"
"$work/bin/gpu_bench" --python python3 "$@" 2>&1 | tee "$out/gpu_bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit "$status"
