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
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include <Eigen/Core>

#include "stpain/backend/edge_lists.hpp"
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

// The cpu kernels of NeighbourAttention over EdgeLists (the thrust ones are
// in backend/thrust/graph_attention.hpp); frames split between the threads.
namespace attention_detail {
// Frames per parallel chunk: at least ~64K multiply-adds.
inline int64_t frame_grain(int64_t work_per_frame) { return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, work_per_frame)); }
}  // namespace attention_detail

// coefs[s, e] = softmax over the edges of row r of logits[s, v(r), w(e)].
template <class T>
void graph_masked_softmax(cpu, const EdgeLists& g, const T* logits, T* coefs, int64_t frames) {
  const int64_t V = g.nodes;
  parallel_for(frames, attention_detail::frame_grain(4 * g.edges), [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t r = 0; r < g.rows(); ++r) {
        const T* l = logits + (s * V + r % V) * V;
        T* c = coefs + s * g.edges;
        const int64_t e0 = g.offsets[r], e1 = g.offsets[r + 1];
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t e = e0; e < e1; ++e) m = std::max(m, l[g.neighbour[e]]);
        T sum = 0;
        for (int64_t e = e0; e < e1; ++e) sum += c[e] = std::exp(l[g.neighbour[e]] - m);
        const T inv = sum > 0 ? T(1) / sum : T(0);
        for (int64_t e = e0; e < e1; ++e) c[e] *= inv;
      }
  });
}

// y[s, v, hop*F + i] = sum over row r = (hop, v) of coefs[s * coef_stride + e] x[s, w(e), i]
// (coef_stride 0: the same coefficients for every frame).
template <class T>
void graph_aggregate(cpu, const EdgeLists& g, const T* coefs, int64_t coef_stride, const T* x, T* y, int64_t frames,
                     int64_t f) {
  const int64_t V = g.nodes, h = g.hops;
  parallel_for(frames, attention_detail::frame_grain(g.edges * f), [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t r = 0; r < g.rows(); ++r)
        weighted_row_sum(cpu{}, coefs + s * coef_stride + g.offsets[r], g.neighbour + g.offsets[r],
                         g.offsets[r + 1] - g.offsets[r], x + s * V * f, f, y + (s * V + r % V) * f * h + r / V * f);
  });
}

// dx[s, w, i] = sum over the edges (hop, v, w) of coefs[s * coef_stride + e] dy[s, v, hop*F + i].
template <class T>
void graph_aggregate_backward(cpu, const EdgeLists& g, const T* coefs, int64_t coef_stride, const T* dy, T* dx,
                              int64_t frames, int64_t f) {
  const int64_t V = g.nodes, h = g.hops;
  parallel_for(frames, attention_detail::frame_grain(g.edges * f), [&](int64_t s0, int64_t s1) {
    std::vector<T> reverse_coefs(static_cast<size_t>(g.edges));  // the frame's coefficients in slot order
    for (int64_t s = s0; s < s1; ++s) {
      if (s == s0 || coef_stride != 0)
        for (int64_t k = 0; k < g.edges; ++k) reverse_coefs[static_cast<size_t>(k)] = coefs[s * coef_stride + g.reverse_edge[k]];
      for (int64_t w = 0; w < V; ++w)
        weighted_row_sum(cpu{}, reverse_coefs.data() + g.reverse_offsets[w], g.reverse_row + g.reverse_offsets[w],
                         g.reverse_offsets[w + 1] - g.reverse_offsets[w], dy + s * V * f * h, f, dx + (s * V + w) * f);
    }
  });
}

// dcoefs[s, e] = dy[s, v(e), hop(e)*F : +F] . x[s, w(e), :].
template <class T>
void graph_edge_dots(cpu, const EdgeLists& g, const T* dy, const T* x, T* dcoefs, int64_t frames, int64_t f) {
  const int64_t V = g.nodes, h = g.hops;
  parallel_for(frames, attention_detail::frame_grain(g.edges * f), [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t e = 0; e < g.edges; ++e) {
        const int64_t r = g.row[e];
        const T* d = dy + (s * V + r % V) * f * h + r / V * f;
        const T* xw = x + (s * V + g.neighbour[e]) * f;
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t i = 0; i < f; ++i) dot += d[i] * xw[i];
        dcoefs[s * g.edges + e] = dot;
      }
  });
}

