#include "stpain/layers/linear.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

TEST_CASE("Linear matches torch.nn.Linear forward and backward") {
  const safetensors::File f(fixture_path("linear.safetensors"));
  for (auto [name, in, out, bias] : {std::tuple{"linear", 7, 5, true}, std::tuple{"linear_nobias", 6, 3, false}}) {
    Linear<cpu> layer(in, out, bias);
    load_case_parameters(layer, f, name);
    const auto y = layer.forward(f.load(std::string(name) + ".x"));
    expect_close(y, f.load(std::string(name) + ".y"), std::string(name) + ".y");
    const auto dx = layer.backward(f.load(std::string(name) + ".dy"));
    expect_close(dx, f.load(std::string(name) + ".dx"), std::string(name) + ".dx");
    expect_case_gradients(layer, f, name);
  }
}

TEST_CASE("Linear gradients match central differences") {
  Linear<cpu, double> layer(5, 4);
  check_gradients(layer, random_tensor({2, 3, 5}, 7));
  Linear<cpu, double> no_bias(3, 2, false);
  check_gradients(no_bias, random_tensor({4, 3}, 8));
}

TEST_CASE("Linear names its parameters as PyTorch does and rejects a wrong input width") {
  Linear<cpu> layer(4, 2);
  std::vector<std::string> names;
  layer.visit_parameters([&](const std::string& n, auto&) { names.push_back(n); }, "fc.");
  CHECK(names == std::vector<std::string>{"fc.weight", "fc.bias"});
  CHECK_THROWS_WITH(layer.forward(Tensor<float>({3, 5})), Catch::Contains("[3, 5]") && Catch::Contains("4"));
}

// The register-tiled GEMM behind Linear's forward (backend/cpu_gemm.hpp) on
// shapes with partial row tiles and column panels, several k blocks (K > 384),
// row strides wider than the rows, and both ways of sharing the work between
// threads (by rows when M >= 4N, by columns otherwise).
template <class T>
void check_gemm_nt(int64_t m, int64_t n, int64_t k, bool with_bias) {
  INFO("gemm_nt<" << (sizeof(T) == 4 ? "float" : "double") << "> m=" << m << " n=" << n << " k=" << k
                  << (with_bias ? " with bias" : ""));
  const int64_t lda = k + 3, ldb = k + 1, ldc = n + 5;
  Generator g(static_cast<uint64_t>(m * 131 + n * 7 + k));
  std::vector<T> a(static_cast<size_t>(m * lda)), b(static_cast<size_t>(n * ldb)), bias(static_cast<size_t>(n));
  std::vector<T> c(static_cast<size_t>(m * ldc), T(-7));
  for (auto& v : a) v = static_cast<T>(g.normal());
  for (auto& v : b) v = static_cast<T>(g.normal());
  for (auto& v : bias) v = static_cast<T>(g.normal());
  // The epilogue sees every output once, in C itself (runs on several threads:
  // it only writes entries of its own tile).
  std::vector<int> seen(static_cast<size_t>(m * n), 0);
  const auto epilogue = [&](int64_t r0, int64_t rows, int64_t c0, int64_t cols, T* tile, int64_t ld) {
    for (int64_t r = r0; r < r0 + rows; ++r)
      for (int64_t j = c0; j < c0 + cols; ++j) {
        T* value = tile + (r - r0) * ld + (j - c0);
        seen[static_cast<size_t>(r * n + j)] += value == &c[static_cast<size_t>(r * ldc + j)] ? 1 : 100;
        *value *= 2;  // the epilogue may rewrite the tile
      }
  };
  backend::gemm_nt(m, n, k, a.data(), lda, b.data(), ldb, with_bias ? bias.data() : nullptr, c.data(), ldc, epilogue);
  CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
  double worst = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double ref = with_bias ? static_cast<double>(bias[static_cast<size_t>(j)]) : 0.0, scale = std::fabs(ref);
      for (int64_t p = 0; p < k; ++p) {
        const double prod = static_cast<double>(a[static_cast<size_t>(i * lda + p)]) * b[static_cast<size_t>(j * ldb + p)];
        ref += prod;
        scale += std::fabs(prod);
      }
      worst = std::max(worst, std::fabs(c[static_cast<size_t>(i * ldc + j)] - 2 * ref) / (2 * scale + 1e-30));
    }
    for (int64_t j = n; j < ldc; ++j) CHECK(c[static_cast<size_t>(i * ldc + j)] == T(-7));  // past the row: untouched
  }
  CHECK(worst < (sizeof(T) == 4 ? 1e-5 : 1e-13));
}

TEST_CASE("gemm_nt matches a plain loop on ragged shapes, k blocks and both thread splits") {
  for (auto [m, n, k] : {std::array<int64_t, 3>{1, 1, 1}, {13, 37, 5}, {25, 70, 800}, {400, 33, 40}, {30, 200, 300},
                         {12, 32, 384}, {49, 96, 1000}}) {
    check_gemm_nt<float>(m, n, k, true);
    check_gemm_nt<float>(m, n, k, false);
    check_gemm_nt<double>(m, n, k, true);
  }
}

TEST_CASE("gemm_nt with B packed once (pack_b) gives the same bits as packing it per call") {
  for (auto [m, n, k] : {std::array<int64_t, 3>{1, 1, 1}, {13, 37, 5}, {25, 70, 800}, {400, 33, 40}, {8, 512, 128},
                         {49, 96, 1000}}) {
    INFO("m=" << m << " n=" << n << " k=" << k);
    const int64_t ldb = k + 1;
    Generator g(static_cast<uint64_t>(m + n + k));
    std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(n * ldb)), bias(static_cast<size_t>(n));
    for (auto* v : {&a, &b, &bias})
      for (auto& x : *v) x = static_cast<float>(g.normal());
    std::vector<float> per_call(static_cast<size_t>(m * n)), packed_once(per_call.size());
    backend::gemm_nt(m, n, k, a.data(), k, b.data(), ldb, bias.data(), per_call.data(), n);
    const backend::PackedB<float> packed = backend::pack_b(b.data(), ldb, n, k);
    backend::gemm_nt(m, a.data(), k, packed, bias.data(), packed_once.data(), n);
    CHECK(packed_once == per_call);
  }
}

TEST_CASE("Linear on many rows matches a plain loop") {
  Linear<cpu> layer(50, 70);
  Tensor<float> x = Tensor<float>::empty({3, 41, 50});
  Generator g(5);
  for (auto& v : x) v = static_cast<float>(g.normal());
  const Tensor<float> y = layer.forward(x);
  double worst = 0;
  for (int64_t r = 0; r < 3 * 41; ++r)
    for (int64_t o = 0; o < 70; ++o) {
      double ref = layer.bias.value[o];
      for (int64_t i = 0; i < 50; ++i) ref += static_cast<double>(x[r * 50 + i]) * layer.weight.value[o * 50 + i];
      worst = std::max(worst, std::fabs(y[r * 70 + o] - ref));
    }
  CHECK(worst < 1e-5);
}
