#include "stpain/rnn/lstm.hpp"

#include <cmath>

#include "stpain/compose/sequential.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<LSTM<>>);
static_assert(Layer<LSTMCell<cpu, double>>);
static_assert(Layer<Sequential<LSTM<>, LSTM<>>>);

namespace {

const safetensors::File& fixture() {
  static const safetensors::File f(fixture_path("rnn.safetensors"));
  return f;
}

using LstmOptions = LSTM<>::Options;

LstmOptions options(int64_t in, int64_t hidden, int64_t layers, bool bidirectional, bool sequences) {
  return {.input_size = in, .hidden_size = hidden, .num_layers = layers, .bidirectional = bidirectional,
          .return_sequences = sequences};
}

// An LSTM run from a learnable initial state whose output is y, h_n and c_n
// flattened into one vector: checks backward(dy, d_final) and
// initial_state_grad() by central differences.
struct LstmWithState : Module<cpu, double> {
  LSTM<cpu, double> lstm;
  Parameter<double> h0, c0;
  Shape y_shape;

  explicit LstmWithState(const LSTM<cpu, double>::Options& o, int64_t batch) : lstm(o) {
    const Shape s{o.num_layers * (o.bidirectional ? 2 : 1), batch, o.hidden_size};
    h0 = Parameter<double>::make(s);
    c0 = Parameter<double>::make(s);
    h0.value = random_tensor(s, 11);
    c0.value = random_tensor(s, 12);
  }
  tensor forward(const tensor& x) {
    const tensor y = lstm.forward(x, {h0.value, c0.value});
    y_shape = y.shape();
    const auto& fin = lstm.final_state();
    tensor out = tensor::empty({y.numel() + fin.h.numel() + fin.c.numel()});
    double* p = std::copy(y.begin(), y.end(), out.data());
    p = std::copy(fin.h.begin(), fin.h.end(), p);
    std::copy(fin.c.begin(), fin.c.end(), p);
    return out;
  }
  tensor backward(const tensor& d) {
    const auto& fin = lstm.final_state();
    const int64_t ny = y_shape.numel(), nh = fin.h.numel();
    tensor dy = tensor::empty(y_shape), dh = tensor::empty(fin.h.shape()), dc = tensor::empty(fin.c.shape());
    std::copy(d.data(), d.data() + ny, dy.data());
    std::copy(d.data() + ny, d.data() + ny + nh, dh.data());
    std::copy(d.data() + ny + nh, d.data() + d.numel(), dc.data());
    tensor dx = lstm.backward(dy, {dh, dc});
    h0.grad.array() += lstm.initial_state_grad().h.array();
    c0.grad.array() += lstm.initial_state_grad().c.array();
    return dx;
  }
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    lstm.visit_parameters(f, prefix);
    f(prefix + "h0", h0);
    f(prefix + "c0", c0);
  }
};

// The same for LSTMCell: output [h', c'] side by side.
struct CellWithState : Module<cpu, double> {
  LSTMCell<cpu, double> cell;
  Parameter<double> h, c;

  CellWithState(int64_t in, int64_t hidden, int64_t batch) : cell(in, hidden) {
    h = Parameter<double>::make({batch, hidden});
    c = Parameter<double>::make({batch, hidden});
    h.value = random_tensor({batch, hidden}, 21);
    c.value = random_tensor({batch, hidden}, 22);
  }
  tensor forward(const tensor& x) {
    const tensor h1 = cell.forward(x, {h.value, c.value});
    tensor out = tensor::empty({2, h1.size(0), h1.size(1)});
    std::copy(h1.begin(), h1.end(), out.data());
    std::copy(cell.state().c.begin(), cell.state().c.end(), out.data() + h1.numel());
    return out;
  }
  tensor backward(const tensor& d) {
    const int64_t n = d.numel() / 2;
    tensor dh = tensor::empty(h.value.shape()), dc = tensor::empty(c.value.shape());
    std::copy(d.data(), d.data() + n, dh.data());
    std::copy(d.data() + n, d.data() + 2 * n, dc.data());
    tensor dx = cell.backward(dh, dc);
    h.grad.array() += cell.state_grad().h.array();
    c.grad.array() += cell.state_grad().c.array();
    return dx;
  }
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    cell.visit_parameters(f, prefix);
    f(prefix + "h", h);
    f(prefix + "c", c);
  }
};

}  // namespace

