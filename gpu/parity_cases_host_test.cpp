// The parity cases the CUDA test runs (gpu/parity_cases.hpp), run here with
// Backend = thrust_host under g++: the same thrust kernels on the host, so the
// case list and the comparison are proven on CPU-only machines (1e-5).
#include "stpain/backend/thrust.hpp"  // first: the backend before any layer header

#include <catch2/catch.hpp>

#include "gpu/parity_compare.hpp"

using namespace stpain;

TEST_CASE("every parity case gives the cpu results with Backend = thrust_host") {
  const auto& cases = parity::cases();
  REQUIRE(cases.size() >= 20);
  for (int id = 0; id < static_cast<int>(cases.size()); ++id) {
    const parity::CaseOutput expected = parity::run_case<cpu>(id);
    const parity::CaseOutput actual = parity::run_case<thrust_host>(id);
    REQUIRE(expected.values.size() >= 1);
    for (const auto& d : parity::compare(cases[static_cast<size_t>(id)], actual, expected)) {
      INFO(d.what << ": relative difference " << d.relative << ", max |cpu| " << d.scale);
      CHECK(d.same_shape);
      CHECK(d.scale > 0);
      CHECK(d.relative <= 1e-5);
    }
  }
}

TEST_CASE("the comparison catches a wrong result") {
  const parity::CaseInfo info{"case"};
  parity::CaseOutput a{{"forward"}, {Tensor<float, cpu>::from({3}, {1.f, 2.f, 4.f})}};
  parity::CaseOutput b{{"forward"}, {Tensor<float, cpu>::from({3}, {1.f, 2.f, 4.001f})}};
  const auto d = parity::compare(info, b, a);
  REQUIRE(d.size() == 1);
  CHECK(d[0].relative == Approx(0.001 / 4).epsilon(1e-3));
  const parity::CaseOutput c{{"forward"}, {Tensor<float, cpu>::from({1, 3}, {1.f, 2.f, 4.f})}};
  CHECK_FALSE(parity::compare(info, c, a)[0].same_shape);
}
