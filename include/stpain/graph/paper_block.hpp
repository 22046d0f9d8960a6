#pragma once
// The paper's STGCN block (the authors' landmark pipeline), on channels-last
// sequences [N, T, V, C]:
//   k  = concat(x, ReLU(TemporalConv(64, k=9)(x)))            "temporal"
//   x1 = ReLU(Linear(68)(ReLU(Linear(64)(k))))                "proj.0", "proj.2" (1x1 convolutions)
//   g  = NeighbourAttention over the 1-hop and 2-hop masks     "attention" (2 * 68 channels)
//   z1 = Dropout(ReLU(TemporalConv(16, k=9)(g)))               "branch1"
//   z2 = Dropout(TemporalConv(16, k=15)(z1))                   "branch2"
//   z3 = Dropout(TemporalConv(16, k=20)(z2))                   "branch3"
//   out = concat(z1, z2, z3)                                   (48 channels)
// Sizes are options (defaults the authors'); the attention is recurrent (the
// paper's text) or plain neighbour averaging (their final code).
#include "stpain/compose/concat.hpp"
#include "stpain/compose/sequential.hpp"
#include "stpain/graph/adjacency.hpp"
#include "stpain/graph/neighbour_attention.hpp"
#include "stpain/graph/temporal_conv.hpp"
#include "stpain/layers/activations.hpp"
#include "stpain/layers/dropout.hpp"
#include "stpain/layers/identity.hpp"
#include "stpain/layers/linear.hpp"

namespace stpain {

template <class B = cpu, class T = float>
class PaperSTGCNBlock {
 public:
  using backend = B;
  using scalar = T;
  using tensor = Tensor<T, B>;

  struct Options {
    int64_t in_channels = 2;
    int64_t temporal_channels = 64;
    int64_t hidden = 64;
    int64_t node_features = 68;  // width of x1 (the authors use V)
    int64_t branch_channels = 16;
    int64_t kernel1 = 9, kernel2 = 15, kernel3 = 20;
    double dropout = 0.25;
    AttentionMode attention = AttentionMode::recurrent;
  };

  // masks: the hop masks, e.g. {A, A2} with self-links (see hop_masks()).
  PaperSTGCNBlock(const Options& o, const std::vector<Eigen::MatrixXd>& masks)
      : opt_(o),
        temporal_(Identity<B, T>(),
                  Sequential<TemporalConv<B, T>, ReLU<B, T>>(TemporalConv<B, T>(o.in_channels, o.temporal_channels, o.kernel1),
                                                             ReLU<B, T>())),
        proj_(Linear<B, T>(o.in_channels + o.temporal_channels, o.hidden), ReLU<B, T>(),
              Linear<B, T>(o.hidden, o.node_features), ReLU<B, T>()),
        attention_(masks, o.node_features, o.attention),
        branch1_(TemporalConv<B, T>(o.node_features * attention_.hops(), o.branch_channels, o.kernel1), ReLU<B, T>(),
                 Dropout<B, T>(o.dropout)),
        branch2_(TemporalConv<B, T>(o.branch_channels, o.branch_channels, o.kernel2), Dropout<B, T>(o.dropout)),
        branch3_(TemporalConv<B, T>(o.branch_channels, o.branch_channels, o.kernel3), Dropout<B, T>(o.dropout)) {}

  // The authors' masks: the 1-hop adjacency and the 2-hop reachability, with self-links.
  static std::vector<Eigen::MatrixXd> hop_masks(const GraphSpec& g) {
    return {adjacency_matrix(g, true), k_hop_reachability(g, 2, true)};
  }

  int64_t out_channels() const { return 3 * opt_.branch_channels; }

  tensor forward(const tensor& x) {
    const tensor g = attention_.forward(proj_.forward(temporal_.forward(x)));
    const tensor z1 = branch1_.forward(g), z2 = branch2_.forward(z1), z3 = branch3_.forward(z2);
    return concat_last_dim<T, B>({z1, z2, z3});
  }

  tensor backward(const tensor& dy) {
    const int64_t c = opt_.branch_channels;
    tensor dz3 = slice_last_dim(dy, 2 * c, c), dz2 = slice_last_dim(dy, c, c), dz1 = slice_last_dim(dy, 0, c);
    add_to(dz2, branch3_.backward(dz3));
    add_to(dz1, branch2_.backward(dz2));
    return temporal_.backward(proj_.backward(attention_.backward(branch1_.backward(dz1))));
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    temporal_.template get<1>().template get<0>().visit_parameters(f, prefix + "temporal.");
    proj_.visit_parameters(f, prefix + "proj.");
    attention_.visit_parameters(f, prefix);
    branch1_.template get<0>().visit_parameters(f, prefix + "branch1.");
    branch2_.template get<0>().visit_parameters(f, prefix + "branch2.");
    branch3_.template get<0>().visit_parameters(f, prefix + "branch3.");
  }
  void train(bool on = true) {
    temporal_.train(on);
    proj_.train(on);
    attention_.train(on);
    branch1_.train(on);
    branch2_.train(on);
    branch3_.train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return proj_.is_training(); }

  const NeighbourAttention<B, T>& attention() const { return attention_; }

 private:
  Options opt_;
  Concat<Identity<B, T>, Sequential<TemporalConv<B, T>, ReLU<B, T>>> temporal_;
  Sequential<Linear<B, T>, ReLU<B, T>, Linear<B, T>, ReLU<B, T>> proj_;
  NeighbourAttention<B, T> attention_;
  Sequential<TemporalConv<B, T>, ReLU<B, T>, Dropout<B, T>> branch1_;
  Sequential<TemporalConv<B, T>, Dropout<B, T>> branch2_, branch3_;
};

}  // namespace stpain