TEST_CASE("LSTM matches torch.nn.LSTM(batch_first=True)") {
  const auto& f = fixture();
  struct Case {
    const char* name;
    LstmOptions o;
  };
  for (const Case& c : {Case{"lstm_seq", options(5, 4, 1, false, true)},
                        Case{"lstm_last", options(5, 4, 1, false, false)},
                        Case{"lstm_bi_seq", options(3, 4, 1, true, true)},
                        Case{"lstm_bi_last", options(3, 4, 1, true, false)},
                        Case{"lstm_2layer_seq", options(3, 4, 2, false, true)},
                        Case{"lstm_2layer_bi_last", options(3, 3, 2, true, false)}}) {
    LSTM<> lstm(c.o);
    expect_matches_case(lstm, f, c.name);
  }
}

TEST_CASE("LSTM from an initial state matches torch, with gradients of h0, c0, h_n and c_n") {
  const auto& f = fixture();
  for (const auto& [name, o] : {std::pair{"lstm_state", options(3, 4, 1, false, true)},
                                std::pair{"lstm_2layer_bi_state", options(3, 3, 2, true, true)}}) {
    const std::string p = name;
    INFO("case " << p);
    LSTM<> lstm(o);
    load_case_parameters(lstm, f, p);
    const auto y = lstm.forward(f.load(p + ".x"), {f.load(p + ".h0"), f.load(p + ".c0")});
    expect_close(y, f.load(p + ".y"), p + ".y");
    expect_close(lstm.final_state().h, f.load(p + ".h_n"), p + ".h_n");
    expect_close(lstm.final_state().c, f.load(p + ".c_n"), p + ".c_n");
    const auto dx = lstm.backward(f.load(p + ".dy"), {f.load(p + ".dh_n"), f.load(p + ".dc_n")});
    expect_close(dx, f.load(p + ".dx"), p + ".dx");
    expect_close(lstm.initial_state_grad().h, f.load(p + ".dh0"), p + ".dh0");
    expect_close(lstm.initial_state_grad().c, f.load(p + ".dc0"), p + ".dc0");
    expect_case_gradients(lstm, f, p);
  }
}

TEST_CASE("LSTM's final state is torch's h_n and c_n, and the last-state output its top layer") {
  const auto& f = fixture();
  LSTM<> lstm(options(3, 3, 2, true, false));
  load_case_parameters(lstm, f, "lstm_2layer_bi_last");
  const auto y = lstm.forward(f.load("lstm_2layer_bi_last.x"));
  const auto& h_n = lstm.final_state().h;
  REQUIRE(h_n.shape() == Shape{4, 2, 3});
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t j = 0; j < 3; ++j) {
      CHECK(y(n, j) == h_n(2, n, j));      // layer 1, forward
      CHECK(y(n, 3 + j) == h_n(3, n, j));  // layer 1, reverse
    }
}

TEST_CASE("LSTMCell matches torch.nn.LSTMCell") {
  const auto& f = fixture();
  LSTMCell<> cell(5, 4);
  load_case_parameters(cell, f, "lstm_cell");
  const auto h1 = cell.forward(f.load("lstm_cell.x"), {f.load("lstm_cell.h"), f.load("lstm_cell.c")});
  expect_close(h1, f.load("lstm_cell.h1"), "h1");
  expect_close(cell.state().c, f.load("lstm_cell.c1"), "c1");
  const auto dx = cell.backward(f.load("lstm_cell.dh1"), f.load("lstm_cell.dc1"));
  expect_close(dx, f.load("lstm_cell.dx"), "dx");
  expect_close(cell.state_grad().h, f.load("lstm_cell.dh"), "dh");
  expect_close(cell.state_grad().c, f.load("lstm_cell.dc"), "dc");
  expect_case_gradients(cell, f, "lstm_cell");
}

