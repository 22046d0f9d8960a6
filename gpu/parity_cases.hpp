#pragma once
// Backend parity cases: layers, blocks and heads run forward and backward on
// backend B from deterministic data (parameters, input and output gradient
// drawn from fixed seeds), with the results copied to host tensors.
// run_case<cpu>(i) and run_case<B>(i) must agree.
//
// Templated on B and free of Catch, so the same list runs with B = cuda in an
// nvcc translation unit (gpu/cuda_parity.cu, which never instantiates a cpu
// kernel: nvcc cannot compile the cpu backend's GCC vector code) and with
// B = cpu / thrust_host under g++ (gpu/cuda_parity_test.cpp,
// gpu/parity_cases_host_test.cpp). Include after the backend header.
#include <string>
#include <vector>

#include "stpain/backend/transfer.hpp"
#include "stpain/graph/adjacency.hpp"
#include "stpain/graph/paper_block.hpp"
#include "stpain/graph/stgcn_block.hpp"
#include "stpain/layers/conv2d.hpp"
#include "stpain/layers/reshape.hpp"
#include "stpain/models/convnext.hpp"
#include "stpain/models/sequence_heads.hpp"
#include "stpain/rnn/conv_lstm.hpp"
#include "stpain/train/loss.hpp"
#include "stpain/train/optim.hpp"
#include "stpain/train/trainer.hpp"

