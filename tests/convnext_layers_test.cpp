#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "stpain/layers/depthwise_conv2d_nhwc.hpp"
#include "stpain/layers/patch_conv2d.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

TEST_CASE("DepthwiseConv2dNHWC matches torch depthwise Conv2d on channels-last data") {
  const safetensors::File f(fixture_path("convnext_layers.safetensors"));
  DepthwiseConv2dNHWC<cpu> dw7(12, 7);
  expect_matches_case(dw7, f, "dw7");
  DepthwiseConv2dNHWC<cpu> dw3(5, 3, 0, false);
  expect_matches_case(dw3, f, "dw3_valid");
  DepthwiseConv2dNHWC<cpu> small(4, 7);
  expect_matches_case(small, f, "dw7_small");
}

TEST_CASE("DepthwiseConv2dNHWC gradients match central differences") {
  DepthwiseConv2dNHWC<cpu, double> same(3, 5);
  check_gradients(same, random_tensor({2, 4, 5, 3}, 1));
  DepthwiseConv2dNHWC<cpu, double> valid(2, 3, 0, false);
  check_gradients(valid, random_tensor({1, 5, 4, 2}, 2));
}

// The fixtures have fewer channels than a vector register holds; these cases
// run the register-tiled kernels (whole vectors of channels, strips of output
// pixels at and away from the borders) next to the plain loops (the rest).
template <class T>
void check_depthwise_against_loops(int64_t n, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad, bool bias) {
  INFO("DepthwiseConv2dNHWC(" << c << ", " << k << ", " << pad << ") on [" << n << ", " << h << ", " << w << ", " << c
                              << "], " << (sizeof(T) == 4 ? "float" : "double"));
  manual_seed(static_cast<uint64_t>(c * 100 + k));
  DepthwiseConv2dNHWC<cpu, T> layer(c, k, pad, bias);
  Tensor<T> x = Tensor<T>::empty({n, h, w, c});
  Generator g(static_cast<uint64_t>(h * 10 + w));
  for (auto& v : x) v = static_cast<T>(g.normal());
  const Tensor<T> y = layer.forward(x);
  const int64_t ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
  REQUIRE(y.shape() == Shape{n, ho, wo, c});
  Tensor<T> dy = Tensor<T>::empty(y.shape());
  for (auto& v : dy) v = static_cast<T>(g.normal());
  zero_grad(layer);
  const Tensor<T> dx = layer.backward(dy);
  // Plain loops in double: y, and the gradients as sums over the same taps.
  std::vector<double> ry(static_cast<size_t>(y.numel())), rdx(static_cast<size_t>(x.numel()), 0.0);
  std::vector<double> rdw(static_cast<size_t>(c * k * k), 0.0), rdb(static_cast<size_t>(c), 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oh = 0; oh < ho; ++oh)
      for (int64_t ow = 0; ow < wo; ++ow)
        for (int64_t ch = 0; ch < c; ++ch) {
          const int64_t yi = ((b * ho + oh) * wo + ow) * c + ch;
          double s = bias ? static_cast<double>(layer.bias.value[ch]) : 0.0;
          rdb[static_cast<size_t>(ch)] += dy[yi];
          for (int64_t kh = 0; kh < k; ++kh)
            for (int64_t kw = 0; kw < k; ++kw) {
              const int64_t ih = oh + kh - pad, iw = ow + kw - pad;
              if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
              const int64_t xi = ((b * h + ih) * w + iw) * c + ch, wi = (ch * k + kh) * k + kw;
              s += static_cast<double>(x[xi]) * layer.weight.value[wi];
              rdx[static_cast<size_t>(xi)] += static_cast<double>(dy[yi]) * layer.weight.value[wi];
              rdw[static_cast<size_t>(wi)] += static_cast<double>(dy[yi]) * x[xi];
            }
          ry[static_cast<size_t>(yi)] = s;
        }
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-12;
  auto check = [&](const Tensor<T>& actual, const std::vector<double>& expected, const char* what) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      diff = std::max(diff, std::fabs(actual[static_cast<int64_t>(i)] - expected[i]));
      scale = std::max(scale, std::fabs(expected[i]));
    }
    INFO(what << ": max difference " << diff << ", max |expected| " << scale);
    CHECK(diff <= tol * scale);
  };
  check(y, ry, "y");
  check(dx, rdx, "dx");
  check(layer.weight.grad, rdw, "weight grad");
  if (bias) check(layer.bias.grad, rdb, "bias grad");
}

TEST_CASE("DepthwiseConv2dNHWC matches plain loops with whole vectors of channels") {
  check_depthwise_against_loops<float>(2, 9, 11, 40, 7, 3, true);
  check_depthwise_against_loops<float>(1, 16, 30, 32, 7, 3, true);  // strips inside the image too
  check_depthwise_against_loops<float>(3, 7, 7, 48, 7, 3, false);
  check_depthwise_against_loops<float>(1, 5, 4, 40, 3, 0, true);
  check_depthwise_against_loops<float>(1, 16, 15, 17, 5, 1, true);
  check_depthwise_against_loops<float>(1, 6, 6, 16, 4, 2, true);  // no tiled kernel for k = 4
  check_depthwise_against_loops<double>(2, 9, 11, 20, 7, 3, true);
  check_depthwise_against_loops<double>(1, 12, 31, 16, 7, 6, false);
}

TEST_CASE("DepthwiseConv2dNHWC gradients match central differences with whole vectors of channels") {
  DepthwiseConv2dNHWC<cpu, double> dw(16, 7);
  check_gradients(dw, random_tensor({1, 6, 9, 16}, 5), {.max_entries = 60});
}

TEST_CASE("DepthwiseConv2dNHWC rejects inputs of the wrong layout") {
  DepthwiseConv2dNHWC<cpu> dw(8, 7);
  CHECK_THROWS_WITH(dw.forward(Tensor<float>({1, 8, 5, 5})), Catch::Contains("[1, 8, 5, 5]"));
  DepthwiseConv2dNHWC<cpu> valid(8, 7, 0);
  CHECK_THROWS_WITH(valid.forward(Tensor<float>({1, 5, 5, 8})), Catch::Contains("smaller than the kernel"));
}

TEST_CASE("PatchConv2d matches torch Conv2d with stride == kernel, NCHW and NHWC input") {
  const safetensors::File f(fixture_path("convnext_layers.safetensors"));
  PatchConv2d<cpu> stem(3, 8, 4, Layout::NCHW);
  expect_matches_case(stem, f, "patch_nchw");
  PatchConv2d<cpu> down(6, 10, 2, Layout::NHWC);
  expect_matches_case(down, f, "patch_nhwc");
}

TEST_CASE("PatchConv2d gradients match central differences") {
  PatchConv2d<cpu, double> nchw(2, 3, 2, Layout::NCHW);
  check_gradients(nchw, random_tensor({2, 2, 5, 4}, 3));
  PatchConv2d<cpu, double> nhwc(3, 2, 2, Layout::NHWC, false);
  check_gradients(nhwc, random_tensor({1, 4, 6, 3}, 4));
  CHECK_THROWS_WITH(nhwc.forward(Tensor<double>({1, 3, 4, 4})), Catch::Contains("[1, 3, 4, 4]"));
}