TEST_CASE("LSTM gradients match central differences") {
  using O = LSTM<cpu, double>::Options;
  SECTION("one layer, sequence output") {
    LSTM<cpu, double> lstm(4, 3);
    check_gradients(lstm, random_tensor({2, 5, 4}, 1));
  }
  SECTION("one layer, last state") {
    LSTM<cpu, double> lstm(4, 3, false);
    check_gradients(lstm, random_tensor({2, 5, 4}, 2));
  }
  SECTION("bidirectional, sequence and last state") {
    LSTM<cpu, double> seq(O{.input_size = 3, .hidden_size = 3, .bidirectional = true});
    check_gradients(seq, random_tensor({2, 4, 3}, 3));
    LSTM<cpu, double> last(O{.input_size = 3, .hidden_size = 3, .bidirectional = true, .return_sequences = false});
    check_gradients(last, random_tensor({2, 4, 3}, 4));
  }
  SECTION("two layers with dropout between them (train mode), both outputs") {
    LSTM<cpu, double> seq(O{.input_size = 3, .hidden_size = 3, .num_layers = 2, .dropout = 0.3});
    check_gradients(seq, random_tensor({2, 4, 3}, 5));
    LSTM<cpu, double> last(O{.input_size = 3,
                             .hidden_size = 2,
                             .num_layers = 2,
                             .bidirectional = true,
                             .dropout = 0.3,
                             .return_sequences = false});
    check_gradients(last, random_tensor({3, 4, 3}, 6));
  }
  SECTION("without biases") {
    LSTM<cpu, double> lstm(O{.input_size = 3, .hidden_size = 2, .bias = false});
    check_gradients(lstm, random_tensor({2, 3, 3}, 7));
  }
  SECTION("from an initial state, with gradients of the final state") {
    LstmWithState uni(O{.input_size = 3, .hidden_size = 3}, 2);
    check_gradients(uni, random_tensor({2, 4, 3}, 8));
    LstmWithState deep(O{.input_size = 3, .hidden_size = 2, .num_layers = 2, .bidirectional = true}, 2);
    check_gradients(deep, random_tensor({2, 3, 3}, 9));
    LstmWithState last(O{.input_size = 2, .hidden_size = 2, .bidirectional = true, .return_sequences = false}, 3);
    check_gradients(last, random_tensor({3, 3, 2}, 10));
  }
  SECTION("LSTMCell") {
    LSTMCell<cpu, double> cell(4, 3);
    check_gradients(cell, random_tensor({2, 4}, 11));
    CellWithState with_state(4, 3, 2);
    check_gradients(with_state, random_tensor({2, 4}, 12));
  }
}

TEST_CASE("LSTM dropout acts between layers in train mode only") {
  LSTM<> lstm(LstmOptions{.input_size = 3, .hidden_size = 4, .num_layers = 2, .dropout = 0.5});
  Tensor<float> x({2, 5, 3});
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.3f * static_cast<float>(i));
  lstm.eval();
  const auto a = lstm.forward(x).clone();
  const auto b = lstm.forward(x).clone();
  CHECK(a.to_vector() == b.to_vector());
  lstm.train();
  const auto c = lstm.forward(x).clone();
  CHECK(c.to_vector() != a.to_vector());
}

TEST_CASE("LSTM parameters are named and shaped as torch's state_dict") {
  LSTM<> lstm(LstmOptions{.input_size = 5, .hidden_size = 4, .num_layers = 2, .bidirectional = true});
  CHECK(parameter_names(lstm, "rnn.") ==
        std::vector<std::string>{
            "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
            "rnn.weight_ih_l0_reverse", "rnn.weight_hh_l0_reverse", "rnn.bias_ih_l0_reverse", "rnn.bias_hh_l0_reverse",
            "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1",
            "rnn.weight_ih_l1_reverse", "rnn.weight_hh_l1_reverse", "rnn.bias_ih_l1_reverse", "rnn.bias_hh_l1_reverse"});
  CHECK(lstm.weights(0).weight_ih.value.shape() == Shape{16, 5});
  CHECK(lstm.weights(1, 1).weight_ih.value.shape() == Shape{16, 8});
  CHECK(lstm.weights(1, 1).weight_hh.value.shape() == Shape{16, 4});
  CHECK(lstm.weights(0).bias_hh.value.shape() == Shape{16});
  // torch's init: U(-1/sqrt(H), 1/sqrt(H)) = U(-0.5, 0.5) here, for every tensor.
  lstm.visit_parameters([](const std::string& name, auto& p) {
    INFO(name);
    double lo = 1, hi = -1;
    for (float v : p.value) {
      lo = std::min<double>(lo, v);
      hi = std::max<double>(hi, v);
    }
    CHECK(lo >= -0.5);
    CHECK(hi <= 0.5);
    CHECK(hi - lo > 0.5);
  });
  LSTMCell<> cell(3, 2);
  CHECK(parameter_names(cell) == std::vector<std::string>{"weight_ih", "weight_hh", "bias_ih", "bias_hh"});
  LSTM<> no_bias(LstmOptions{.input_size = 3, .hidden_size = 2, .bias = false});
  CHECK(parameter_names(no_bias) == std::vector<std::string>{"weight_ih_l0", "weight_hh_l0"});
}

