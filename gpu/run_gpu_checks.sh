#!/bin/sh
# On a machine with a GPU: builds the nvcc targets, runs the CUDA tests (they
# fail instead of skipping when no GPU is visible: --config=gpu), then the
# GPU benchmark. Every parity comparison is printed (-s) so the log shows the
# differences. Arguments go to `bazel test`; GPU_BENCH_ARGS to gpu_bench
# (e.g. GPU_BENCH_ARGS="--python /opt/torch-cuda/bin/python3"; "skip" skips it).
set -eu
cd "$(dirname "$0")/.."
nvidia-smi -L || true
bazel test --config=gpu //gpu:device_info_test //gpu:cuda_parity_test //gpu:cuda_training_test \
  //tests:device_option_test --test_output=all --test_arg=-s "$@"
if [ "${GPU_BENCH_ARGS:-}" != "skip" ]; then
  # shellcheck disable=SC2086  # the arguments are meant to split
  bazel run --config=gpu //gpu:gpu_bench -- ${GPU_BENCH_ARGS:-}
fi
