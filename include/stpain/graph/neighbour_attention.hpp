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
// The sums run over the masks' edges only (a sparse product: on the 68-point
// mesh the two masks hold 16% of V * V), frames split between the threads.
// Parameters (recurrent only), torch.nn.LSTM names: attention.weight_ih_l0
// [4V, F], attention.weight_hh_l0 [4V, V], attention.bias_ih_l0, attention.bias_hh_l0
// (a Keras ConvLSTM2D(V, 1x1) kernel [1, 1, F, 4V] is weight_ih_l0 transposed).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include <Eigen/Core>

#include "stpain/backend/simd.hpp"
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

namespace attention_detail {
// weighted_row_sum for f features in NV vectors, the last one ending at f
// (it overlaps the one before when f is not a multiple of the vector width;
// the overlap is recomputed identically). Two edges at a time into two sets
// of accumulators, so the additions do not wait on each other.
template <int64_t NV, class T>
void weighted_row_sum_vectors(const T* coef, const int64_t* index, int64_t edges, const T* rows, int64_t f, T* out) {
  using V = typename simd::Vector<T>::type;
  constexpr int64_t L = simd::Vector<T>::lanes;
  int64_t offset[NV];
  for (int64_t k = 0; k < NV; ++k) offset[k] = std::min(k * L, f - L);
  V a[NV], b[NV];
  simd::unroll<NV>([&](auto k) { a[k] = V{}, b[k] = V{}; });
  int64_t e = 0;
  for (; e + 2 <= edges; e += 2) {
    const T* x0 = rows + index[e] * f;
    const T* x1 = rows + index[e + 1] * f;
    simd::unroll<NV>([&](auto k) {
      a[k] += coef[e] * simd::load<V>(x0 + offset[k]);
      b[k] += coef[e + 1] * simd::load<V>(x1 + offset[k]);
    });
  }
  if (e < edges) {
    const T* x0 = rows + index[e] * f;
    simd::unroll<NV>([&](auto k) { a[k] += coef[e] * simd::load<V>(x0 + offset[k]); });
  }
  simd::unroll<NV>([&](auto k) {
    const V sum = a[k] + b[k];
    simd::store(out + offset[k], sum);
  });
}
}  // namespace attention_detail