TEST_CASE("LSTM rejects wrong input and state shapes, naming them") {
  LSTM<> lstm(LstmOptions{.input_size = 5, .hidden_size = 4, .num_layers = 2});
  CHECK_THROWS_AS(lstm.forward(Tensor<float>({2, 3, 6})), ShapeError);
  CHECK_THROWS_WITH(lstm.forward(Tensor<float>({2, 3, 6})), Catch::Contains("[2, 3, 6]") && Catch::Contains("5"));
  CHECK_THROWS_WITH(lstm.forward(Tensor<float>({3, 5})), Catch::Contains("[3, 5]"));
  CHECK_THROWS_WITH(lstm.forward(Tensor<float>({2, 0, 5})), Catch::Contains("[2, 0, 5]"));
  CHECK_THROWS_WITH(lstm.forward(Tensor<float>({2, 3, 5}), {Tensor<float>({2, 3, 4}), Tensor<float>()}),
                    Catch::Contains("[2, 3, 4]") && Catch::Contains("[2, 2, 4]") && Catch::Contains("h0"));
  CHECK_THROWS_WITH(lstm.backward(Tensor<float>({2, 3, 4})), Catch::Contains("before forward"));
  lstm.forward(Tensor<float>({2, 3, 5}));
  CHECK_THROWS_WITH(lstm.backward(Tensor<float>({2, 4})), Catch::Contains("[2, 4]") && Catch::Contains("[2, 3, 4]"));
  LSTMCell<> cell(3, 2);
  CHECK_THROWS_WITH(cell.forward(Tensor<float>({4, 2})), Catch::Contains("[4, 2]") && Catch::Contains("3"));
  CHECK_THROWS_WITH(cell.forward(Tensor<float>({4, 3}), {Tensor<float>({4, 3}), Tensor<float>()}),
                    Catch::Contains("[4, 3]") && Catch::Contains("[4, 2]"));
}

// ---- Keras ------------------------------------------------------------------

namespace {

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Keras' LSTM (TF 2.x, activation tanh, recurrent_activation sigmoid), as
// LSTMCell.call and _compute_carry_and_output_fused write it:
//   z = x . kernel + h . recurrent_kernel + bias   (columns: i | f | c | o)
//   i = sig(z0); f = sig(z1); c = f * c + i * tanh(z2); o = sig(z3); h = o * tanh(c)
// over x [N, T, in] in time order (or reversed: go_backwards). Returns every h_t.
std::vector<std::vector<std::vector<double>>> keras_lstm(const Tensor<double>& x, const Tensor<double>& kernel,
                                                         const Tensor<double>& recurrent, const Tensor<double>& bias,
                                                         bool go_backwards) {
  const int64_t N = x.size(0), S = x.size(1), in = x.size(2), U = recurrent.size(0);
  std::vector<std::vector<std::vector<double>>> out(N, std::vector<std::vector<double>>(S));
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> h(U, 0.0), c(U, 0.0);
    for (int64_t s = 0; s < S; ++s) {
      const int64_t t = go_backwards ? S - 1 - s : s;
      std::vector<double> z(4 * U);
      for (int64_t col = 0; col < 4 * U; ++col) {
        double v = bias[col];
        for (int64_t k = 0; k < in; ++k) v += x(n, t, k) * kernel(k, col);
        for (int64_t k = 0; k < U; ++k) v += h[k] * recurrent(k, col);
        z[col] = v;
      }
      for (int64_t u = 0; u < U; ++u) {
        const double i = sigmoid(z[u]), f = sigmoid(z[U + u]), o = sigmoid(z[3 * U + u]);
        c[u] = f * c[u] + i * std::tanh(z[2 * U + u]);
        h[u] = o * std::tanh(c[u]);
      }
      out[n][s] = h;  // s-th step processed
    }
  }
  return out;
}

}  // namespace

