// The thrust kernels (include/stpain/backend/thrust/) on thrust's host system
// under g++: every covered layer, block and head gives the same forward
// output, input gradient and parameter gradients with Backend = thrust_host as
// with Backend = cpu (1e-5 relative to the largest magnitude). The CUDA
// backend runs these same kernels with thrust::cuda::par (gpu/).
#include "stpain/backend/thrust.hpp"  // first: see the note in backend/thrust.hpp

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "stpain/graph/adjacency.hpp"
#include "stpain/graph/paper_block.hpp"
#include "stpain/graph/stgcn_block.hpp"
#include "stpain/layers/batch_norm.hpp"
#include "stpain/models/convnext.hpp"
#include "stpain/models/sequence_heads.hpp"
#include "stpain/train/loss.hpp"
#include "stpain/train/finite.hpp"
#include "stpain/train/optim.hpp"

using namespace stpain;

namespace {

// Random values in [-scale, scale) on any host-readable backend.
template <class B = cpu>
Tensor<float, B> random_tensor(const Shape& shape, uint64_t seed, double scale = 1.0) {
  Generator gen(seed);
  Tensor<float, B> t = Tensor<float, B>::empty(shape);
  for (auto& v : t) v = static_cast<float>(gen.uniform(-scale, scale));
  return t;
}

// max |a - b| <= rtol * max |b| + atol, and the tensors have the same shape.
template <class BA, class BB>
void expect_close(const Tensor<float, BA>& actual, const Tensor<float, BB>& expected, const std::string& what,
                  double rtol = 1e-5, double atol = 0.0, bool allow_zero = false) {
  INFO(what << ": actual " << actual.shape().str() << ", expected " << expected.shape().str());
  REQUIRE(actual.shape() == expected.shape());
  const Tensor<float, cpu> a = to_host(actual), b = to_host(expected);
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  INFO("max abs difference " << diff << ", max |expected| " << scale);
  if (!allow_zero) CHECK(scale > 0);  // an all-zero reference would prove nothing
  CHECK(diff <= rtol * scale + atol);
}

// Builds the layer for cpu and for thrust_host with the same parameters,
// runs forward and backward on the same random input and output gradient, and
// compares outputs, input gradients and every parameter gradient.
// make<B>() builds the layer; seeds are reset before each forward so random
// draws (dropout keys) agree. grad_atol: an absolute floor for parameter
// gradients that are zero in exact arithmetic (see the ST-GCN case).
template <class Dev = thrust_host, class Make>
void expect_backend_parity(Make make, const Shape& input, double rtol = 1e-5, double grad_atol = 0.0,
                           bool train = true) {
  auto ref = make.template operator()<cpu>();
  auto thr = make.template operator()<Dev>();
  // Non-trivial parameters, equal on both sides.
  uint64_t seed = 100;
  ref.visit_parameters([&](const std::string&, auto& p) {
    if (p.trainable) p.value.copy_from(random_tensor(p.value.shape(), seed++, 0.5));
  });
  copy_parameters(thr, ref);
  ref.train(train);
  thr.train(train);

  const auto x = random_tensor(input, 1);
  manual_seed(42);
  const auto y_ref = ref.forward(x);
  manual_seed(42);
  const auto y = thr.forward(to<Dev>(x));
  expect_close(y, y_ref, "forward", rtol);

  const auto dy = random_tensor(y_ref.shape(), 2);
  const auto dx_ref = ref.backward(dy);
  const auto dx = thr.backward(to<Dev>(dy));
  expect_close(dx, dx_ref, "input gradient", rtol);

  std::vector<std::pair<std::string, Tensor<float, cpu>>> grads;
  ref.visit_parameters([&](const std::string& name, auto& p) {
    if (p.trainable) grads.emplace_back(name, p.grad);
  });
  size_t i = 0;
  thr.visit_parameters([&](const std::string& name, auto& p) {
    if (!p.trainable) return;
    REQUIRE(i < grads.size());
    CHECK(grads[i].first == name);
    expect_close(p.grad, grads[i].second, "gradient of " + name, rtol, grad_atol);
    ++i;
  });
  CHECK(i == grads.size());

  // Buffers (BatchNorm's running statistics, adjacency) after the step.
  std::vector<Tensor<float, cpu>> buffers;
  ref.visit_parameters([&](const std::string&, auto& p) {
    if (!p.trainable) buffers.push_back(p.value);
  });
  i = 0;
  thr.visit_parameters([&](const std::string& name, auto& p) {
    if (p.trainable) return;
    REQUIRE(i < buffers.size());
    expect_close(p.value, buffers[i++], "buffer " + name, rtol, 0.0, true);
  });
}

GraphSpec ring_graph(int v) {
  GraphSpec g{v, {}, 0};
  for (int i = 0; i < v; ++i) g.edges.push_back({i, (i + 1) % v});
  return g;
}

}  // namespace

