#include "stpain/core/xtensor_view.hpp"

#include <catch2/catch.hpp>

#include <xtensor/xmath.hpp>

using namespace stpain;

TEST_CASE("xt_view reads and writes the tensor's memory with its shape") {
  auto t = Tensor<float>::from({2, 3}, {0, 1, 2, 3, 4, 5});
  auto v = xt_view(t);
  CHECK(v.shape()[0] == 2);
  CHECK(v.shape()[1] == 3);
  CHECK(v(1, 2) == 5.f);
  v(0, 1) = 10.f;
  CHECK(t(0, 1) == 10.f);
  v = v * 2.f;  // an xtensor expression assigned back into the tensor
  CHECK(t(1, 0) == 6.f);
  const auto& ct = t;
  CHECK(xt::sum(xt_view(ct))() == Approx(2.f * (0 + 10 + 2 + 3 + 4 + 5)));
}
