#include "stpain/core/tensor.hpp"

#include <catch2/catch.hpp>

#include "stpain/core/float16.hpp"
#include "stpain/core/random.hpp"

using namespace stpain;

TEST_CASE("Tensor is row-major with a runtime shape") {
  auto t = Tensor<float>::from({2, 3}, {0, 1, 2, 3, 4, 5});
  CHECK(t.rank() == 2);
  CHECK(t.numel() == 6);
  CHECK(t.size(-1) == 3);
  CHECK(t(1, 0) == 3.f);
  CHECK(t(1, 2) == 5.f);
  CHECK(t.matrix()(1, 1) == 4.f);
  t.matrix()(0, 2) = 9.f;  // Eigen views write the same memory
  CHECK(t[2] == 9.f);
}

TEST_CASE("Tensor copies share storage, clone copies, views do not own") {
  auto a = Tensor<float>::full({4}, 1.f);
  auto b = a;
  b[0] = 5.f;
  CHECK(a[0] == 5.f);
  auto c = a.clone();
  c[1] = 7.f;
  CHECK(a[1] == 1.f);
  float raw[6] = {1, 2, 3, 4, 5, 6};
  auto v = Tensor<float>::view(raw, {3, 2});
  CHECK(v.is_view());
  CHECK_FALSE(a.is_view());
  v(2, 1) = 0.f;
  CHECK(raw[5] == 0.f);
  CHECK(reinterpret_cast<uintptr_t>(Tensor<float>::empty({3}).data()) % 64 == 0);
}

TEST_CASE("reshape infers one extent and rejects impossible shapes with both shapes named") {
  auto t = Tensor<double>({2, 3, 4});
  CHECK(t.reshape({-1, 4}).shape() == Shape{6, 4});
  CHECK(t.reshape({6, -1}).shares_storage_with(t));
  CHECK_THROWS_AS(t.reshape({5, -1}), ShapeError);
  CHECK_THROWS_WITH(t.reshape({7, 3}), Catch::Contains("[2, 3, 4]") && Catch::Contains("[7, 3]"));
  CHECK_THROWS_AS(t.reshape({-1, -1}), ShapeError);
}

TEST_CASE("slice views rows of the leading dimension") {
  auto t = Tensor<float>::from({3, 2}, {0, 1, 2, 3, 4, 5});
  auto s = t.slice(1, 3);
  CHECK(s.shape() == Shape{2, 2});
  CHECK(s(0, 0) == 2.f);
  CHECK_THROWS_AS(t.slice(2, 4), ShapeError);
}

TEST_CASE("expect_shape names what was expected and what came") {
  CHECK_THROWS_WITH(expect_shape(Shape{2, 3}, Shape{2, 4}, "weight"),
                    Catch::Contains("weight") && Catch::Contains("[2, 4]") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_AS(Shape({2, -1}), ShapeError);
  CHECK((Shape{2, 3}.axis(-1)) == 1);
  CHECK_THROWS_AS((Shape{2, 3}.axis(2)), ShapeError);
}

TEST_CASE("half and bfloat16 conversions round to nearest even and keep specials") {
  for (float v : {0.f, -0.f, 1.f, -2.5f, 65504.f, 6.103515625e-05f, 5.960464477539063e-08f, 0.333251953125f})
    CHECK(half_to_float(float_to_half(v)) == v);
  CHECK(float_to_half(1.f) == 0x3C00);
  CHECK(float_to_half(65520.f) == 0x7C00);               // rounds up to infinity
  CHECK(half_to_float(float_to_half(1.0004883f)) == 1.f);  // halfway -> even
  CHECK(std::isnan(half_to_float(float_to_half(NAN))));
  CHECK(float_to_bfloat16(1.f) == 0x3F80);
  CHECK(bfloat16_to_float(float_to_bfloat16(3.140625f)) == 3.140625f);
  CHECK(bfloat16_to_float(float_to_bfloat16(1.00390625f)) == 1.f);  // halfway -> even
  CHECK(std::isinf(bfloat16_to_float(float_to_bfloat16(INFINITY))));
}

TEST_CASE("Generator is deterministic and has the right moments") {
  Generator a(42), b(42), c(43);
  CHECK(a.next_u64() == b.next_u64());
  CHECK(a.uniform() != c.uniform());
  Generator g(1);
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double x = g.normal();
    sum += x;
    sq += x * x;
  }
  CHECK(std::fabs(sum / n) < 0.01);
  CHECK(std::fabs(sq / n - 1.0) < 0.02);
  auto p = g.permutation(10);
  std::sort(p.begin(), p.end());
  for (int i = 0; i < 10; ++i) CHECK(p[i] == i);
}

TEST_CASE("large host blocks are recycled, within the cache limit") {
  auto& cache = backend::detail::host_block_cache();
  const float* first = nullptr;
  {
    auto big = Tensor<float>::empty({1 << 16});  // 256 KiB
    first = big.data();
  }
  CHECK(cache.cached_bytes() >= (size_t{1} << 18));
  auto again = Tensor<float>::empty({1 << 16});
  CHECK(again.data() == first);  // the same block, already faulted in
  cache.set_limit(0);
  CHECK(cache.cached_bytes() == 0);
  { auto other = Tensor<float>::empty({1 << 16}); }
  CHECK(cache.cached_bytes() == 0);  // nothing kept when the limit is 0
  cache.set_limit(size_t{4} << 30);
}