static_assert(backend::thrust_backend<thrust_host>);
static_assert(!backend::thrust_backend<cpu>);
static_assert(Layer<Linear<thrust_host>>);

TEST_CASE("thrust_host kernels are thrust code, not the cpu kernels") {
  // Every activation op the layers use has a device form (no cpu fallback).
  STATIC_REQUIRE(backend::thrust_detail::has_device_op<backend::gelu_op>);
  STATIC_REQUIRE(backend::thrust_detail::has_device_op<backend::relu_op>);
  STATIC_REQUIRE(backend::thrust_detail::has_device_op<backend::sigmoid_op>);
  STATIC_REQUIRE(backend::thrust_detail::has_device_op<backend::tanh_op>);
  STATIC_REQUIRE(backend::thrust_detail::has_device_op<backend::leaky_relu_op>);
  // The device dropout hash is the layer's, bit for bit.
  for (uint64_t i = 0; i < 1000; i += 37)
    CHECK(backend::thrust_detail::dropout_hash(12345, i) == backend::dropout_hash(12345, i));
}

TEST_CASE("to<B>() copies tensors between backends") {
  const auto x = random_tensor({3, 4}, 5);
  const auto y = to<thrust_host>(x);
  CHECK(static_cast<const void*>(y.data()) != static_cast<const void*>(x.data()));
  CHECK(to_host(y).to_vector() == x.to_vector());
}

TEST_CASE("elementwise activations on thrust_host match cpu") {
  const Shape s{3, 5, 7};
  SECTION("GELU exact") { expect_backend_parity([]<class B>() { return GELU<B>(); }, s); }
  SECTION("GELU tanh") { expect_backend_parity([]<class B>() { return GELU<B>(GeluApproximation::tanh); }, s); }
  SECTION("ReLU") { expect_backend_parity([]<class B>() { return ReLU<B>(); }, s); }
  SECTION("LeakyReLU") { expect_backend_parity([]<class B>() { return LeakyReLU<B>(0.2); }, s); }
  SECTION("Sigmoid") { expect_backend_parity([]<class B>() { return Sigmoid<B>(); }, s); }
  SECTION("Tanh") { expect_backend_parity([]<class B>() { return Tanh<B>(); }, s); }
}

TEST_CASE("softmax, pooling and reshapes on thrust_host match cpu") {
  SECTION("Softmax last dim") { expect_backend_parity([]<class B>() { return Softmax<B>(-1); }, {4, 9}); }
  SECTION("Softmax middle dim") { expect_backend_parity([]<class B>() { return Softmax<B>(1); }, {2, 6, 5}); }
  SECTION("MeanPool") { expect_backend_parity([]<class B>() { return MeanPool<B>(1); }, {3, 7, 4}); }
  SECTION("GlobalAvgPool2d") { expect_backend_parity([]<class B>() { return GlobalAvgPool2d<B>(); }, {2, 3, 4, 5}); }
  SECTION("Permute NCHW -> NHWC") {
    expect_backend_parity([]<class B>() { return Permute<B>({0, 2, 3, 1}); }, {2, 3, 4, 5});
  }
  SECTION("Permute general") {
    expect_backend_parity([]<class B>() { return Permute<B>({2, 0, 3, 1}); }, {2, 3, 4, 5});
  }
}