// dlogits[s, v, w(e)] += coefs * (dcoefs - sum over the row of coefs * dcoefs).
template <class T>
void graph_masked_softmax_backward(cpu, const EdgeLists& g, const T* coefs, const T* dcoefs, T* dlogits, int64_t frames) {
  const int64_t V = g.nodes;
  parallel_for(frames, attention_detail::frame_grain(4 * g.edges), [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t r = 0; r < g.rows(); ++r) {
        const T* c = coefs + s * g.edges;
        const T* dc = dcoefs + s * g.edges;
        const int64_t e0 = g.offsets[r], e1 = g.offsets[r + 1];
        T dot = 0;
        for (int64_t e = e0; e < e1; ++e) dot += c[e] * dc[e];
        T* dl = dlogits + (s * V + r % V) * V;
        for (int64_t e = e0; e < e1; ++e) dl[g.neighbour[e]] += c[e] * (dc[e] - dot);
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
    std::vector<T> uniform(neighbour_.size());
    std::vector<int64_t> edge_row(neighbour_.size());
    for (int64_t r = 0; r < hops() * v_; ++r)
      for (int64_t e = offsets_[r]; e < offsets_[r + 1]; ++e) {
        uniform[static_cast<size_t>(e)] = T(1) / static_cast<T>(offsets_[r + 1] - offsets_[r]);
        edge_row[static_cast<size_t>(e)] = r;
      }
    // The same edges grouped by w, for dx: (row v * hops + hop of dy, forward edge).
    std::vector<int64_t> reverse_offsets(static_cast<size_t>(v_ + 1), 0), reverse_row(neighbour_.size()),
        reverse_edge(neighbour_.size());
    for (int64_t w : neighbour_) ++reverse_offsets[static_cast<size_t>(w + 1)];
    for (int64_t w = 0; w < v_; ++w) reverse_offsets[w + 1] += reverse_offsets[w];
    std::vector<int64_t> fill(reverse_offsets.begin(), reverse_offsets.end() - 1);
    for (int64_t r = 0; r < hops() * v_; ++r)
      for (int64_t e = offsets_[r]; e < offsets_[r + 1]; ++e) {
        const auto slot = static_cast<size_t>(fill[static_cast<size_t>(neighbour_[static_cast<size_t>(e)])]++);
        reverse_row[slot] = (r % v_) * hops() + r / v_;
        reverse_edge[slot] = e;
      }
    // What the kernels read, in B's memory.
    auto on_b = [](const std::vector<int64_t>& v) { return Tensor<int64_t, B>::from({static_cast<int64_t>(v.size())}, v); };
    uniform_ = tensor::from({static_cast<int64_t>(uniform.size())}, uniform);
    edge_tensors_ = {on_b(offsets_), on_b(neighbour_), on_b(edge_row), on_b(reverse_offsets), on_b(reverse_edge), on_b(reverse_row)};
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
      backend::graph_masked_softmax(B{}, edge_lists(), logits_.data(), coefs_.data(), nt);
    }
    tensor y = tensor::empty({n, t, v_, f * h});
    backend::graph_aggregate(B{}, edge_lists(), coefficients(), coefficient_stride(), x.data(), y.data(), nt, f);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(x_, "NeighbourAttention");
    const int64_t n = x_.size(0), t = x_.size(1), nt = n * t, f = features_, h = hops(), edges = num_edges();
    expect_shape(dy.shape(), Shape{n, t, v_, f * h}, describe() + ".backward dy");
    tensor dx = tensor::empty(x_.shape());
    // dx[w] = sum over the edges (hop, v, w) of coefs[v, w] dg[v], dg[v] = rows (v, hop) of dy.
    backend::graph_aggregate_backward(B{}, edge_lists(), coefficients(), coefficient_stride(), dy.data(), dx.data(), nt, f);
    if (lstm_) {  // through the softmax's logits into the LSTM
      tensor dcoefs = tensor::empty({nt, edges});  // dcoefs[v, w] = dg[v] . x[w]
      backend::graph_edge_dots(B{}, edge_lists(), dy.data(), x_.data(), dcoefs.data(), nt, f);
      tensor dlogits = tensor::zeros({n, t, v_, v_});
      backend::graph_masked_softmax_backward(B{}, edge_lists(), coefs_.data(), dcoefs.data(), dlogits.data(), nt);
      tensor dhidden = tensor::empty({n * v_, t, v_});
      backend::swap_middle_axes(B{}, dlogits.data(), dhidden.data(), n, t, v_, v_);
      const tensor dsequences = lstm_->backward(dhidden);  // [N*V, T, F]
      tensor dx_lstm = tensor::empty(x_.shape());
      backend::swap_middle_axes(B{}, dsequences.data(), dx_lstm.data(), n, v_, t, f);
      add_to(dx, dx_lstm);
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
              dense_coefs_[((hop * distinct + s) * v_ + v) * v_ + neighbour_[static_cast<size_t>(e)]] =
                  coefficients()[s * coefficient_stride() + e];
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
  // The coefficient of every edge, frame by frame (recurrent: [N*T, edges])
  // or shared by all frames (averaging: stride 0).
  const T* coefficients() const { return lstm_ ? coefs_.data() : uniform_.data(); }
  int64_t coefficient_stride() const { return lstm_ ? num_edges() : 0; }
  backend::EdgeLists edge_lists() const {
    const auto& e = edge_tensors_;
    return {v_, hops(), num_edges(), e[0].data(), e[1].data(), e[2].data(), e[3].data(), e[4].data(), e[5].data()};
  }

  AttentionMode mode_;
  int64_t features_, v_ = 0;
  std::vector<int64_t> offsets_, neighbour_;  // on the host, for attention_weights()
  // backend::EdgeLists' arrays in B's memory: offsets, neighbour, row,
  // reverse_offsets, reverse_edge, reverse_row.
  std::array<Tensor<int64_t, B>, 6> edge_tensors_;
  std::optional<LSTM<B, T>> lstm_;
  tensor uniform_, x_, logits_, coefs_;
  mutable tensor dense_coefs_;
};

}  // namespace stpain
