#include <catch2/catch.hpp>

#include "stpain/graph/landmark_graphs.hpp"
#include "stpain/models/stgcn.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<PaperSTGCNBlock<cpu>>);
static_assert(Layer<NeighbourAttention<cpu>>);
static_assert(Layer<STGCNNetwork<PaperSTGCNBlock<cpu>>>);

namespace {
// The fixture's 10-node graph (tools/fixtures/stgcn_models.py).
GraphSpec small_graph() {
  GraphSpec g{10, {}, 0};
  for (int i = 0; i < 10; ++i) g.edges.push_back({i, (i + 1) % 10});
  g.edges.insert(g.edges.end(), {{0, 5}, {2, 7}, {3, 8}});
  return g;
}

template <class T = float>
typename PaperSTGCNBlock<cpu, T>::Options small_block(int64_t in, AttentionMode mode) {
  return {.in_channels = in, .temporal_channels = 8, .hidden = 8, .node_features = 10, .branch_channels = 4,
          .kernel1 = 3, .kernel2 = 5, .kernel3 = 4, .dropout = 0.0, .attention = mode};
}

template <class T = float>
STGCNNetwork<PaperSTGCNBlock<cpu, T>, cpu, T> paper_network(AttentionMode mode, bool lstm) {
  const auto masks = PaperSTGCNBlock<cpu, T>::hop_masks(small_graph());
  return STGCNNetwork<PaperSTGCNBlock<cpu, T>, cpu, T>(
      {.channels = 12, .lstm = lstm, .lstm1 = 5, .lstm2 = 6, .dropout = 0.0}, 10,
      [&](int, int64_t in) { return PaperSTGCNBlock<cpu, T>(small_block<T>(in, mode), masks); });
}
}  // namespace

TEST_CASE("the paper's block matches its PyTorch re-implementation, recurrent and averaging") {
  const safetensors::File f(fixture_path("stgcn_models.safetensors"));
  const auto masks = PaperSTGCNBlock<cpu>::hop_masks(small_graph());
  PaperSTGCNBlock<cpu> recurrent(small_block(3, AttentionMode::recurrent), masks);
  expect_matches_case(recurrent, f, "block_recurrent");
  PaperSTGCNBlock<cpu> averaging(small_block(3, AttentionMode::averaging), masks);
  expect_matches_case(averaging, f, "block_averaging");
  // Averaging is plain neighbour averaging: each row of coefficients is uniform over the neighbours.
  const auto& w = averaging.attention().attention_weights();
  CHECK(w(0, 0, 0, 1) == Approx(1.0 / 4));  // node 0: itself, 1, 9 and 5
  CHECK(w(0, 0, 0, 2) == 0.f);
}

TEST_CASE("STGCN and STGCN-LSTM networks match PyTorch, with the paper's block and with ST-GCN blocks") {
  const safetensors::File f(fixture_path("stgcn_models.safetensors"));
  auto lstm_net = paper_network(AttentionMode::recurrent, true);
  // The attention LSTMs of blocks 1 and 2 get gradients of ~1e-7 through two
  // softmax layers: float32 rounding upstream shows at ~2e-5 of their size.
  CaseTolerance tol;
  for (const char* b : {"blocks.1.", "blocks.2."})
    for (const char* p : {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"})
      tol.loose[std::string(b) + "attention." + p] = 5e-5;
  expect_matches_case(lstm_net, f, "net_lstm_recurrent", tol);
  auto pooled = paper_network(AttentionMode::averaging, false);
  expect_matches_case(pooled, f, "net_pooled_averaging");
  const auto partitions = stgcn_partitions(small_graph(), Partition::spatial, 1);
  STGCNNetwork<STGCNBlock<cpu>> yan({.channels = 12, .lstm = true, .lstm1 = 5, .lstm2 = 6, .dropout = 0.0}, 10,
                                    [&](int, int64_t in) {
                                      return STGCNBlock<cpu>({.in_channels = in, .out_channels = 12, .kernel_size = 3,
                                                              .edge_importance = true},
                                                             partitions);
                                    });
  expect_matches_case(yan, f, "net_lstm_stgcn",
                      {.vanishing = {"blocks.0.tcn.2.bias", "blocks.1.tcn.2.bias", "blocks.2.tcn.2.bias",
                                     "blocks.0.residual.0.bias"}});
}

TEST_CASE("the landmark networks pass the gradient check") {
  const auto masks = PaperSTGCNBlock<cpu, double>::hop_masks(small_graph());
  PaperSTGCNBlock<cpu, double> block(small_block<double>(2, AttentionMode::recurrent), masks);
  check_gradients(block, random_tensor({1, 4, 10, 2}, 1), {.max_entries = 40});
  auto net = paper_network<double>(AttentionMode::recurrent, true);
  check_gradients(net, random_tensor({2, 4, 10, 2}, 2), {.max_entries = 25});
  auto pooled = paper_network<double>(AttentionMode::averaging, false);
  check_gradients(pooled, random_tensor({2, 4, 10, 2}, 3), {.max_entries = 25});
}

TEST_CASE("the full-size networks build over the 68-point graphs and check their input") {
  for (auto kind : {BlockKind::paper, BlockKind::paper_averaging, BlockKind::stgcn})
    with_stgcn_network(kind, {}, GraphSpec::of<FaceMesh68>(), [&](auto& net) {
      net.eval();
      CHECK(net.forward(Tensor<float>({1, 20, 68, 2})).shape() == Shape{1, 2});
      CHECK_THROWS_WITH(net.forward(Tensor<float>({1, 20, 67, 2})), Catch::Contains("[1, 20, 67, 2]"));
    });
  CHECK_THROWS_WITH(parse_block_kind("gcn"), Catch::Contains("paper-averaging"));
}