TEST_CASE("Linear, LayerNorm and LayerScale on thrust_host match cpu") {
  SECTION("Linear") { expect_backend_parity([]<class B>() { return Linear<B>(6, 5); }, {4, 3, 6}); }
  SECTION("Linear without bias") { expect_backend_parity([]<class B>() { return Linear<B>(6, 5, false); }, {7, 6}); }
  SECTION("LayerNorm") { expect_backend_parity([]<class B>() { return LayerNorm<B>(12, 1e-6); }, {5, 3, 12}); }
  SECTION("LayerNorm2d") { expect_backend_parity([]<class B>() { return LayerNorm2d<B>(6, 1e-6); }, {2, 6, 3, 4}); }
  SECTION("LayerScale") { expect_backend_parity([]<class B>() { return LayerScale<B>(8, 0.5); }, {3, 4, 8}); }
  SECTION("LayerScale2d") { expect_backend_parity([]<class B>() { return LayerScale2d<B>(4, 0.5); }, {2, 4, 3, 3}); }
}

TEST_CASE("batch normalisation on thrust_host matches cpu") {
  SECTION("BatchNorm1d [N, C, L], batch statistics") {
    expect_backend_parity([]<class B>() { return BatchNorm1d<B>(5); }, {4, 5, 6});
  }
  SECTION("BatchNorm2d, running statistics") {
    expect_backend_parity([]<class B>() { return BatchNorm2d<B>(3); }, {2, 3, 4, 5}, 1e-5, 0.0, false);
  }
}

TEST_CASE("attention layers on thrust_host match cpu") {
  SECTION("dot-product self-attention") {
    expect_backend_parity([]<class B>() { return DotProductSelfAttention<B>(false); }, {3, 5, 4});
  }
  SECTION("scaled dot-product self-attention") {
    expect_backend_parity([]<class B>() { return DotProductSelfAttention<B>(true); }, {2, 6, 8});
  }
  SECTION("additive attention pooling") {
    expect_backend_parity([]<class B>() { return AdditiveAttention<B>(6, 5); }, {3, 7, 6});
  }
}

TEST_CASE("dropout and drop path on thrust_host draw the cpu mask") {
  SECTION("Dropout") { expect_backend_parity([]<class B>() { return Dropout<B>(0.3); }, {6, 50}); }
  SECTION("DropPath") { expect_backend_parity([]<class B>() { return DropPath<B>(0.5); }, {8, 3, 4}); }
}

TEST_CASE("depthwise 7x7 NHWC convolution on thrust_host matches cpu") {
  SECTION("7x7, odd sizes") {
    expect_backend_parity([]<class B>() { return DepthwiseConv2dNHWC<B>(20, 7); }, {2, 9, 11, 20});
  }
  SECTION("3x3 without bias, image smaller than the padding reach") {
    expect_backend_parity([]<class B>() { return DepthwiseConv2dNHWC<B>(5, 3, 1, false); }, {1, 2, 3, 5});
  }
}

TEST_CASE("NCHW Conv2d on thrust_host matches cpu (im2col + GEMM, depthwise planes)") {
  SECTION("3x3, stride 2, padding 1, two groups") {
    expect_backend_parity([]<class B>() { return Conv2d<B>(4, 6, 3, 2, 1, 2); }, {2, 4, 9, 8});
  }
  SECTION("5x3 kernel, stride (2, 1), no bias") {
    expect_backend_parity([]<class B>() { return Conv2d<B>(3, 5, Size2d(5, 3), Size2d(2, 1), Size2d(2, 0), 1, false); },
                          {2, 3, 11, 7});
  }
  SECTION("1x1 pointwise") { expect_backend_parity([]<class B>() { return Conv2d<B>(5, 7, 1); }, {3, 5, 4, 6}); }
  SECTION("depthwise 7x7, padding 3") {
    expect_backend_parity([]<class B>() { return Conv2d<B>(6, 6, 7, 1, 3, 6); }, {2, 6, 10, 9});
  }
  SECTION("depthwise 3x3, stride 2") {
    expect_backend_parity([]<class B>() { return Conv2d<B>(4, 4, 3, 2, 1, 4); }, {2, 4, 7, 8});
  }
}

