#pragma once
// GraphConv: ST-GCN's spatial graph convolution on channels-last sequences
// [N, T, V, C]: a 1x1 convolution to K * C_out channels, then for each of the K
// partitions a sum over neighbours with the partition's adjacency:
//   y[n, t, w, c] = sum_k sum_v h[n, t, v, k, c] * (A_k ⊙ M_k)[v, w]
// (the reference einsum "nkctv,kvw->nctw"), where M is the optional learnable
// edge-importance mask (ones at start).
// Parameters: conv.weight [K*C_out, C_in] (torch's [K*C_out, C_in, 1, 1]
// loads into it), conv.bias, edge_importance [K, V, V]; buffer A [K, V, V].
#include <vector>

#include <Eigen/Core>

#include "stpain/layers/layer_scale.hpp"  // the elementwise products of A and M
#include "stpain/layers/linear.hpp"

namespace stpain {

template <class B = cpu, class T = float>
class GraphConv : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    bool edge_importance = true;  // learnable mask M
  };

  // partitions: K adjacency matrices [V, V] (e.g. stgcn_partitions()).
  GraphConv(const Options& o, const std::vector<Eigen::MatrixXd>& partitions)
      : opt_(o), conv_(o.in_channels, o.out_channels * static_cast<int64_t>(partitions.size())) {
    STPAIN_CHECK(!partitions.empty(), ShapeError, "GraphConv: no adjacency partitions");
    const int64_t k = static_cast<int64_t>(partitions.size()), v = partitions[0].rows();
    A = Parameter<T, B>::buffer({k, v, v});
    for (int64_t p = 0; p < k; ++p) {
      STPAIN_CHECK(partitions[static_cast<size_t>(p)].rows() == v && partitions[static_cast<size_t>(p)].cols() == v,
                   ShapeError, "GraphConv: partition ", p, " is not ", v, "x", v);
      for (int64_t i = 0; i < v; ++i)
        for (int64_t j = 0; j < v; ++j) A.value[(p * v + i) * v + j] = static_cast<T>(partitions[static_cast<size_t>(p)](i, j));
    }
    if (o.edge_importance) {
      edge_importance = Parameter<T, B>::make({k, v, v});
      edge_importance.value.fill(T(1));
    }
  }

  int64_t partitions() const { return A.value.size(0); }
  int64_t nodes() const { return A.value.size(1); }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == 4 && x.size(2) == nodes() && x.size(3) == opt_.in_channels, ShapeError, describe(),
                 ": input ", x.shape().str(), " is not [N, T, ", nodes(), ", ", opt_.in_channels, "]");
    h_ = conv_.forward(x);  // [N, T, V, K*C]
    effective_adjacency();
    const int64_t nt = x.size(0) * x.size(1), v = nodes(), k = partitions(), c = opt_.out_channels;
    tensor y = tensor::empty({x.size(0), x.size(1), v, c});
    const T* h = h_.data();
    const T* a = a_eff_.data();
    T* out = y.data();
    B::parallel_for(nt, 4, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s)
        for (int64_t p = 0; p < k; ++p)  // y_s [W, C] (+)= A_p^T [W, V] h_s[:, p, :] [V, C]
          B::gemm(true, false, v, c, v, T(1), a + p * v * v, v, h + s * v * k * c + p * c, k * c, p ? T(1) : T(0),
                  out + s * v * c, c);
    });
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(h_, "GraphConv");
    const int64_t n = h_.size(0), t = h_.size(1), nt = n * t, v = nodes(), k = partitions(), c = opt_.out_channels;
    expect_shape(dy.shape(), Shape{n, t, v, c}, describe() + ".backward dy");
    tensor dh = tensor::empty(h_.shape());
    const int64_t parts = std::min<int64_t>(num_threads(), nt);
    std::vector<tensor> da(static_cast<size_t>(parts));
    const T* a = a_eff_.data();
    parallel_chunks(nt, parts, [&](int64_t part, int64_t s0, int64_t s1) {
      tensor& acc = da[static_cast<size_t>(part)];
      acc = tensor::zeros({k, v, v});
      for (int64_t s = s0; s < s1; ++s)
        for (int64_t p = 0; p < k; ++p) {
          const T* hs = h_.data() + s * v * k * c + p * c;
          const T* gs = dy.data() + s * v * c;
          // dh_s[:, p, :] = A_p [V, W] dy_s [W, C];  dA_p += h_s[:, p, :] dy_s^T
          B::gemm(false, false, v, c, v, T(1), a + p * v * v, v, gs, c, T(0), dh.data() + s * v * k * c + p * c, k * c);
          B::gemm(false, true, v, v, c, T(1), hs, k * c, gs, c, T(1), acc.data() + p * v * v, v);
        }
    });
    if (opt_.edge_importance)  // grad += dA_eff * A elementwise (one row of K*V*V channels), on B
      for (const tensor& acc : da)
        accumulate_channels_last_products(B{}, acc.data(), A.value.data(), edge_importance.grad.data(), 1, k * v * v);
    return conv_.backward(dh);
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    conv_.visit_parameters(f, prefix + "conv.");
    if (opt_.edge_importance) f(prefix + "edge_importance", edge_importance);
    f(prefix + "A", A);
  }
  std::string describe() const {
    return detail::concat("GraphConv(", opt_.in_channels, " -> ", opt_.out_channels, ", K=", partitions(), ", V=", nodes(), ")");
  }

  Parameter<T, B> A, edge_importance;

 private:
  void effective_adjacency() {
    a_eff_ = opt_.edge_importance ? tensor::empty(A.value.shape()) : A.value;
    if (opt_.edge_importance)  // A * M elementwise (one row of K*V*V channels), on B
      scale_channels_last(B{}, A.value.data(), edge_importance.value.data(), a_eff_.data(), 1, A.value.numel());
  }

  Options opt_;
  Linear<B, T> conv_;
  tensor h_, a_eff_;
};

}  // namespace stpain
