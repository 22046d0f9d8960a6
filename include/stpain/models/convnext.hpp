#pragma once
// ConvNeXt (Liu et al. 2022), every size from atto to xlarge, as typed layers.
//
// Structure is in the types, sizes in ConvNeXtConfig. Parameters carry timm's
// names (stem.0, stages.1.downsample.1, stages.2.blocks.5.mlp.fc1, head.norm,
// head.fc); models/convnext_weights.hpp reads the official and torchvision
// namings too. On the CPU the stages run channels-last ([N, H, W, C]): the
// pointwise layers are GEMMs over N*H*W rows, LayerNorm and the depthwise 7x7
// run over contiguous channels. Input images are NCHW; the stem's patchify
// convolution changes the layout once.
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "stpain/compose/repeat.hpp"
#include "stpain/compose/residual.hpp"
#include "stpain/compose/sequential.hpp"
#include "stpain/layers/activations.hpp"
#include "stpain/layers/depthwise_conv2d_nhwc.hpp"
#include "stpain/layers/dropout.hpp"
#include "stpain/layers/layer_norm.hpp"
#include "stpain/layers/layer_scale.hpp"
#include "stpain/layers/linear.hpp"
#include "stpain/layers/patch_conv2d.hpp"
#include "stpain/layers/pooling.hpp"

namespace stpain {

struct ConvNeXtConfig {
  std::string name = "custom";
  std::vector<int64_t> depths{3, 3, 9, 3};
  std::vector<int64_t> dims{96, 192, 384, 768};
  int64_t in_channels = 3;
  int64_t num_classes = 1000;  // 0: no classifier, forward() returns the pooled features
  double drop_path_rate = 0.0;  // stochastic depth, linspace(0, rate) over all blocks
  double layer_scale_init = 1e-6;
  double norm_eps = 1e-6;

  // The variants by name: timm's atto, femto, pico, nano and the paper's
  // tiny, small, base, large, xlarge.
  static ConvNeXtConfig variant(const std::string& name, int64_t num_classes = 1000) {
    struct Row {
      const char* name;
      std::vector<int64_t> depths, dims;
    };
    static const Row rows[] = {
        {"atto", {2, 2, 6, 2}, {40, 80, 160, 320}},       {"femto", {2, 2, 6, 2}, {48, 96, 192, 384}},
        {"pico", {2, 2, 6, 2}, {64, 128, 256, 512}},      {"nano", {2, 2, 8, 2}, {80, 160, 320, 640}},
        {"tiny", {3, 3, 9, 3}, {96, 192, 384, 768}},      {"small", {3, 3, 27, 3}, {96, 192, 384, 768}},
        {"base", {3, 3, 27, 3}, {128, 256, 512, 1024}},   {"large", {3, 3, 27, 3}, {192, 384, 768, 1536}},
        {"xlarge", {3, 3, 27, 3}, {256, 512, 1024, 2048}},
    };
    std::string known;
    for (const Row& r : rows) {
      if (name == r.name) {
        ConvNeXtConfig c;
        c.name = r.name;
        c.depths = r.depths;
        c.dims = r.dims;
        c.num_classes = num_classes;
        return c;
      }
      known += std::string(known.empty() ? "" : ", ") + r.name;
    }
    throw Error("unknown ConvNeXt variant \"" + name + "\" (known: " + known + ")");
  }

  int64_t feature_dim() const { return dims.back(); }
  void validate() const {
    STPAIN_CHECK(!depths.empty() && depths.size() == dims.size(), Error, "ConvNeXt ", name, ": ", depths.size(),
                 " depths for ", dims.size(), " dims");
    for (size_t i = 0; i < dims.size(); ++i)
      STPAIN_CHECK(depths[i] > 0 && dims[i] > 0, Error, "ConvNeXt ", name, ": stage ", i, " needs depth and dim > 0");
  }
};

// One block: depthwise 7x7 -> LayerNorm -> Linear C->4C -> GELU -> Linear 4C->C
// -> layer scale -> drop path, added to the input.
template <class B = cpu, class T = float>
using ConvNeXtMlp = Sequential<Named<"fc1", Linear<B, T>>, GELU<B, T>, Named<"fc2", Linear<B, T>>>;

template <class B = cpu, class T = float>
using ConvNeXtBlock = Residual<Sequential<Named<"conv_dw", DepthwiseConv2dNHWC<B, T>>, Named<"norm", LayerNorm<B, T>>,
                                         Named<"mlp", ConvNeXtMlp<B, T>>, Inline<LayerScale<B, T>>, DropPath<B, T>>>;

template <class B = cpu, class T = float>
ConvNeXtBlock<B, T> make_convnext_block(int64_t dim, double drop_path, double layer_scale_init, double eps) {
  using Body = typename ConvNeXtBlock<B, T>::block_type;
  return ConvNeXtBlock<B, T>(Body(DepthwiseConv2dNHWC<B, T>(dim, 7), LayerNorm<B, T>(dim, eps),
                                  ConvNeXtMlp<B, T>(Linear<B, T>(dim, 4 * dim), GELU<B, T>(), Linear<B, T>(4 * dim, dim)),
                                  LayerScale<B, T>(dim, layer_scale_init), DropPath<B, T>(drop_path)));
}

// Channels-last LayerNorm followed by a 2x2 stride-2 patch convolution.
template <class B = cpu, class T = float>
using ConvNeXtDownsample = Sequential<LayerNorm<B, T>, PatchConv2d<B, T>>;

// A stage: an optional downsampling layer ("downsample") and its blocks ("blocks").
template <class B = cpu, class T = float>
class ConvNeXtStage {
 public:
  using backend = B;
  using scalar = T;
  using tensor = Tensor<T, B>;

