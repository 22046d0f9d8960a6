#pragma once
// NeighbourAttention: the paper's recurrent attention over a landmark graph.
// For each hop mask M_h (the 1-hop adjacency A and the 2-hop reachability A2,
// self-links included), every node v takes a weighted mean of its neighbours'
// features: g_h[n,t,v] = sum_w coefs_h[n,t,v,w] x[n,t,w], where coefs_h is a
// softmax over the neighbours w of v (w with M_h[v,w] = 1) of logits e[n,t,v,w].
// The outputs of the hops are concatenated: [N, T, V, F] -> [N, T, V, F * hops].
//   recurrent (default, the paper): e comes from a ConvLSTM with a 1x1 kernel
//     and V hidden channels run over time on x with the nodes as its spatial
//     axis, so the attention of node v over w follows the clip's history. A
//     1x1 ConvLSTM is exactly an LSTM run on every node's sequence with shared
//     weights, which is how it is computed (one fast LSTM over N*V sequences).
//   averaging: e = 0, i.e. plain neighbour averaging: what the authors' final
//     code reduces to (their GRU's single score per node cancels in the softmax).
// Parameters (recurrent only), torch.nn.LSTM names: attention.weight_ih_l0
// [4V, F], attention.weight_hh_l0 [4V, V], attention.bias_ih_l0, attention.bias_hh_l0
// (a Keras ConvLSTM2D(V, 1x1) kernel [1, 1, F, 4V] is weight_ih_l0 transposed).
#include <optional>
#include <vector>

#include <Eigen/Core>

#include "stpain/rnn/lstm.hpp"

namespace stpain {

enum class AttentionMode { recurrent, averaging };

namespace backend {
// [outer, a, b, inner] -> [outer, b, a, inner]
template <class T>
void swap_middle_axes(cpu, const T* x, T* y, int64_t outer, int64_t a, int64_t b, int64_t inner) {
  parallel_for(outer * a, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t o = r / a, i = r % a;
      for (int64_t j = 0; j < b; ++j) std::copy_n(x + ((o * a + i) * b + j) * inner, inner, y + ((o * b + j) * a + i) * inner);
    }
  });
}
}  // namespace backend

