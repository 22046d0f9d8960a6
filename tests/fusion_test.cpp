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

const SequenceHeadOptions kHead{.input_size = 3, .units1 = 4, .units2 = 3, .dense = 5};

// A small landmark network over small_graph(); classes = 0: features only.
template <class T>
STGCNNetwork<PaperSTGCNBlock<cpu, T>, cpu, T> small_landmark_net(int64_t classes) {
  const auto masks = PaperSTGCNBlock<cpu, T>::hop_masks(small_graph());
  return STGCNNetwork<PaperSTGCNBlock<cpu, T>, cpu, T>(
      {.channels = 6, .classes = classes, .lstm = true, .lstm1 = 3, .lstm2 = 4, .dropout = 0.0}, 5, [&](int, int64_t in) {
        return PaperSTGCNBlock<cpu, T>({.in_channels = in, .temporal_channels = 3, .hidden = 3, .node_features = 4,
                                        .branch_channels = 2, .kernel1 = 3, .kernel2 = 3, .kernel3 = 2, .dropout = 0.0,
                                        .attention = AttentionMode::averaging},
                                       masks);
      });
}

template <class T>
MidFusion<PaperSTGCNBlock<cpu, T>, cpu, T> small_fusion() {
  return MidFusion<PaperSTGCNBlock<cpu, T>, cpu, T>(kHead.input_size, kHead, small_landmark_net<T>(0), 5);
}
}  // namespace

static_assert(Layer<MidFusion<PaperSTGCNBlock<cpu>>>);

TEST_CASE("mid fusion joins both branches' features and passes the gradient check") {
  auto model = small_fusion<double>();
  const auto names = parameter_names(model);
  CHECK(names.front() == "visual.lstm1.weight_ih_l0");
  CHECK(std::find(names.begin(), names.end(), "landmarks.blocks.2.branch3.weight") != names.end());
  CHECK(names.back() == "fc.bias");
  const auto x = random_tensor({2, 4, 3 + 10}, 3);  // 3 features + 5 landmarks x 2 per frame
  CHECK(model.forward(x).shape() == Shape{2, 2});
  check_gradients(model, x, {.max_entries = 25});
  CHECK_THROWS_WITH(model.forward(random_tensor({2, 4, 12}, 4)), Catch::Contains("[2, 4, 12]"));
}

TEST_CASE("mid fusion started from two trained branches is their logit mean") {
  manual_seed(5);
  LstmHead<cpu, double> visual(kHead);
  auto landmarks = small_landmark_net<double>(2);
  auto model = small_fusion<double>();
  model.init_from_branches(visual, landmarks);
  visual.eval();
  landmarks.eval();
  model.eval();
  const auto x = random_tensor({3, 4, 3 + 10}, 6);
  const Tensor<double> fused = model.forward(x);
  const Tensor<double> v = visual.forward(slice_last_dim(x, 0, 3));
  const Tensor<double> l = landmarks.forward(slice_last_dim(x, 3, 10).reshape({3, 4, 5, 2}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t c = 0; c < 2; ++c) CHECK(fused(i, c) == Approx((v(i, c) + l(i, c)) / 2).epsilon(1e-12));

  // A branch of another shape is named, not silently half-copied.
  MidFusion<PaperSTGCNBlock<cpu, double>, cpu, double> wider(3, {.input_size = 3, .units1 = 4, .units2 = 3, .dense = 7},
                                                              small_landmark_net<double>(0), 5);
  CHECK_THROWS_WITH(wider.init_from_branches(visual, landmarks), Catch::Contains("visual.fc2.weight"));
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