  ConvNeXtStage(std::optional<ConvNeXtDownsample<B, T>> downsample, Repeat<ConvNeXtBlock<B, T>> blocks)
      : downsample_(std::move(downsample)), blocks_(std::move(blocks)) {}

  tensor forward(const tensor& x) { return blocks_.forward(downsample_ ? downsample_->forward(x) : x); }
  tensor backward(const tensor& dy) {
    tensor d = blocks_.backward(dy);
    return downsample_ ? downsample_->backward(d) : d;
  }
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    if (downsample_) downsample_->visit_parameters(f, prefix + "downsample.");
    blocks_.visit_parameters(f, prefix + "blocks.");
  }
  void train(bool on = true) {
    if (downsample_) downsample_->train(on);
    blocks_.train(on);
  }
  bool is_training() const { return blocks_.is_training(); }
  Repeat<ConvNeXtBlock<B, T>>& blocks() { return blocks_; }

 private:
  std::optional<ConvNeXtDownsample<B, T>> downsample_;
  Repeat<ConvNeXtBlock<B, T>> blocks_;
};

template <class B = cpu, class T = float>
class ConvNeXt {
 public:
  using backend = B;
  using scalar = T;
  using tensor = Tensor<T, B>;

  explicit ConvNeXt(const ConvNeXtConfig& config)
      : config_((config.validate(), config)),
        stem_(PatchConv2d<B, T>(config.in_channels, config.dims[0], 4, Layout::NCHW),
              LayerNorm<B, T>(config.dims[0], config.norm_eps)),
        head_norm_(config.feature_dim(), config.norm_eps) {
    const auto& dims = config.dims;
    const int64_t total = std::accumulate(config.depths.begin(), config.depths.end(), int64_t{0});
    int64_t block_index = 0;
    std::vector<ConvNeXtStage<B, T>> stages;
    for (size_t i = 0; i < dims.size(); ++i) {
      std::optional<ConvNeXtDownsample<B, T>> down;
      if (i > 0)
        down.emplace(LayerNorm<B, T>(dims[i - 1], config.norm_eps), PatchConv2d<B, T>(dims[i - 1], dims[i], 2, Layout::NHWC));
      Repeat<ConvNeXtBlock<B, T>> blocks(static_cast<size_t>(config.depths[i]), [&](size_t) {
        const double rate = total > 1 ? config.drop_path_rate * static_cast<double>(block_index) / static_cast<double>(total - 1) : 0.0;
        ++block_index;
        return make_convnext_block<B, T>(dims[i], rate, config.layer_scale_init, config.norm_eps);
      });
      stages.emplace_back(std::move(down), std::move(blocks));
    }
    stages_ = Repeat<ConvNeXtStage<B, T>>(std::move(stages));
    if (config.num_classes > 0) head_fc_.emplace(config.feature_dim(), config.num_classes);
  }

  // Images [N, C, H, W] -> logits [N, num_classes] (pooled features without a classifier).
  tensor forward(const tensor& images) {
    tensor f = forward_features(images);
    used_fc_ = head_fc_.has_value();
    return used_fc_ ? head_fc_->forward(f) : f;
  }

  // Images [N, C, H, W] -> global average pool + LayerNorm: [N, feature_dim]
  // (the seed's Keras `pooling="avg"` features, timm's pre-logits).
  tensor forward_features(const tensor& images) {
    STPAIN_CHECK(images.rank() == 4 && images.size(1) == config_.in_channels, ShapeError, "ConvNeXt ", config_.name,
                 ": images ", images.shape().str(), " are not [N, ", config_.in_channels, ", H, W]");
    STPAIN_CHECK(images.size(2) >= 32 && images.size(3) >= 32, ShapeError, "ConvNeXt ", config_.name, ": images ",
                 images.shape().str(), " are smaller than 32x32 (the network downsamples 32x)");
    used_fc_ = false;
    tensor x = stages_.forward(stem_.forward(images));  // [N, h, w, C]
    pooled_shape_ = x.shape();
    tensor pooled = pool_.forward(x.reshape({x.size(0), x.size(1) * x.size(2), x.size(3)}));
    return head_norm_.forward(pooled);
  }

  // Gradient of the last forward's output (logits, or features after forward_features).
  tensor backward(const tensor& dy) {
    tensor d = used_fc_ ? head_fc_->backward(dy) : dy;
    d = pool_.backward(head_norm_.backward(d)).reshape(pooled_shape_);
    return stem_.backward(stages_.backward(d));
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    stem_.visit_parameters(f, prefix + "stem.");
    stages_.visit_parameters(f, prefix + "stages.");
    head_norm_.visit_parameters(f, prefix + "head.norm.");
    if (head_fc_) head_fc_->visit_parameters(f, prefix + "head.fc.");
  }
  void train(bool on = true) {
    stem_.train(on);
    stages_.train(on);
    head_norm_.train(on);
    if (head_fc_) head_fc_->train(on);
    training_ = on;
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  const ConvNeXtConfig& config() const { return config_; }
  Repeat<ConvNeXtStage<B, T>>& stages() { return stages_; }

 private:
  ConvNeXtConfig config_;
  Sequential<PatchConv2d<B, T>, LayerNorm<B, T>> stem_;
  Repeat<ConvNeXtStage<B, T>> stages_;
  MeanPool<B, T> pool_{1};
  LayerNorm<B, T> head_norm_;
  std::optional<Linear<B, T>> head_fc_;
  Shape pooled_shape_;
  bool used_fc_ = false, training_ = true;
};

}  // namespace stpain
