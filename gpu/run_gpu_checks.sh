#!/bin/sh
# On a machine with a GPU: builds the nvcc targets and runs the CUDA tests,
# which fail (instead of skipping) when no GPU is visible (--config=gpu).
# Prints every parity comparison (-s) so the log shows the differences.
set -eu
cd "$(dirname "$0")/.."
nvidia-smi -L || true
bazel test --config=gpu //gpu:device_info_test //gpu:cuda_parity_test \
  --test_output=all --test_arg=-s "$@"
