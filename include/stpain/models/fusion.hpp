#pragma once
// Both pipelines in one model (the paper's future work): mid fusion of the
// sequence features of a ConvNeXt-feature LSTM branch and an STGCN-LSTM
// landmark branch, trained jointly.
//   input  [N, T, F + V*2]: per frame, the F backbone features then the V
//          landmarks' (x, y) (one tensor, so the model is a plain Layer)
//   visual    LSTM(F -> 128, seq) -> LSTM(64) -> Linear(128) -> ReLU   "visual.*"
//   landmarks STGCN blocks -> LSTM(15, seq) -> LSTM(20)                 "landmarks.*"
//   fc        Linear(128 + 20 -> classes) on both branches' features    "fc.*"
// (Late fusion, the mean of two separately trained models' probabilities,
// needs no model: see examples/train_fusion.cpp.)
// init_from_branches() starts the joint model from two trained single-branch
// models, where it equals their logit-averaging late fusion; joint training
// then only has to improve on that (from scratch it needs many more clips).
#include <map>

#include "stpain/compose/concat.hpp"
#include "stpain/models/sequence_heads.hpp"
#include "stpain/models/stgcn.hpp"

namespace stpain {

template <class Block, class B = cpu, class T = float>
class MidFusion {
 public:
  using backend = B;
  using scalar = T;
  using tensor = Tensor<T, B>;
  using Visual = Sequential<Named<"lstm1", LSTM<B, T>>, Named<"lstm2", LSTM<B, T>>, Named<"fc1", Linear<B, T>>, ReLU<B, T>>;

  MidFusion(int64_t features, const SequenceHeadOptions& head, STGCNNetwork<Block, B, T> landmarks, int64_t nodes,
            int64_t classes = 2)
      : features_(features),
        nodes_(nodes),
        visual_(detail::lstm<B, T>(features, head.units1, false, true), detail::lstm<B, T>(head.units1, head.units2, false, false),
                Linear<B, T>(head.units2, head.dense), ReLU<B, T>()),
        landmarks_(std::move(landmarks)),
        fc_(head.dense + landmarks_.features(), classes),
        visual_width_(head.dense) {}

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == 3 && x.size(2) == features_ + 2 * nodes_, ShapeError, "MidFusion: input ", x.shape().str(),
                 " is not [N, T, ", features_, " features + ", nodes_, " x 2 landmark coordinates]");
    input_shape_ = x.shape();
    const tensor v = visual_.forward(slice_last_dim(x, 0, features_));
    const tensor l = landmarks_.forward(slice_last_dim(x, features_, 2 * nodes_).reshape({x.size(0), x.size(1), nodes_, 2}));
    return fc_.forward(concat_last_dim<T, B>({v, l}));
  }

  tensor backward(const tensor& dy) {
    const tensor d = fc_.backward(dy);
    const tensor dv = visual_.backward(slice_last_dim(d, 0, visual_width_));
    const tensor dl = landmarks_.backward(slice_last_dim(d, visual_width_, d.size(1) - visual_width_));
    return concat_last_dim<T, B>({dv, dl.reshape({input_shape_[0], input_shape_[1], 2 * nodes_})});
  }

  // Copies a trained LstmHead (lstm1, lstm2, fc1 -> "visual.*") and a trained
  // STGCN-LSTM with a classifier ("landmarks.*"); fc becomes the mean of the
  // two classifiers, fc([v, l]) = (fc2(v) + fc(l)) / 2.
  template <class VisualHead, class LandmarkNet>
  void init_from_branches(VisualHead& visual, LandmarkNet& landmarks) {
    std::map<std::string, const tensor*> source;
    visual.visit_parameters([&](const std::string& name, auto& p) { source["visual." + name] = &p.value; });
    landmarks.visit_parameters([&](const std::string& name, auto& p) { source["landmarks." + name] = &p.value; });
    auto take = [&](const std::string& name, const Shape& shape) -> const tensor& {
      auto it = source.find(name);
      STPAIN_CHECK(it != source.end(), ShapeError, "MidFusion::init_from_branches: the branches have no ", name);
      expect_shape(it->second->shape(), shape, "MidFusion::init_from_branches: " + name);
      return *it->second;
    };
    const int64_t classes = fc_.weight.value.size(0), lw = landmarks_.features();
    const tensor& wv = take("visual.fc2.weight", {classes, visual_width_});
    const tensor& wl = take("landmarks.fc.weight", {classes, lw});
    const tensor& bv = take("visual.fc2.bias", {classes});
    const tensor& bl = take("landmarks.fc.bias", {classes});
    for (int64_t c = 0; c < classes; ++c) {
      for (int64_t j = 0; j < visual_width_; ++j) fc_.weight.value(c, j) = wv(c, j) / 2;
      for (int64_t j = 0; j < lw; ++j) fc_.weight.value(c, visual_width_ + j) = wl(c, j) / 2;
      fc_.bias.value[c] = (bv[c] + bl[c]) / 2;
    }
    visual_.visit_parameters([&](const std::string& name, auto& p) { p.value.copy_from(take(name, p.value.shape())); },
                             "visual.");
    landmarks_.visit_parameters(
        [&](const std::string& name, auto& p) { p.value.copy_from(take(name, p.value.shape())); }, "landmarks.");
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    visual_.visit_parameters(f, prefix + "visual.");
    landmarks_.visit_parameters(f, prefix + "landmarks.");
    fc_.visit_parameters(f, prefix + "fc.");
  }
  void train(bool on = true) {
    visual_.train(on);
    landmarks_.train(on);
    fc_.train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return visual_.is_training(); }

 private:
  int64_t features_, nodes_;
  Visual visual_;
  STGCNNetwork<Block, B, T> landmarks_;
  Linear<B, T> fc_;
  int64_t visual_width_;
  Shape input_shape_;
};

// Builds the mid-fusion model with the chosen landmark block over graph g and calls f(model).
template <class B = cpu, class T = float, class F>
decltype(auto) with_mid_fusion(BlockKind kind, int64_t features, const SequenceHeadOptions& head, STGCNOptions landmark_options,
                               const GraphSpec& g, F&& f) {
  landmark_options.classes = 0;
  return with_stgcn_network<B, T>(kind, landmark_options, g, [&](auto& net) {
    using Block = typename std::decay_t<decltype(net)>::block_type;
    MidFusion<Block, B, T> model(features, head, std::move(net), g.num_nodes, 2);
    return f(model);
  });
}

}  // namespace stpain
