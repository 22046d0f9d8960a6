#pragma once
// The reference ST-GCN block (Yan et al. 2018) on channels-last sequences
// [N, T, V, C]:
//   gcn (GraphConv over the partitions) -> tcn: BN -> ReLU -> temporal conv
//   (k, stride) -> BN -> Dropout, plus a residual (none, identity, or a strided
//   1x1 conv + BN when the shape changes), then ReLU.
// Parameter names follow the reference implementation's st_gcn module:
// gcn.conv.*, tcn.0 (BN), tcn.2 (conv), tcn.3 (BN), residual.0 (conv), residual.1 (BN).
#include <optional>

#include "stpain/compose/over_last_dim.hpp"
#include "stpain/compose/sequential.hpp"
#include "stpain/graph/graph_conv.hpp"
#include "stpain/graph/temporal_conv.hpp"
#include "stpain/layers/activations.hpp"
#include "stpain/layers/batch_norm.hpp"
#include "stpain/layers/dropout.hpp"

namespace stpain {

enum class ResidualMode { none, automatic };  // automatic: identity when shapes agree, else 1x1 conv + BN

template <class B = cpu, class T = float>
class STGCNBlock {
 public:
  using backend = B;
  using scalar = T;
  using tensor = Tensor<T, B>;
  using BN = OverLastDim<BatchNorm1d<B, T>>;

  struct Options {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    int64_t kernel_size = 9;  // temporal
    int64_t stride = 1;
    double dropout = 0.0;
    ResidualMode residual = ResidualMode::automatic;
    bool edge_importance = true;
  };

  STGCNBlock(const Options& o, const std::vector<Eigen::MatrixXd>& partitions)
      : opt_(o),
        gcn_({o.in_channels, o.out_channels, o.edge_importance}, partitions),
        tcn_(BN(o.out_channels), ReLU<B, T>(), TemporalConv<B, T>(o.out_channels, o.out_channels, o.kernel_size, o.stride),
             BN(o.out_channels), Dropout<B, T>(o.dropout)) {
    identity_ = o.residual == ResidualMode::automatic && o.in_channels == o.out_channels && o.stride == 1;
    if (o.residual == ResidualMode::automatic && !identity_)
      residual_.emplace(TemporalConv<B, T>(o.in_channels, o.out_channels, 1, o.stride), BN(o.out_channels));
  }

  tensor forward(const tensor& x) {
    tensor y = tcn_.forward(gcn_.forward(x));
    if (identity_) {
      expect_shape(x.shape(), y.shape(), "STGCNBlock identity residual");
      add_to(y, x);
    } else if (residual_) {
      add_to(y, residual_->forward(x));
    }
    out_ = relu_.forward(y);
    return out_;
  }

  tensor backward(const tensor& dy) {
    const tensor d = relu_.backward(dy);
    tensor dx = gcn_.backward(tcn_.backward(d));
    if (identity_) add_to(dx, d);
    else if (residual_) add_to(dx, residual_->backward(d));
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    gcn_.visit_parameters(f, prefix + "gcn.");
    tcn_.visit_parameters(f, prefix + "tcn.");
    if (residual_) residual_->visit_parameters(f, prefix + "residual.");
  }
  void train(bool on = true) {
    gcn_.train(on);
    tcn_.train(on);
    if (residual_) residual_->train(on);
    relu_.train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return tcn_.is_training(); }

  const Options& options() const { return opt_; }
  int64_t output_length(int64_t t) const { return tcn_.template get<2>().output_length(t); }

 private:
  Options opt_;
  GraphConv<B, T> gcn_;
  Sequential<BN, ReLU<B, T>, TemporalConv<B, T>, BN, Dropout<B, T>> tcn_;
  std::optional<Sequential<TemporalConv<B, T>, BN>> residual_;
  bool identity_ = false;
  ReLU<B, T> relu_;
  tensor out_;
};

}  // namespace stpain