// out[0, f) = sum_e coef[e] rows[index[e] * f + (0, f)] over `edges` edges,
// the sums in registers (up to 8 vectors of features at a time).
template <class T>
void weighted_row_sum(cpu, const T* coef, const int64_t* index, int64_t edges, const T* rows, int64_t f, T* out) {
  constexpr int64_t L = simd::Vector<T>::lanes;
  if (f < L || f > 8 * L) {
    std::fill_n(out, f, T(0));
    for (int64_t e = 0; e < edges; ++e) {
      const T* x = rows + index[e] * f;
#pragma omp simd
      for (int64_t i = 0; i < f; ++i) out[i] += coef[e] * x[i];
    }
    return;
  }
  using namespace attention_detail;
  switch ((f + L - 1) / L) {
    case 1: return weighted_row_sum_vectors<1>(coef, index, edges, rows, f, out);
    case 2: return weighted_row_sum_vectors<2>(coef, index, edges, rows, f, out);
    case 3: return weighted_row_sum_vectors<3>(coef, index, edges, rows, f, out);
    case 4: return weighted_row_sum_vectors<4>(coef, index, edges, rows, f, out);
    case 5: return weighted_row_sum_vectors<5>(coef, index, edges, rows, f, out);
    case 6: return weighted_row_sum_vectors<6>(coef, index, edges, rows, f, out);
    case 7: return weighted_row_sum_vectors<7>(coef, index, edges, rows, f, out);
    default: return weighted_row_sum_vectors<8>(coef, index, edges, rows, f, out);
  }
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
    offsets_.push_back(0);
    for (const auto& m : masks) {
      STPAIN_CHECK(m.rows() == v_ && m.cols() == v_, ShapeError, "NeighbourAttention: masks must all be ", v_, "x", v_);
      for (int64_t v = 0; v < v_; ++v) {
        for (int64_t w = 0; w < v_; ++w)
          if (m(v, w) != 0) neighbour_.push_back(w);
        offsets_.push_back(static_cast<int64_t>(neighbour_.size()));
      }
    }
    // Averaging: every neighbour of v weighs 1 / |neighbours of v|.
    uniform_.resize(neighbour_.size());
    for (int64_t r = 0; r < hops() * v_; ++r)
      for (int64_t e = offsets_[r]; e < offsets_[r + 1]; ++e)
        uniform_[static_cast<size_t>(e)] = T(1) / static_cast<T>(offsets_[r + 1] - offsets_[r]);
    // The same edges grouped by w, for dx: (row v * hops + hop of dy, forward edge).
    reverse_offsets_.assign(static_cast<size_t>(v_ + 1), 0);
    for (int64_t w : neighbour_) ++reverse_offsets_[static_cast<size_t>(w + 1)];
    for (int64_t w = 0; w < v_; ++w) reverse_offsets_[w + 1] += reverse_offsets_[w];
    reverse_row_.resize(neighbour_.size());
    reverse_edge_.resize(neighbour_.size());
    uniform_reverse_.resize(neighbour_.size());
    std::vector<int64_t> fill(reverse_offsets_.begin(), reverse_offsets_.end() - 1);
    for (int64_t r = 0; r < hops() * v_; ++r)
      for (int64_t e = offsets_[r]; e < offsets_[r + 1]; ++e) {
        const auto slot = static_cast<size_t>(fill[static_cast<size_t>(neighbour_[static_cast<size_t>(e)])]++);
        reverse_row_[slot] = (r % v_) * hops() + r / v_;
        reverse_edge_[slot] = e;
        uniform_reverse_[slot] = uniform_[static_cast<size_t>(e)];
      }
    if (mode == AttentionMode::recurrent) lstm_.emplace(features, v_, /*return_sequences=*/true);
  }

  int64_t hops() const { return static_cast<int64_t>(offsets_.size() - 1) / v_; }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == 4 && x.size(2) == v_ && x.size(3) == features_, ShapeError, describe(), ": input ",
                 x.shape().str(), " is not [N, T, ", v_, ", ", features_, "]");
    x_ = x;
    dense_coefs_ = tensor();
    const int64_t n = x.size(0), t = x.size(1), nt = n * t, f = features_, h = hops(), edges = num_edges();
    // Logits e [N, T, V(v), V(w)]: every node's sequence through the LSTM.
    if (lstm_) {
      tensor sequences = tensor::empty({n, v_, t, f});  // [N*V, T, F]
      backend::swap_middle_axes(B{}, x.data(), sequences.data(), n, t, v_, f);
      const tensor hidden = lstm_->forward(sequences.reshape({n * v_, t, f}));  // [N*V, T, V(w)]
      logits_ = tensor::empty({n, t, v_, v_});
      backend::swap_middle_axes(B{}, hidden.data(), logits_.data(), n, v_, t, v_);
      coefs_ = tensor::empty({nt, edges});  // per frame, the coefficients of every edge
    }
    tensor y = tensor::empty({n, t, v_, f * h});
    B::parallel_for(nt, frame_grain(), [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        const T* c = coefficients(s);
        if (lstm_) masked_softmax(logits_.data() + s * v_ * v_, coefs_.data() + s * edges);
        const T* xs = x.data() + s * v_ * f;
        for (int64_t r = 0; r < h * v_; ++r)  // y_s[v, hop*F:(hop+1)*F] = sum_w coefs[v, w] x_s[w]
          backend::weighted_row_sum(B{}, c + offsets_[r], neighbour_.data() + offsets_[r], offsets_[r + 1] - offsets_[r],
                                    xs, f, y.data() + (s * v_ + r % v_) * f * h + r / v_ * f);
      }
    });
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(x_, "NeighbourAttention");
    const int64_t n = x_.size(0), t = x_.size(1), nt = n * t, f = features_, h = hops(), edges = num_edges();
    expect_shape(dy.shape(), Shape{n, t, v_, f * h}, describe() + ".backward dy");
    tensor dx = tensor::empty(x_.shape());
    tensor dlogits;
    if (lstm_) dlogits = tensor::zeros({n, t, v_, v_});
    B::parallel_for(nt, frame_grain(), [&](int64_t s0, int64_t s1) {
      std::vector<T> reverse_coefs(lstm_ ? static_cast<size_t>(edges) : 0), dcoefs(reverse_coefs.size());
      for (int64_t s = s0; s < s1; ++s) {
        const T* c = coefficients(s);
        const T* xs = x_.data() + s * v_ * f;
        const T* dys = dy.data() + s * v_ * f * h;
        // dx_s[w] = sum over the edges (hop, v, w) of coefs[v, w] dg_s[v]: rows (v, hop) of dy_s.
        const T* rc = uniform_reverse_.data();
        if (lstm_) {
          for (int64_t e = 0; e < edges; ++e) reverse_coefs[static_cast<size_t>(e)] = c[reverse_edge_[static_cast<size_t>(e)]];
          rc = reverse_coefs.data();
        }
        for (int64_t w = 0; w < v_; ++w)
          backend::weighted_row_sum(B{}, rc + reverse_offsets_[w], reverse_row_.data() + reverse_offsets_[w],
                                    reverse_offsets_[w + 1] - reverse_offsets_[w], dys, f, dx.data() + (s * v_ + w) * f);
        if (!lstm_) continue;
        for (int64_t r = 0; r < h * v_; ++r) {  // dcoefs[v, w] = dg_s[v] . x_s[w]
          const T* g = dys + (r % v_) * f * h + r / v_ * f;
          for (int64_t e = offsets_[r]; e < offsets_[r + 1]; ++e) {
            const T* xw = xs + neighbour_[static_cast<size_t>(e)] * f;
            T dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int64_t i = 0; i < f; ++i) dot += g[i] * xw[i];
            dcoefs[static_cast<size_t>(e)] = dot;
          }
        }
        masked_softmax_backward(c, dcoefs.data(), dlogits.data() + s * v_ * v_);
      }
    });
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
  const tensor& attention_weights() const {
    if (!dense_coefs_.defined()) {
      const int64_t distinct = lstm_ ? (coefs_.defined() ? coefs_.size(0) : 0) : 1, h = hops();
      dense_coefs_ = tensor::zeros({h, distinct, v_, v_});
      for (int64_t hop = 0; hop < h; ++hop)
        for (int64_t s = 0; s < distinct; ++s)
          for (int64_t v = 0; v < v_; ++v) {
            const int64_t r = hop * v_ + v;
            for (int64_t e = offsets_[r]; e < offsets_[r + 1]; ++e)
              dense_coefs_[((hop * distinct + s) * v_ + v) * v_ + neighbour_[static_cast<size_t>(e)]] = coefficients(s)[e];
          }
    }
    return dense_coefs_;
  }
  std::string describe() const {
    return detail::concat("NeighbourAttention(", mode_ == AttentionMode::recurrent ? "recurrent" : "averaging", ", V=", v_,
                          ", F=", features_, ", hops=", hops(), ")");
  }

 private:
  // Every (hop, v, w) with mask_hop[v, w] = 1, hop-major then v-major: row
  // r = hop * V + v holds edges [offsets_[r], offsets_[r + 1]).
  int64_t num_edges() const { return offsets_.back(); }
  // The coefficient of every edge in frame s.
  const T* coefficients(int64_t s) const { return lstm_ ? coefs_.data() + s * num_edges() : uniform_.data(); }
  // Frames per parallel chunk: at least ~64K multiply-adds.
  int64_t frame_grain() const { return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, num_edges() * features_)); }

  // coefs[e] = softmax over the edges of row r of logits[v(r), w(e)], for one frame.
  void masked_softmax(const T* logits, T* coefs) const {
    for (int64_t r = 0; r < hops() * v_; ++r) {
      const T* l = logits + (r % v_) * v_;
      const int64_t e0 = offsets_[r], e1 = offsets_[r + 1];
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t e = e0; e < e1; ++e) m = std::max(m, l[neighbour_[static_cast<size_t>(e)]]);
      T sum = 0;
      for (int64_t e = e0; e < e1; ++e) sum += coefs[e] = std::exp(l[neighbour_[static_cast<size_t>(e)]] - m);
      const T inv = sum > 0 ? T(1) / sum : T(0);
      for (int64_t e = e0; e < e1; ++e) coefs[e] *= inv;
    }
  }
  // dlogits[v, w] += coefs * (dcoefs - sum_w coefs * dcoefs) over each row's edges, for one frame.
  void masked_softmax_backward(const T* coefs, const T* dcoefs, T* dlogits) const {
    for (int64_t r = 0; r < hops() * v_; ++r) {
      const int64_t e0 = offsets_[r], e1 = offsets_[r + 1];
      T dot = 0;
      for (int64_t e = e0; e < e1; ++e) dot += coefs[e] * dcoefs[e];
      T* dl = dlogits + (r % v_) * v_;
      for (int64_t e = e0; e < e1; ++e) dl[neighbour_[static_cast<size_t>(e)]] += coefs[e] * (dcoefs[e] - dot);
    }
  }

  AttentionMode mode_;
  int64_t features_, v_ = 0;
  std::vector<int64_t> offsets_, neighbour_;
  std::vector<int64_t> reverse_offsets_, reverse_row_, reverse_edge_;
  std::vector<T> uniform_, uniform_reverse_;
  std::optional<LSTM<B, T>> lstm_;
  tensor x_, logits_, coefs_;
  mutable tensor dense_coefs_;
};

}  // namespace stpain
