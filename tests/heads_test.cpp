#include "stpain/models/sequence_heads.hpp"

#include <catch2/catch.hpp>

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace stpain;
using namespace stpain::testing;

static_assert(Layer<LstmHead<cpu>>);
static_assert(Layer<StackedLstmHead<cpu>>);

namespace {
const SequenceHeadOptions kSmall{.input_size = 12, .units1 = 8, .units2 = 6, .dense = 10};
}  // namespace

TEST_CASE("the four heads match their PyTorch re-implementations, forward and every gradient") {
  const safetensors::File f(fixture_path("heads.safetensors"));
  for (const char* name : {"lstm", "bilstm", "attention", "stacked"}) {
    with_sequence_head(name, kSmall, [&](auto&& head) {
      head.eval();
      expect_matches_case(head, f, name);
      // Every tensor of the torch module has a stpain parameter of the same name.
      const auto names = parameter_names(head);
      for (const auto& t : f.tensors())
        if (t.name.rfind(std::string(name) + ".param.", 0) == 0)
          CHECK(std::find(names.begin(), names.end(), t.name.substr(std::string(name).size() + 7)) != names.end());
    });
  }
  CHECK_THROWS_WITH(with_sequence_head("gru", kSmall, [](auto&&) {}), Catch::Contains("lstm, bilstm"));
}

TEST_CASE("the heads pass the gradient check (stacked head with dropout in training mode)") {
  const SequenceHeadOptions tiny{.input_size = 4, .units1 = 3, .units2 = 2, .dense = 3};
  const auto x = random_tensor({2, 4, 4}, 5);
  LstmHead<cpu, double> lstm(tiny);
  check_gradients(lstm, x, {.max_entries = 30});
  BiLstmHead<cpu, double> bilstm(tiny);
  check_gradients(bilstm, x, {.max_entries = 30});
  AttentionLstmHead<cpu, double> attention(tiny);
  check_gradients(attention, x, {.max_entries = 30});
  StackedLstmHead<cpu, double> stacked(tiny);
  check_gradients(stacked, x, {.max_entries = 30});
}

TEST_CASE("the attention head exposes its frame-to-frame weights") {
  AttentionLstmHead<cpu> head(kSmall);
  head.eval();
  head.forward(Tensor<float>::full({2, 5, 12}, 0.1f));
  const auto& w = head.attention_weights();
  REQUIRE(w.shape() == Shape{2, 5, 5});
  double row = 0;
  for (int j = 0; j < 5; ++j) row += w(1, 3, j);
  CHECK(row == Approx(1.0));  // softmax over keys
}
