#include <catch2/catch.hpp>

#include "stpain/graph/adjacency.hpp"
#include "stpain/graph/stgcn_block.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<TemporalConv<cpu>>);
static_assert(Layer<GraphConv<cpu>>);
static_assert(Layer<STGCNBlock<cpu>>);

namespace {
// The fixture's 10-node graph: a ring with three chords, centre 0.
GraphSpec small_graph() {
  GraphSpec g{10, {}, 0};
  for (int i = 0; i < 10; ++i) g.edges.push_back({i, (i + 1) % 10});
  g.edges.insert(g.edges.end(), {{0, 5}, {2, 7}, {3, 8}});
  return g;
}
const std::vector<Eigen::MatrixXd>& partitions() {
  static const auto p = stgcn_partitions(small_graph(), Partition::spatial, 1);
  return p;
}
}  // namespace

TEST_CASE("TemporalConv matches a torch (k, 1) convolution with same padding") {
  const safetensors::File f(fixture_path("stgcn.safetensors"));
  TemporalConv<cpu> k9(5, 6, 9);
  expect_matches_case(k9, f, "tconv9");
  TemporalConv<cpu> k20(3, 4, 20);  // even kernel: 9 steps before, 10 after
  expect_matches_case(k20, f, "tconv20");
  TemporalConv<cpu> strided(4, 4, 3, 2);
  expect_matches_case(strided, f, "tconv_stride");
  CHECK(strided.output_length(9) == 5);
}

TEST_CASE("TemporalConv's computation forms all give the direct sum and its gradients") {
  // Wide inputs, wide outputs, narrow inputs, strided, uneven padding: the
  // input-side and output-side forwards and the backward by taps or by im2col.
  struct Case {
    int64_t in, out, k, stride, padding;
  };
  for (const Case c : {Case{16, 40, 5, 1, -1}, Case{40, 16, 4, 1, -1}, Case{2, 40, 3, 1, -1}, Case{20, 36, 3, 2, -1},
                       Case{17, 33, 4, 1, 0}}) {
    INFO("in " << c.in << " out " << c.out << " k " << c.k << " stride " << c.stride << " padding " << c.padding);
    TemporalConv<cpu, double> tc({.in_channels = c.in, .out_channels = c.out, .kernel_size = c.k, .stride = c.stride,
                                  .padding = c.padding});
    const Tensor<double> x = random_tensor({3, 7, 4, c.in}, 5);
    const Tensor<double> y = tc.forward(x);
    const int64_t pad = c.padding < 0 ? (c.k - 1) / 2 : c.padding, to = tc.output_length(7);
    REQUIRE(y.shape() == Shape{3, to, 4, c.out});
    double worst = 0;
    for (int64_t n = 0; n < 3; ++n)
      for (int64_t t = 0; t < to; ++t)
        for (int64_t v = 0; v < 4; ++v)
          for (int64_t o = 0; o < c.out; ++o) {
            double sum = tc.bias.value[o];
            for (int64_t j = 0; j < c.k; ++j) {
              const int64_t ti = t * c.stride + j - pad;
              if (ti < 0 || ti >= 7) continue;
              for (int64_t i = 0; i < c.in; ++i) sum += tc.weight.value[(o * c.in + i) * c.k + j] * x(n, ti, v, i);
            }
            worst = std::max(worst, std::fabs(sum - y(n, t, v, o)));
          }
    CHECK(worst < 1e-12);
    check_gradients(tc, x, {.max_entries = 60});
  }
}

TEST_CASE("GraphConv matches ST-GCN's graph convolution with edge importance") {
  const safetensors::File f(fixture_path("stgcn.safetensors"));
  GraphConv<cpu> gc({3, 4, true}, partitions());
  expect_close(gc.A.value, f.load("graph_conv.param.A"), "A built in C++ vs the reference", 1e-7);
  expect_matches_case(gc, f, "graph_conv");
  CHECK(parameter_names(gc) == std::vector<std::string>{"conv.weight", "conv.bias", "edge_importance", "A"});
}

TEST_CASE("the ST-GCN block matches the reference st_gcn module (identity and projection residuals)") {
  const safetensors::File f(fixture_path("stgcn.safetensors"));
  STGCNBlock<cpu> identity({.in_channels = 6, .out_channels = 6}, partitions());
  expect_matches_case(identity, f, "block_identity", {.vanishing = {"tcn.2.bias"}});
  STGCNBlock<cpu> projection({.in_channels = 3, .out_channels = 8, .stride = 2}, partitions());
  expect_matches_case(projection, f, "block_projection", {.vanishing = {"tcn.2.bias", "residual.0.bias"}});
  const auto names = parameter_names(projection);
  CHECK(std::find(names.begin(), names.end(), "tcn.2.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "residual.1.running_var") != names.end());
}

TEST_CASE("ST-GCN layers pass the gradient check") {
  TemporalConv<cpu, double> tc(3, 2, 4, 2);
  check_gradients(tc, random_tensor({2, 7, 3, 3}, 1));
  GraphConv<cpu, double> gc({2, 3, true}, partitions());
  check_gradients(gc, random_tensor({2, 3, 10, 2}, 2));
  STGCNBlock<cpu, double> block({.in_channels = 2, .out_channels = 3, .kernel_size = 3, .stride = 2}, partitions());
  check_gradients(block, random_tensor({2, 6, 10, 2}, 3), {.max_entries = 40});
  STGCNBlock<cpu, double> plain({.in_channels = 3, .out_channels = 3, .kernel_size = 3, .residual = ResidualMode::none},
                                partitions());
  check_gradients(plain, random_tensor({1, 5, 10, 3}, 4), {.max_entries = 40});
}

TEST_CASE("ST-GCN layers name the shapes they reject") {
  GraphConv<cpu> gc({3, 4, false}, partitions());
  CHECK_THROWS_WITH(gc.forward(Tensor<float>({1, 5, 9, 3})), Catch::Contains("[1, 5, 9, 3]") && Catch::Contains("10"));
  TemporalConv<cpu> tc(3, 4, 9, 1);
  CHECK_THROWS_WITH(tc.forward(Tensor<float>({1, 5, 9, 2})), Catch::Contains("[1, 5, 9, 2]"));
}