TEST_CASE("Keras LSTM weights convert to torch's layout without reordering the gates") {
  const int64_t N = 2, S = 4, in = 3, U = 5;
  const auto x = random_tensor({N, S, in}, 31);
  // Different weights per gate block, so a permuted gate order would show.
  const auto kernel = random_tensor({in, 4 * U}, 32, 0.6);
  const auto recurrent = random_tensor({U, 4 * U}, 33, 0.6);
  const auto bias = random_tensor({4 * U}, 34, 0.5);

  SECTION("LSTM(units, return_sequences=True)") {
    LSTM<cpu, double> lstm(in, U);
    load_keras_lstm(lstm, 0, 0, kernel, recurrent, bias);
    CHECK(lstm.weights(0).weight_ih.value(7, 2) == kernel(2, 7));
    CHECK(lstm.weights(0).weight_hh.value(13, 4) == recurrent(4, 13));
    CHECK(lstm.weights(0).bias_ih.value[9] == bias[9]);
    CHECK(lstm.weights(0).bias_hh.value[9] == 0.0);
    const auto y = lstm.forward(x);
    const auto ref = keras_lstm(x, kernel, recurrent, bias, false);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t t = 0; t < S; ++t)
        for (int64_t u = 0; u < U; ++u) CHECK(y(n, t, u) == Approx(ref[n][t][u]).margin(1e-12));
  }
  SECTION("Bidirectional(LSTM(units)) with return_sequences=False") {
    const auto kernel_b = random_tensor({in, 4 * U}, 35, 0.6);
    const auto recurrent_b = random_tensor({U, 4 * U}, 36, 0.6);
    const auto bias_b = random_tensor({4 * U}, 37, 0.5);
    LSTM<cpu, double> lstm(LSTM<cpu, double>::Options{
        .input_size = in, .hidden_size = U, .bidirectional = true, .return_sequences = false});
    load_keras_lstm(lstm, 0, 0, kernel, recurrent, bias);
    load_keras_lstm(lstm, 0, 1, kernel_b, recurrent_b, bias_b);
    const auto y = lstm.forward(x);  // [N, 2U]
    // Keras: concat(forward's last output, backward layer's last output,
    // which ran over the reversed sequence).
    const auto fwd = keras_lstm(x, kernel, recurrent, bias, false);
    const auto bwd = keras_lstm(x, kernel_b, recurrent_b, bias_b, true);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t u = 0; u < U; ++u) {
        CHECK(y(n, u) == Approx(fwd[n][S - 1][u]).margin(1e-12));
        CHECK(y(n, U + u) == Approx(bwd[n][S - 1][u]).margin(1e-12));
      }
  }
  SECTION("use_bias=False, and shape errors") {
    LSTM<cpu, double> lstm(LSTM<cpu, double>::Options{.input_size = in, .hidden_size = U, .bias = false});
    load_keras_lstm(lstm, 0, 0, kernel, recurrent);
    const auto y = lstm.forward(x);
    const auto ref = keras_lstm(x, kernel, recurrent, Tensor<double>::zeros({4 * U}), false);
    CHECK(y(1, 3, 4) == Approx(ref[1][3][4]).margin(1e-12));
    CHECK_THROWS_WITH(load_keras_lstm(lstm, 0, 0, recurrent, recurrent),
                      Catch::Contains("kernel") && Catch::Contains("[5, 20]") && Catch::Contains("[3, 20]"));
    CHECK_THROWS_AS(load_keras_lstm(lstm, 0, 1, kernel, recurrent), Error);
  }
}

TEST_CASE("LSTM treats the samples of a batch independently (the threaded gate kernels too)") {
  // 40 rows of hidden 64 split across threads in the gate kernels.
  const int64_t N = 40, S = 3, in = 6, H = 64;
  LSTM<> lstm(LstmOptions{.input_size = in, .hidden_size = H, .bidirectional = true});
  Tensor<float> x = Tensor<float>::empty({N, S, in});
  Generator g(3);
  for (auto& v : x) v = static_cast<float>(g.normal());
  Tensor<float> dy = Tensor<float>::empty({N, S, 2 * H});
  for (auto& v : dy) v = static_cast<float>(g.normal());
  const auto y = lstm.forward(x).clone();
  const auto dx = lstm.backward(dy).clone();
  for (int64_t n : {0, 17, 39}) {
    INFO("sample " << n);
    const auto y1 = lstm.forward(x.slice(n, n + 1).clone());
    expect_close(y1, y.slice(n, n + 1).clone(), "y");
    const auto dx1 = lstm.backward(dy.slice(n, n + 1).clone());
    expect_close(dx1, dx.slice(n, n + 1).clone(), "dx");
  }
}
