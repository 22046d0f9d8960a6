#include "stpain/rnn/conv_lstm.hpp"

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<ConvLSTM2d<>>);
static_assert(Layer<ConvLSTM2d<cpu, double>>);

namespace {

const safetensors::File& fixture() {
  static const safetensors::File f(fixture_path("rnn.safetensors"));
  return f;
}

// A ConvLSTM2d from a learnable initial state whose output is y, h_T and c_T
// flattened: checks backward(dy, d_final) and initial_state_grad().
struct ConvLstmWithState : Module<cpu, double> {
  ConvLSTM2d<cpu, double> layer;
  Parameter<double> h0, c0;
  Shape y_shape;

  ConvLstmWithState(const ConvLSTM2d<cpu, double>::Options& o, const Shape& state) : layer(o) {
    h0 = Parameter<double>::make(state);
    c0 = Parameter<double>::make(state);
    h0.value = random_tensor(state, 41);
    c0.value = random_tensor(state, 42);
  }
  tensor forward(const tensor& x) {
    const tensor y = layer.forward(x, {h0.value, c0.value});
    y_shape = y.shape();
    const auto& fin = layer.final_state();
    tensor out = tensor::empty({y.numel() + fin.h.numel() + fin.c.numel()});
    double* p = std::copy(y.begin(), y.end(), out.data());
    p = std::copy(fin.h.begin(), fin.h.end(), p);
    std::copy(fin.c.begin(), fin.c.end(), p);
    return out;
  }
  tensor backward(const tensor& d) {
    const int64_t ny = y_shape.numel(), nh = h0.value.numel();
    tensor dy = tensor::empty(y_shape), dh = tensor::empty(h0.value.shape()), dc = tensor::empty(c0.value.shape());
    std::copy(d.data(), d.data() + ny, dy.data());
    std::copy(d.data() + ny, d.data() + ny + nh, dh.data());
    std::copy(d.data() + ny + nh, d.data() + d.numel(), dc.data());
    tensor dx = layer.backward(dy, {dh, dc});
    h0.grad.array() += layer.initial_state_grad().h.array();
    c0.grad.array() += layer.initial_state_grad().c.array();
    return dx;
  }
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    layer.visit_parameters(f, prefix);
    f(prefix + "h0", h0);
    f(prefix + "c0", c0);
  }
};

}  // namespace

TEST_CASE("ConvLSTM2d matches a torch ConvLSTM (conv over concat(x_t, h))") {
  ConvLSTM2d<> seq(2, 3, 3, true);
  expect_matches_case(seq, fixture(), "conv_lstm_seq");
  ConvLSTM2d<> last(3, 2, 1, false);
  expect_matches_case(last, fixture(), "conv_lstm_last");
  CHECK(last.final_state().h.shape() == Shape{2, 2, 4, 3});
}

TEST_CASE("ConvLSTM2d gradients match central differences") {
  using O = ConvLSTM2d<cpu, double>::Options;
  SECTION("3x3, sequence output") {
    ConvLSTM2d<cpu, double> layer(2, 2, 3, true);
    check_gradients(layer, random_tensor({2, 3, 2, 4, 3}, 1));
  }
  SECTION("1x1, last state, no bias") {
    ConvLSTM2d<cpu, double> layer(O{.in_channels = 3, .hidden_channels = 2, .kernel_size = 1, .bias = false,
                                    .return_sequences = false});
    check_gradients(layer, random_tensor({2, 4, 3, 3, 2}, 2));
  }
  SECTION("from an initial state, with gradients of the final state") {
    ConvLstmWithState seq(O{.in_channels = 2, .hidden_channels = 2, .kernel_size = 3}, Shape{2, 2, 3, 3});
    check_gradients(seq, random_tensor({2, 3, 2, 3, 3}, 3));
    ConvLstmWithState last(O{.in_channels = 1, .hidden_channels = 2, .kernel_size = 3, .return_sequences = false},
                           Shape{1, 2, 4, 2});
    check_gradients(last, random_tensor({1, 3, 1, 4, 2}, 4));
  }
}

TEST_CASE("ConvLSTM2d names its parameters as the torch module, and rejects bad shapes") {
  ConvLSTM2d<> layer(3, 4, 5);
  CHECK(parameter_names(layer, "rnn.") == std::vector<std::string>{"rnn.conv.weight", "rnn.conv.bias"});
  CHECK(layer.conv.weight.value.shape() == Shape{16, 7, 5, 5});
  CHECK(layer.conv.bias.value.shape() == Shape{16});
  CHECK_THROWS_AS(layer.forward(Tensor<float>({2, 3, 2, 4, 4})), ShapeError);
  CHECK_THROWS_WITH(layer.forward(Tensor<float>({2, 3, 2, 4, 4})), Catch::Contains("[2, 3, 2, 4, 4]") && Catch::Contains("3"));
  CHECK_THROWS_WITH(layer.forward(Tensor<float>({2, 3, 4, 4})), Catch::Contains("[2, 3, 4, 4]"));
  CHECK_THROWS_WITH(layer.forward(Tensor<float>({2, 3, 3, 4, 4}), {Tensor<float>({2, 4, 4, 5}), Tensor<float>()}),
                    Catch::Contains("[2, 4, 4, 5]") && Catch::Contains("[2, 4, 4, 4]"));
  CHECK_THROWS_WITH(layer.backward(Tensor<float>({2, 3, 4, 4, 4})), Catch::Contains("before forward"));
  layer.forward(Tensor<float>({2, 3, 3, 4, 4}));
  CHECK_THROWS_WITH(layer.backward(Tensor<float>({2, 4, 4, 4})), Catch::Contains("[2, 4, 4, 4]") &&
                                                                     Catch::Contains("[2, 3, 4, 4, 4]"));
  CHECK_THROWS_WITH(ConvLSTM2d<>(3, 4, 2), Catch::Contains("odd"));
}

TEST_CASE("ConvLSTM2d treats the samples of a batch independently (the threaded gate kernels too)") {
  const int64_t N = 3, S = 2, C = 2, Hc = 8, H = 16, W = 16;  // rows of 8 * 16 * 16 values
  ConvLSTM2d<> layer(C, Hc, 3, true);
  Tensor<float> x = Tensor<float>::empty({N, S, C, H, W});
  Generator g(4);
  for (auto& v : x) v = static_cast<float>(g.normal());
  Tensor<float> dy = Tensor<float>::empty({N, S, Hc, H, W});
  for (auto& v : dy) v = static_cast<float>(g.normal());
  const auto y = layer.forward(x).clone();
  const auto dx = layer.backward(dy).clone();
  for (int64_t n = 0; n < N; ++n) {
    INFO("sample " << n);
    expect_close(layer.forward(x.slice(n, n + 1).clone()), y.slice(n, n + 1).clone(), "y");
    expect_close(layer.backward(dy.slice(n, n + 1).clone()), dx.slice(n, n + 1).clone(), "dx");
  }
}