TEST_CASE("softmax cross-entropy on thrust_host matches cpu, with class weights and label smoothing") {
  const auto logits = random_tensor({6, 4}, 11, 4.0);
  const std::vector<int64_t> labels{0, 3, 1, 1, 2, 0};
  auto weighted = [](ClassWeightReduction r) {
    return CrossEntropyOptions{.class_weights = {0.5, 2.0, 1.0, 1.5}, .weight_reduction = r, .label_smoothing = 0.1};
  };
  for (const CrossEntropyOptions& o : {CrossEntropyOptions{}, weighted(ClassWeightReduction::pytorch),
                                       weighted(ClassWeightReduction::keras)}) {
    const auto ref = softmax_cross_entropy(logits, labels, o);
    const auto thr = softmax_cross_entropy(to<thrust_host>(logits), labels, o);
    CHECK(thr.loss == Approx(ref.loss).epsilon(1e-12));
    expect_close(thr.grad, ref.grad, "gradient");
  }
}

TEST_CASE("a ConvNeXt block on thrust_host matches cpu") {
  expect_backend_parity([]<class B>() { return make_convnext_block<B>(16, 0.0, 0.5, 1e-6); }, {2, 7, 7, 16});
}

TEST_CASE("a ConvNeXt-atto sized network on thrust_host matches cpu") {
  // atto's widths and stem, two blocks per stage, 32x32 input: every layer
  // type of the model, patch convolutions and BatchNorm-free head included.
  expect_backend_parity(
      []<class B>() {
        ConvNeXtConfig c = ConvNeXtConfig::variant("atto", 3);
        c.depths = {1, 1, 2, 1};
        return ConvNeXt<B>(c);
      },
      {2, 3, 32, 32}, 2e-5);
}

TEST_CASE("LSTM layers and heads on thrust_host match cpu") {
  SECTION("LSTM, sequences") { expect_backend_parity([]<class B>() { return LSTM<B>(5, 6, true); }, {3, 4, 5}); }
  SECTION("bidirectional two-layer LSTM, last step") {
    expect_backend_parity(
        []<class B>() {
          return LSTM<B>(typename LSTM<B>::Options{.input_size = 5, .hidden_size = 4, .num_layers = 2,
                                                   .bidirectional = true, .return_sequences = false});
        },
        {3, 6, 5});
  }
  const SequenceHeadOptions o{.input_size = 12, .units1 = 8, .units2 = 6, .dense = 7, .classes = 2};
  SECTION("LSTM head") { expect_backend_parity([&]<class B>() { return LstmHead<B>(o); }, {3, 5, 12}); }
  SECTION("Bi-LSTM head") { expect_backend_parity([&]<class B>() { return BiLstmHead<B>(o); }, {3, 5, 12}); }
  SECTION("attention head") { expect_backend_parity([&]<class B>() { return AttentionLstmHead<B>(o); }, {3, 5, 12}); }
  SECTION("stacked head") { expect_backend_parity([&]<class B>() { return StackedLstmHead<B>(o); }, {3, 5, 12}); }
}

TEST_CASE("an ST-GCN block on thrust_host matches cpu") {
  const auto partitions = stgcn_partitions(ring_graph(7), Partition::spatial, 1);
  // The temporal convolution's bias feeds a training-mode BatchNorm, which
  // removes it: its gradient is 0 in exact arithmetic and float rounding
  // noise (~1e-6) on both backends; other gradients here are O(1).
  const double atol = 1e-5;
  SECTION("identity residual") {
    expect_backend_parity(
        [&]<class B>() { return STGCNBlock<B>({.in_channels = 4, .out_channels = 4, .kernel_size = 3}, partitions); },
        {2, 6, 7, 4}, 1e-5, atol);
  }
  SECTION("projection residual, stride 2") {
    expect_backend_parity(
        [&]<class B>() {
          return STGCNBlock<B>({.in_channels = 3, .out_channels = 5, .kernel_size = 3, .stride = 2}, partitions);
        },
        {2, 6, 7, 3}, 1e-5, atol);
  }
  SECTION("evaluation mode (running statistics)") {
    expect_backend_parity(
        [&]<class B>() { return STGCNBlock<B>({.in_channels = 4, .out_channels = 4, .kernel_size = 3}, partitions); },
        {2, 6, 7, 4}, 1e-5, 0.0, false);
  }
}

