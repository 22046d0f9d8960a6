#!/usr/bin/env bash
# Packs the GPU checks for the device tool's machines, which have nvcc 13.0,
# the CUDA libraries and PyTorch with CUDA but no Bazel and none of this
# project's Debian libraries: the CUDA tests and gpu_bench are built here
# (--config=gpu_bundle: AVX2 code, not this CPU's), with the shared libraries
# they need that such a machine may lack (OpenBLAS, libgomp, libgfortran,
# Catch2's main, cudart), into .gpu_bundle/ (git-ignored, ~20 MB).
# Then, with the device tool, from the repository root:
#   run(command="tools/run_gpu_bundle.sh", carry=[".gpu_bundle"], timeout_s=480)
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(//gpu:device_info_test //gpu:cuda_parity_test //gpu:cuda_training_test //gpu:gpu_bench)
bazel build --config=gpu_bundle "${targets[@]}"
bin=$(bazel info --config=gpu_bundle bazel-bin 2>/dev/null)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for t in "${targets[@]}"; do cp "$bin/gpu/${t#//gpu:}" "$stage/bin/"; done
# Every library the binaries load (as built: Catch2's main through their
# runpath) except the C library's own, the C++ runtime (newer there) and the
# CUDA driver; cuBLAS is too big to carry (500 MB): the machine's CUDA 13 has it.
for t in "${targets[@]}"; do
  ldd "$bin/gpu/${t#//gpu:}" | awk '/=> \// {print $1, $3}'
done | sort -u | while read -r name path; do
  case "$name" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libstdc++.so*|libgcc_s.so*|libcuda.so*|libcublas*) ;;
    *) cp -L "$path" "$stage/lib/$name" ;;
  esac
done

mkdir -p .gpu_bundle
tar -C "$stage" -cJf .gpu_bundle/bundle.tar.xz bin lib
git rev-parse --short HEAD > .gpu_bundle/COMMIT
echo "$(du -h .gpu_bundle/bundle.tar.xz | cut -f1) .gpu_bundle/bundle.tar.xz of $(cat .gpu_bundle/COMMIT):"
tar -tJvf .gpu_bundle/bundle.tar.xz | awk '{print "  " $3, $6}'
