#pragma once
// The four sequence heads of the visual experiment (the authors' Keras code),
// over per-frame features [N, T, F] -> logits [N, classes]:
//   LstmHead            LSTM(128, seq) -> LSTM(64) -> Dense(128, relu) -> Dense(2)
//   BiLstmHead          Bi(LSTM 128, seq) -> Bi(LSTM 64) -> Dense(128, relu) -> Dense(2)
//   AttentionLstmHead   LSTM(128, seq) -> dot-product self-attention (no scaling)
//                       -> LSTM(64) -> Dense(128, relu) -> Dense(2)
//   StackedLstmHead     Bi(LSTM 128, seq) -> Bi(LSTM 64, seq) -> LSTM(64)
//                       -> Dense(128, relu) -> Dropout(0.25) -> Dense(2)
// Sizes are options (defaults as the authors'); parameter names are those of
// the PyTorch re-implementation in tools/fixtures/heads.py (lstm1, lstm2,
// lstm3, fc1, fc2 with torch.nn.LSTM / Linear names inside).
#include <string>

#include "stpain/compose/sequential.hpp"
#include "stpain/layers/activations.hpp"
#include "stpain/layers/dropout.hpp"
#include "stpain/layers/linear.hpp"
#include "stpain/rnn/attention.hpp"
#include "stpain/rnn/lstm.hpp"

namespace stpain {

struct SequenceHeadOptions {
  int64_t input_size = 2048;  // ConvNeXt-XLarge features
  int64_t units1 = 128;       // first recurrent layer (per direction)
  int64_t units2 = 64;        // second (and third) recurrent layer
  int64_t dense = 128;
  int64_t classes = 2;
  double dropout = 0.25;      // stacked head only, before the classifier
};

namespace detail {
template <class B, class T>
LSTM<B, T> lstm(int64_t in, int64_t hidden, bool bidirectional, bool sequences) {
  return LSTM<B, T>(typename LSTM<B, T>::Options{
      .input_size = in, .hidden_size = hidden, .bidirectional = bidirectional, .return_sequences = sequences});
}
}  // namespace detail

template <class B = cpu, class T = float>
struct LstmHead : Sequential<Named<"lstm1", LSTM<B, T>>, Named<"lstm2", LSTM<B, T>>, Named<"fc1", Linear<B, T>>,
                             ReLU<B, T>, Named<"fc2", Linear<B, T>>> {
  static constexpr const char* name = "lstm";
  explicit LstmHead(const SequenceHeadOptions& o = {})
      : LstmHead::Sequential(detail::lstm<B, T>(o.input_size, o.units1, false, true),
                             detail::lstm<B, T>(o.units1, o.units2, false, false), Linear<B, T>(o.units2, o.dense),
                             ReLU<B, T>(), Linear<B, T>(o.dense, o.classes)) {}
};

template <class B = cpu, class T = float>
struct BiLstmHead : Sequential<Named<"lstm1", LSTM<B, T>>, Named<"lstm2", LSTM<B, T>>, Named<"fc1", Linear<B, T>>,
                               ReLU<B, T>, Named<"fc2", Linear<B, T>>> {
  static constexpr const char* name = "bilstm";
  explicit BiLstmHead(const SequenceHeadOptions& o = {})
      : BiLstmHead::Sequential(detail::lstm<B, T>(o.input_size, o.units1, true, true),
                               detail::lstm<B, T>(2 * o.units1, o.units2, true, false),
                               Linear<B, T>(2 * o.units2, o.dense), ReLU<B, T>(), Linear<B, T>(o.dense, o.classes)) {}
};

template <class B = cpu, class T = float>
struct AttentionLstmHead
    : Sequential<Named<"lstm1", LSTM<B, T>>, DotProductSelfAttention<B, T>, Named<"lstm2", LSTM<B, T>>,
                 Named<"fc1", Linear<B, T>>, ReLU<B, T>, Named<"fc2", Linear<B, T>>> {
  static constexpr const char* name = "attention";
  explicit AttentionLstmHead(const SequenceHeadOptions& o = {})
      : AttentionLstmHead::Sequential(detail::lstm<B, T>(o.input_size, o.units1, false, true),
                                      DotProductSelfAttention<B, T>(false),
                                      detail::lstm<B, T>(o.units1, o.units2, false, false),
                                      Linear<B, T>(o.units2, o.dense), ReLU<B, T>(), Linear<B, T>(o.dense, o.classes)) {}
  // [N, T, T] weights of the last forward: how much each frame attends to each other.
  const Tensor<T, B>& attention_weights() const { return this->template get<1>().attention_weights(); }
};

template <class B = cpu, class T = float>
struct StackedLstmHead
    : Sequential<Named<"lstm1", LSTM<B, T>>, Named<"lstm2", LSTM<B, T>>, Named<"lstm3", LSTM<B, T>>,
                 Named<"fc1", Linear<B, T>>, ReLU<B, T>, Dropout<B, T>, Named<"fc2", Linear<B, T>>> {
  static constexpr const char* name = "stacked";
  explicit StackedLstmHead(const SequenceHeadOptions& o = {})
      : StackedLstmHead::Sequential(detail::lstm<B, T>(o.input_size, o.units1, true, true),
                                    detail::lstm<B, T>(2 * o.units1, o.units2, true, true),
                                    detail::lstm<B, T>(2 * o.units2, o.units2, false, false),
                                    Linear<B, T>(o.units2, o.dense), ReLU<B, T>(), Dropout<B, T>(o.dropout),
                                    Linear<B, T>(o.dense, o.classes)) {}
};

// Calls f(HeadType{options}) for the head named "lstm", "bilstm", "attention" or "stacked".
template <class B = cpu, class T = float, class F>
decltype(auto) with_sequence_head(const std::string& name, const SequenceHeadOptions& o, F&& f) {
  if (name == LstmHead<B, T>::name) return f(LstmHead<B, T>(o));
  if (name == BiLstmHead<B, T>::name) return f(BiLstmHead<B, T>(o));
  if (name == AttentionLstmHead<B, T>::name) return f(AttentionLstmHead<B, T>(o));
  if (name == StackedLstmHead<B, T>::name) return f(StackedLstmHead<B, T>(o));
  throw Error("unknown sequence head \"" + name + "\" (lstm, bilstm, attention or stacked)");
}

}  // namespace stpain