TEST_CASE("the paper's ST-GCN block (recurrent neighbour attention) on thrust_host matches cpu") {
  const auto masks = PaperSTGCNBlock<cpu>::hop_masks(ring_graph(5));
  for (const AttentionMode mode : {AttentionMode::recurrent, AttentionMode::averaging}) {
    INFO("attention mode " << static_cast<int>(mode));
    expect_backend_parity(
        [&]<class B>() {
          return PaperSTGCNBlock<B>({.in_channels = 3, .temporal_channels = 3, .hidden = 3, .node_features = 4,
                                     .branch_channels = 2, .kernel1 = 3, .kernel2 = 3, .kernel3 = 2, .dropout = 0.0,
                                     .attention = mode},
                                    masks);
        },
        {2, 6, 5, 3}, 1e-5, 1e-5);
  }
}

TEST_CASE("optimiser updates on thrust_host match cpu") {
  auto run = []<class B>(auto make_opt) {
    Linear<B> layer(4, 3);
    Linear<cpu> init(4, 3);
    uint64_t seed = 7;
    init.visit_parameters([&](const std::string&, auto& p) { p.value.copy_from(random_tensor(p.value.shape(), seed++)); });
    copy_parameters(layer, init);
    auto opt = make_opt(layer);
    const auto x = random_tensor<B>({5, 4}, 3);
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      layer.forward(x);
      layer.backward(random_tensor<B>({5, 3}, 10 + step));
      opt.step();
    }
    return to_host(layer.weight.value);
  };
  SECTION("Adam, amsgrad") {
    auto make = [](auto& layer) { return Adam(layer, {.lr = 1e-2, .weight_decay = 1e-3, .amsgrad = true}); };
    const auto ref = run.template operator()<cpu>(make);
    expect_close(run.template operator()<thrust_host>(make), ref, "Adam weights");
  }
  SECTION("SGD, Nesterov momentum") {
    auto make = [](auto& layer) { return SGD(layer, {.lr = 1e-2, .momentum = 0.9, .nesterov = true}); };
    const auto ref = run.template operator()<cpu>(make);
    expect_close(run.template operator()<thrust_host>(make), ref, "SGD weights");
  }
}

TEST_CASE("softmax and log-softmax of logits on thrust_host match cpu") {
  const auto z = random_tensor({4, 6}, 9, 5.0);
  expect_close(softmax(to<thrust_host>(z)), softmax(z), "softmax");
  expect_close(log_softmax(to<thrust_host>(z)), log_softmax(z), "log_softmax");
}

TEST_CASE("the same kernels on thrust's OpenMP system match cpu") {
  static_assert(backend::thrust_backend<thrust_omp>);
  set_num_threads(2);  // the OpenMP system splits the items over threads
  SECTION("ConvNeXt block") {
    expect_backend_parity<thrust_omp>([]<class B>() { return make_convnext_block<B>(16, 0.0, 0.5, 1e-6); }, {2, 7, 7, 16});
  }
  SECTION("LSTM head") {
    const SequenceHeadOptions o{.input_size = 12, .units1 = 8, .units2 = 6, .dense = 7, .classes = 2};
    expect_backend_parity<thrust_omp>([&]<class B>() { return LstmHead<B>(o); }, {3, 5, 12});
  }
  SECTION("ST-GCN block") {
    const auto partitions = stgcn_partitions(ring_graph(7), Partition::spatial, 1);
    expect_backend_parity<thrust_omp>(
        [&]<class B>() { return STGCNBlock<B>({.in_channels = 4, .out_channels = 4, .kernel_size = 3}, partitions); },
        {2, 6, 7, 4}, 1e-5, 1e-5);
  }
  set_num_threads(1);
}

TEST_CASE("the finite checks run on the thrust backend and still name the bad element") {
  const auto t = Tensor<float, thrust_host>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(backend::all_finite(thrust_host{}, t.data(), t.numel()));
  CHECK(backend::all_finite(thrust_host{}, t.data(), 0));
  for (const float bad : {NAN, INFINITY, -INFINITY}) {
    Tensor<float, thrust_host> u = t.clone();
    u.data()[4] = bad;
    CHECK_FALSE(backend::all_finite(thrust_host{}, u.data(), u.numel()));
    CHECK_THROWS_WITH(check_finite(u, "gradient of fc.weight"),
                      Catch::Contains("gradient of fc.weight [2, 3]: element 4 [1, 1] is") &&
                          Catch::Contains("(1 of 6 elements are not finite)"));
  }
}
