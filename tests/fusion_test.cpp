#include "stpain/models/fusion.hpp"

#include <catch2/catch.hpp>

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

namespace {
GraphSpec small_graph() {
  GraphSpec g{5, {}, 0};
  for (int i = 0; i < 5; ++i) g.edges.push_back({i, (i + 1) % 5});
  return g;
}

template <class T>
MidFusion<PaperSTGCNBlock<cpu, T>, cpu, T> small_fusion(int64_t features) {
  const auto masks = PaperSTGCNBlock<cpu, T>::hop_masks(small_graph());
  STGCNNetwork<PaperSTGCNBlock<cpu, T>, cpu, T> landmarks(
      {.channels = 6, .classes = 0, .lstm = true, .lstm1 = 3, .lstm2 = 4, .dropout = 0.0}, 5, [&](int, int64_t in) {
        return PaperSTGCNBlock<cpu, T>({.in_channels = in, .temporal_channels = 3, .hidden = 3, .node_features = 4,
                                        .branch_channels = 2, .kernel1 = 3, .kernel2 = 3, .kernel3 = 2, .dropout = 0.0,
                                        .attention = AttentionMode::averaging},
                                       masks);
      });
  return MidFusion<PaperSTGCNBlock<cpu, T>, cpu, T>(features, {.input_size = features, .units1 = 4, .units2 = 3, .dense = 5},
                                                    std::move(landmarks), 5);
}
}  // namespace

static_assert(Layer<MidFusion<PaperSTGCNBlock<cpu>>>);

TEST_CASE("mid fusion joins both branches' features and passes the gradient check") {
  auto model = small_fusion<double>(3);
  const auto names = parameter_names(model);
  CHECK(names.front() == "visual.lstm1.weight_ih_l0");
  CHECK(std::find(names.begin(), names.end(), "landmarks.blocks.2.branch3.weight") != names.end());
  CHECK(names.back() == "fc.bias");
  const auto x = random_tensor({2, 4, 3 + 10}, 3);  // 3 features + 5 landmarks x 2 per frame
  CHECK(model.forward(x).shape() == Shape{2, 2});
  check_gradients(model, x, {.max_entries = 25});
  CHECK_THROWS_WITH(model.forward(random_tensor({2, 4, 12}, 4)), Catch::Contains("[2, 4, 12]"));
}

TEST_CASE("the landmark network without a classifier returns its penultimate features") {
  const auto masks = PaperSTGCNBlock<cpu>::hop_masks(small_graph());
  STGCNNetwork<PaperSTGCNBlock<cpu>> net({.channels = 6, .classes = 0, .lstm = true, .lstm1 = 3, .lstm2 = 4}, 5,
                                         [&](int, int64_t in) {
                                           return PaperSTGCNBlock<cpu>({.in_channels = in, .node_features = 4, .branch_channels = 2,
                                                                        .kernel1 = 3, .kernel2 = 3, .kernel3 = 2},
                                                                       masks);
                                         });
  net.eval();
  CHECK(net.forward(Tensor<float>({2, 6, 5, 2})).shape() == Shape{2, 4});
  CHECK(net.features() == 4);
}