namespace stpain::parity {

// What a case produced, on the host.
struct CaseOutput {
  std::vector<std::string> names;      // "forward", "input gradient", "grad <parameter>"
  std::vector<Tensor<float, cpu>> values;
};

template <class B = cpu>
Tensor<float, B> random_tensor(const Shape& shape, uint64_t seed, double scale = 1.0) {
  Generator gen(seed);
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (auto& x : v) x = static_cast<float>(gen.uniform(-scale, scale));
  return Tensor<float, B>::from(shape, v);
}

// A small labelled set on the host: [n, 5, 12] clips, labels 0, 1, 0, ...
inline LabelledSet random_clips(int64_t n, uint64_t seed) {
  LabelledSet s{random_tensor<cpu>({n, 5, 12}, seed), {}};
  for (int64_t i = 0; i < n; ++i) s.y.push_back(i % 2);
  return s;
}

// fit() end to end on backend B (batches copied from the host, Adam, the
// schedule, class weights, model selection, the best weights restored):
// per-epoch losses, the restored weights and the validation probabilities.
template <class Model>
CaseOutput run_fit(Model model) {
  uint64_t seed = 300;
  model.visit_parameters([&](const std::string&, auto& p) {
    if (p.trainable) p.value.copy_from(random_tensor<typename Model::backend>(p.value.shape(), seed++, 0.3));
  });
  manual_seed(42);
  const LabelledSet train = random_clips(18, 1), validation = random_clips(8, 2);
  const FitResult r = fit(model, train, validation,
                          {.epochs = 3, .batch = 4, .lr = 1e-2, .decay_steps = 5, .class_weights = ClassWeighting::balanced});
  CaseOutput out;
  std::vector<float> train_loss, val_loss;
  for (const EpochRecord& e : r.history) {
    train_loss.push_back(static_cast<float>(e.train_loss));
    val_loss.push_back(static_cast<float>(e.val_loss));
  }
  out.names = {"train loss per epoch", "validation loss per epoch", "validation probabilities"};
  out.values = {Tensor<float, cpu>::from({3}, train_loss), Tensor<float, cpu>::from({3}, val_loss),
                predict_probabilities(model, validation.x)};
  model.visit_parameters([&](const std::string& name, auto& p) {
    out.names.push_back("weight " + name);
    out.values.push_back(to_host(p.value));
  });
  return out;
}

inline GraphSpec ring_graph(int v) {
  GraphSpec g{v, {}, 0};
  for (int i = 0; i < v; ++i) g.edges.push_back({i, (i + 1) % v});
  return g;
}

// Parameters from fixed seeds, forward (dropout keys from a fixed seed),
// backward of a fixed output gradient; outputs, input gradient and every
// trainable parameter's gradient.
template <class L>
CaseOutput run_layer(L layer, const Shape& input) {
  using B = typename L::backend;
  uint64_t seed = 100;
  layer.visit_parameters([&](const std::string&, auto& p) {
    if (p.trainable) p.value.copy_from(random_tensor<B>(p.value.shape(), seed++, 0.5));
  });
  layer.train(true);
  CaseOutput out;
  manual_seed(42);
  const Tensor<float, B> y = layer.forward(random_tensor<B>(input, 1));
  out.names.push_back("forward");
  out.values.push_back(to_host(y));
  out.names.push_back("input gradient");
  out.values.push_back(to_host(layer.backward(random_tensor<B>(y.shape(), 2))));
  layer.visit_parameters([&](const std::string& name, auto& p) {
    if (!p.trainable) return;
    out.names.push_back("grad " + name);
    out.values.push_back(to_host(p.grad));
  });
  return out;
}

struct CaseInfo {
  std::string name;
  // Parameter gradients below this magnitude are compared absolutely: the
  // ST-GCN blocks' temporal-conv bias feeds a training-mode BatchNorm, so its
  // gradient is 0 in exact arithmetic and rounding noise in float.
  double grad_floor = 0.0;
};

inline const std::vector<CaseInfo>& cases() {
  static const std::vector<CaseInfo> list = {
      {"GELU"}, {"ReLU"}, {"Sigmoid"}, {"Tanh"}, {"Softmax(dim=1)"}, {"MeanPool"}, {"Permute"}, {"Dropout"},
      {"DropPath"}, {"Linear"}, {"LayerNorm"}, {"LayerNorm2d"}, {"LayerScale"}, {"DepthwiseConv2dNHWC 7x7"},
      {"ConvNeXt block"}, {"ConvNeXt atto widths (depths 1-1-2-1)"}, {"LSTM head"}, {"Bi-LSTM head"},
      {"attention LSTM head"}, {"stacked LSTM head"}, {"STGCNBlock", 1.0}, {"PaperSTGCNBlock", 1.0},
      {"softmax_cross_entropy"}, {"Adam, 3 steps"}, {"AdditiveAttention"}, {"BatchNorm2d"},
      {"Conv2d 3x3, stride 2, 2 groups"}, {"Conv2d depthwise 7x7 (NCHW)"}, {"fit() LSTM head, 3 epochs"},
      {"ConvLSTM2d 3x3, sequences"}, {"ConvLSTM2d 1x1, last state"},
  };
  return list;
}

template <class B>
CaseOutput run_case(int id) {
  const SequenceHeadOptions heads{.input_size = 12, .units1 = 8, .units2 = 6, .dense = 7, .classes = 2};
  switch (id) {
    case 0: return run_layer(GELU<B>(), {3, 5, 7});
    case 1: return run_layer(ReLU<B>(), {3, 5, 7});
    case 2: return run_layer(Sigmoid<B>(), {3, 5, 7});
    case 3: return run_layer(Tanh<B>(), {3, 5, 7});
    case 4: return run_layer(Softmax<B>(1), {2, 6, 5});
    case 5: return run_layer(MeanPool<B>(1), {3, 7, 4});
    case 6: return run_layer(Permute<B>({2, 0, 3, 1}), {2, 3, 4, 5});
    case 7: return run_layer(Dropout<B>(0.3), {6, 50});
    case 8: return run_layer(DropPath<B>(0.5), {8, 3, 4});
    case 9: return run_layer(Linear<B>(64, 48), {4, 9, 64});
    case 10: return run_layer(LayerNorm<B>(40, 1e-6), {5, 3, 40});
    case 11: return run_layer(LayerNorm2d<B>(6, 1e-6), {2, 6, 3, 4});
    case 12: return run_layer(LayerScale<B>(8, 0.5), {3, 4, 8});
    case 13: return run_layer(DepthwiseConv2dNHWC<B>(20, 7), {2, 9, 11, 20});
    case 14: return run_layer(make_convnext_block<B>(16, 0.0, 0.5, 1e-6), {2, 7, 7, 16});
    case 15: {
      ConvNeXtConfig c = ConvNeXtConfig::variant("atto", 3);
      c.depths = {1, 1, 2, 1};
      return run_layer(ConvNeXt<B>(c), {2, 3, 32, 32});
    }
    case 16: return run_layer(LstmHead<B>(heads), {3, 5, 12});
    case 17: return run_layer(BiLstmHead<B>(heads), {3, 5, 12});
    case 18: return run_layer(AttentionLstmHead<B>(heads), {3, 5, 12});
    case 19: return run_layer(StackedLstmHead<B>(heads), {3, 5, 12});
    case 20:
      return run_layer(STGCNBlock<B>({.in_channels = 3, .out_channels = 5, .kernel_size = 3, .stride = 2},
                                     stgcn_partitions(ring_graph(7), Partition::spatial, 1)),
                       {2, 6, 7, 3});
    case 21:
      return run_layer(PaperSTGCNBlock<B>({.in_channels = 3, .temporal_channels = 3, .hidden = 3, .node_features = 4,
                                           .branch_channels = 2, .kernel1 = 3, .kernel2 = 3, .kernel3 = 2,
                                           .dropout = 0.0, .attention = AttentionMode::recurrent},
                                          PaperSTGCNBlock<B>::hop_masks(ring_graph(5))),
                       {2, 6, 5, 3});
    case 22: {
      const std::vector<int64_t> labels{0, 5, 2, 3};
      const auto r = softmax_cross_entropy(random_tensor<B>({4, 6}, 9, 5.0), labels);
      return {{"gradient", "loss"}, {to_host(r.grad), Tensor<float, cpu>::from({1}, {static_cast<float>(r.loss)})}};
    }
    case 23: {
      Linear<B> layer(16, 8);
      uint64_t seed = 7;
      layer.visit_parameters([&](const std::string&, auto& p) { p.value.copy_from(random_tensor<B>(p.value.shape(), seed++)); });
      Adam opt(layer, {.lr = 1e-2, .weight_decay = 1e-3, .amsgrad = true});
      const auto x = random_tensor<B>({5, 16}, 3);
      for (int step = 0; step < 3; ++step) {
        opt.zero_grad();
        layer.forward(x);
        layer.backward(random_tensor<B>({5, 8}, 10 + step));
        opt.step();
      }
      return {{"weight", "bias"}, {to_host(layer.weight.value), to_host(layer.bias.value)}};
    }
    case 24: return run_layer(AdditiveAttention<B>(6, 5), {3, 7, 6});
    case 25: return run_layer(BatchNorm2d<B>(3), {2, 3, 4, 5});
    case 26: return run_layer(Conv2d<B>(4, 6, 3, 2, 1, 2), {2, 4, 9, 8});
    case 27: return run_layer(Conv2d<B>(6, 6, 7, 1, 3, 6), {2, 6, 10, 9});
    case 28: return run_fit(LstmHead<B>(heads));
    case 29: return run_layer(ConvLSTM2d<B>(3, 4, 3, true), {2, 3, 3, 5, 6});
    case 30: return run_layer(ConvLSTM2d<B>(2, 3, 1, false), {2, 4, 2, 3, 3});
    default: throw Error("parity case " + std::to_string(id) + " does not exist");
  }
}

}  // namespace stpain::parity
