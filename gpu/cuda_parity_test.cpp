// The CUDA backend against the cpu backend: every case of gpu/parity_cases.hpp
// run with Backend = stpain::cuda (gpu/cuda_parity.cu, nvcc) matches the cpu
// run within 1e-4 relative. Runs only in --config=cuda builds; without a GPU
// it checks the error a user gets and skips, unless STPAIN_REQUIRE_GPU=1
// (--config=gpu), where a missing GPU fails.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "gpu/cuda_parity.hpp"
#include "gpu/parity_compare.hpp"

using namespace stpain;

namespace {
bool gpu_required() {
  const char* require = std::getenv("STPAIN_REQUIRE_GPU");
  return require && std::string(require) == "1";
}
}  // namespace

TEST_CASE("the cuda backend matches the cpu backend on every parity case") {
  std::string why;
  if (cuda_backend::device_count(&why) == 0) {
    if (gpu_required()) FAIL("no CUDA device: " << why);
    // What a user gets instead of a crash: an stpain::Error naming the problem.
    const std::string error = cuda_backend::allocation_error();
    INFO("error: " << error);
    CHECK(error.find("the CUDA backend was requested but no CUDA device") != std::string::npos);
    CHECK_THROWS_AS(cuda_backend::run_parity_case(0), Error);
    WARN("skipped the parity cases: " << why);
    return;
  }
  const auto& cases = parity::cases();
  for (int id = 0; id < static_cast<int>(cases.size()); ++id) {
    const parity::CaseOutput expected = parity::run_case<cpu>(id);
    const parity::CaseOutput actual = cuda_backend::run_parity_case(id);
    for (const auto& d : parity::compare(cases[static_cast<size_t>(id)], actual, expected)) {
      INFO(d.what << ": relative difference " << d.relative << ", max |cpu| " << d.scale);
      CHECK(d.same_shape);
      CHECK(d.scale > 0);
      CHECK(d.relative <= 1e-4);
    }
  }
}
