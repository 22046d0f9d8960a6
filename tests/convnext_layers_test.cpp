#include <catch2/catch.hpp>

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
