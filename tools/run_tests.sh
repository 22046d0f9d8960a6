#!/usr/bin/env bash
# Builds and runs every test, then counts Catch2 test cases over all test
# binaries. The last line is "N passed, N failed"; the exit status is non-zero
# on any failure. Extra arguments go to `bazel test` (e.g. --config=asan).
#
# Where nvcc is installed (/usr/local/cuda) the CUDA targets are compiled too
# (--config=cuda, their own output tree) and the cuda-tagged tests run: without
# a GPU they check the error a user gets and skip the GPU work. A failed nvcc
# build counts as one failure. STPAIN_SKIP_CUDA=1 leaves this out.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
# Adds the Catch2 results of the test targets $@ (from bazel-testlogs, the
# tree of the last `bazel test`).
count() {
  local t log line n p f
  for t in "$@"; do
    log="bazel-testlogs/$(echo "${t#//}" | tr ':' '/')/test.log"
    if [ ! -f "$log" ]; then
      echo "no test log for $t (not built?)"
      failed=$((failed + 1))
      continue
    fi
    # Catch2 v2 ends with "All tests passed (A assertions in N test cases)"
    # or "test cases: N | P passed | F failed".
    if line=$(grep -E "^All tests passed \(" "$log" | tail -n 1) && [ -n "$line" ]; then
      n=$(echo "$line" | sed -E 's/.* in ([0-9]+) test cases?\)/\1/')
      passed=$((passed + n))
    elif line=$(grep -E "^test cases:" "$log" | tail -n 1) && [ -n "$line" ]; then
      p=$(echo "$line" | sed -nE 's/.*\| *([0-9]+) passed.*/\1/p')
      f=$(echo "$line" | sed -nE 's/.*\| *([0-9]+) failed.*/\1/p')
      passed=$((passed + ${p:-0}))
      failed=$((failed + ${f:-0}))
    else
      echo "no Catch2 summary in $log (crashed or timed out): counted as one failure"
      failed=$((failed + 1))
    fi
  done
}

bazel test //... "$@"
status=$?
# CUDA tests need --config=cuda; manual ones are not run by `bazel test //...`.
count $(bazel query 'tests(//...) except attr(tags, "cuda|manual", tests(//...))' 2>/dev/null)

if [ -x /usr/local/cuda/bin/nvcc ] && [ "${STPAIN_SKIP_CUDA:-}" != 1 ]; then
  echo "CUDA: nvcc builds of every .cu file and of a program with --device cuda; the cuda-tagged tests"
  cuda_tests=$(bazel query 'attr(tags, "cuda", tests(//...))' 2>/dev/null)
  nvcc_archives=$(bazel query 'kind("_nvcc_archive", //...)' 2>/dev/null)  # every .cu file
  bazel test --config=cuda $cuda_tests $nvcc_archives //examples:train_stgcn //gpu:gpu_bench "$@"
  cuda_status=$?
  before=$failed
  count $cuda_tests
  if [ "$cuda_status" -ne 0 ] && [ "$failed" -eq "$before" ]; then
    echo "the --config=cuda build failed: counted as one failure"
    failed=$((failed + 1))
  fi
fi

if [ "$failed" -gt 0 ] && [ "$status" -eq 0 ]; then status=1; fi
echo "$passed passed, $failed failed"
exit "$status"