template <class B = cpu, class T = float>
class NeighbourAttention : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;

  // masks: one 0/1 [V, V] matrix per hop; features: F.
  NeighbourAttention(const std::vector<Eigen::MatrixXd>& masks, int64_t features,
                     AttentionMode mode = AttentionMode::recurrent)
      : mode_(mode), features_(features) {
    STPAIN_CHECK(!masks.empty(), ShapeError, "NeighbourAttention: no hop masks");
    v_ = masks[0].rows();
    for (const auto& m : masks) {
      STPAIN_CHECK(m.rows() == v_ && m.cols() == v_, ShapeError, "NeighbourAttention: masks must all be ", v_, "x", v_);
      masks_.push_back(m.cast<T>());
    }
    if (mode == AttentionMode::recurrent) lstm_.emplace(features, v_, /*return_sequences=*/true);
  }

  int64_t hops() const { return static_cast<int64_t>(masks_.size()); }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == 4 && x.size(2) == v_ && x.size(3) == features_, ShapeError, describe(), ": input ",
                 x.shape().str(), " is not [N, T, ", v_, ", ", features_, "]");
    x_ = x;
    const int64_t n = x.size(0), t = x.size(1), nt = n * t, f = features_, h = hops();
    // Logits e [N, T, V(v), V(w)]: every node's sequence through the LSTM.
    if (lstm_) {
      tensor sequences = tensor::empty({n, v_, t, f});  // [N*V, T, F]
      backend::swap_middle_axes(B{}, x.data(), sequences.data(), n, t, v_, f);
      const tensor hidden = lstm_->forward(sequences.reshape({n * v_, t, f}));  // [N*V, T, V(w)]
      logits_ = tensor::empty({n, t, v_, v_});
      backend::swap_middle_axes(B{}, hidden.data(), logits_.data(), n, v_, t, v_);
    }
    // Without the LSTM the coefficients are the same for every (n, t).
    const int64_t distinct = lstm_ ? nt : 1;
    coefs_ = tensor::empty({h, distinct, v_, v_});
    tensor y = tensor::empty({n, t, v_, f * h});
    for (int64_t hop = 0; hop < h; ++hop) {
      T* c = coefs_.data() + hop * distinct * v_ * v_;
      if (lstm_) masked_softmax(logits_.data(), masks_[static_cast<size_t>(hop)], c, nt);
      else uniform_neighbours(masks_[static_cast<size_t>(hop)], c);
      const int64_t c_stride = lstm_ ? v_ * v_ : 0;
      B::parallel_for(nt, 4, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s)  // y_s[:, hop*F:(hop+1)*F] = coefs_s [V, V] x_s [V, F]
          B::gemm(false, false, v_, f, v_, T(1), c + s * c_stride, v_, x.data() + s * v_ * f, f, T(0),
                  y.data() + s * v_ * f * h + hop * f, f * h);
      });
    }
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(x_, "NeighbourAttention");
    const int64_t n = x_.size(0), t = x_.size(1), nt = n * t, f = features_, h = hops();
    expect_shape(dy.shape(), Shape{n, t, v_, f * h}, describe() + ".backward dy");
    tensor dx = tensor::zeros(x_.shape());
    tensor dlogits, dcoefs;
    if (lstm_) {
      dlogits = tensor::zeros({n, t, v_, v_});
      dcoefs = tensor::empty({nt, v_, v_});
    }
    const int64_t distinct = lstm_ ? nt : 1, c_stride = lstm_ ? v_ * v_ : 0;
    for (int64_t hop = 0; hop < h; ++hop) {
      const T* c = coefs_.data() + hop * distinct * v_ * v_;
      B::parallel_for(nt, 4, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s) {
          const T* g = dy.data() + s * v_ * f * h + hop * f;
          // dx_s += coefs_s^T dg_s ; dcoefs_s = dg_s x_s^T
          B::gemm(true, false, v_, f, v_, T(1), c + s * c_stride, v_, g, f * h, T(1), dx.data() + s * v_ * f, f);
          if (lstm_)
            B::gemm(false, true, v_, v_, f, T(1), g, f * h, x_.data() + s * v_ * f, f, T(0), dcoefs.data() + s * v_ * v_, v_);
        }
      });
      if (lstm_) masked_softmax_backward(c, dcoefs.data(), dlogits.data(), masks_[static_cast<size_t>(hop)], nt);
    }
    if (lstm_) {
      tensor dhidden = tensor::empty({n * v_, t, v_});
      backend::swap_middle_axes(B{}, dlogits.data(), dhidden.data(), n, t, v_, v_);
      const tensor dsequences = lstm_->backward(dhidden);  // [N*V, T, F]
      tensor dx_lstm = tensor::empty(x_.shape());
      backend::swap_middle_axes(B{}, dsequences.data(), dx_lstm.data(), n, v_, t, f);
      dx.array() += dx_lstm.array();
    }
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    if (lstm_) lstm_->visit_parameters(f, prefix + "attention.");
  }
  void train(bool on = true) {
    this->training_ = on;
    if (lstm_) lstm_->train(on);
  }

  // coefs of the last forward, [hops, N*T, V, V] (row v: v's weights over w);
  // [hops, 1, V, V] when averaging (the same for every frame).
  const tensor& attention_weights() const { return coefs_; }
  std::string describe() const {
    return detail::concat("NeighbourAttention(", mode_ == AttentionMode::recurrent ? "recurrent" : "averaging", ", V=", v_,
                          ", F=", features_, ", hops=", hops(), ")");
  }

 private:
  using Mask = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

  // coefs[s, v, w] = softmax over {w : mask[v, w] = 1} of logits[s, v, w]; 0 elsewhere.
  void masked_softmax(const T* logits, const Mask& mask, T* coefs, int64_t nt) const {
    parallel_for(nt * v_, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t v = r % v_;
        const T* l = logits + r * v_;
        T* c = coefs + r * v_;
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t w = 0; w < v_; ++w)
          if (mask(v, w) != 0) m = std::max(m, l[w]);
        T sum = 0;
        for (int64_t w = 0; w < v_; ++w) sum += c[w] = mask(v, w) != 0 ? std::exp(l[w] - m) : T(0);
        const T inv = sum > 0 ? T(1) / sum : T(0);
        for (int64_t w = 0; w < v_; ++w) c[w] *= inv;
      }
    });
  }
  // coefs[v, w] = 1 / |neighbours of v| on the mask.
  void uniform_neighbours(const Mask& mask, T* coefs) const {
    for (int64_t v = 0; v < v_; ++v) {
      const T count = mask.row(v).sum();
      for (int64_t w = 0; w < v_; ++w) coefs[v * v_ + w] = mask(v, w) != 0 ? T(1) / count : T(0);
    }
  }
  // dlogits += coefs * (dcoefs - sum_w coefs * dcoefs), zero outside the mask.
  void masked_softmax_backward(const T* coefs, const T* dcoefs, T* dlogits, const Mask& mask, int64_t nt) const {
    parallel_for(nt * v_, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t v = r % v_;
        const T* c = coefs + r * v_;
        const T* dc = dcoefs + r * v_;
        T dot = 0;
        for (int64_t w = 0; w < v_; ++w) dot += c[w] * dc[w];
        for (int64_t w = 0; w < v_; ++w)
          if (mask(v, w) != 0) dlogits[r * v_ + w] += c[w] * (dc[w] - dot);
      }
    });
  }

  AttentionMode mode_;
  int64_t features_, v_ = 0;
  std::vector<Mask> masks_;
  std::optional<LSTM<B, T>> lstm_;
  tensor x_, logits_, coefs_;
};

}  // namespace stpain
