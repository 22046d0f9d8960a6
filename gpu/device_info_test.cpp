// Runs only in --config=cuda builds. Without a GPU it skips (and says so),
// unless STPAIN_REQUIRE_GPU=1 (set by --config=gpu), where a missing GPU fails.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "gpu/device_info.hpp"

TEST_CASE("the CUDA runtime and thrust work on the device") {
  std::string why;
  if (stpain::cuda_runtime::device_count(&why) == 0) {
    const char* require = std::getenv("STPAIN_REQUIRE_GPU");
    if (require && std::string(require) == "1") FAIL("no CUDA device: " << why);
    WARN("skipped: " << why);
    return;
  }
  const int n = 1 << 20;
  CHECK(stpain::cuda_runtime::saxpy_sum(2.f, n) == Approx(double(n) * double(n)));
}
