#pragma once
// The landmark networks of the paper's second experiment, over landmark clips
// [N, T, V, 2] (channels-last):
//   STGCN       x = blk(in); y = blk(x) + x; z = blk(y) + y; mean over T and V
//               -> Linear(classes)                                    ("blocks.i", "fc")
//   STGCN-LSTM  the same blocks; z reshaped to [N, T, V*C] -> LSTM(15, seq)
//               -> Dropout(.25) -> LSTM(20) -> Dropout(.25) -> Linear  ("lstm1", "lstm2", "fc")
// The block type is selectable: the paper's block with recurrent attention
// (default), its neighbour-averaging variant (the authors' final code), or
// the reference ST-GCN block (Yan et al.) over the spatial partitions.
#include <memory>
#include <optional>
#include <string>

#include "stpain/graph/paper_block.hpp"
#include "stpain/graph/stgcn_block.hpp"
#include "stpain/rnn/lstm.hpp"

namespace stpain {

enum class BlockKind { paper, paper_averaging, stgcn };

inline BlockKind parse_block_kind(const std::string& s) {
  if (s == "paper") return BlockKind::paper;
  if (s == "paper-averaging") return BlockKind::paper_averaging;
  if (s == "stgcn") return BlockKind::stgcn;
  throw Error("unknown block \"" + s + "\" (paper, paper-averaging or stgcn)");
}

struct STGCNOptions {
  int64_t in_channels = 2;
  int64_t channels = 48;       // block output channels (the paper's block: 3 x 16)
  int64_t classes = 2;         // 0: no classifier; forward gives the penultimate features (fusion)
  bool lstm = true;            // STGCN-LSTM, else pooled STGCN
  int64_t lstm1 = 15, lstm2 = 20;
  double dropout = 0.25;
  double block_dropout = 0.25;
  int64_t stgcn_kernel = 9;    // temporal kernel of the reference block
};

template <class Block, class B = cpu, class T = float>
class STGCNNetwork {
 public:
  using backend = B;
  using scalar = T;
  using tensor = Tensor<T, B>;
  using block_type = Block;

  // make_block(i, in_channels) builds block i.
  template <class MakeBlock>
  STGCNNetwork(const STGCNOptions& o, int64_t nodes, MakeBlock&& make_block) : opt_(o), nodes_(nodes) {
    for (int i = 0; i < 3; ++i) blocks_.push_back(make_block(i, i == 0 ? o.in_channels : o.channels));
    if (o.lstm) {
      lstm1_.emplace(nodes * o.channels, o.lstm1, true);
      lstm2_.emplace(o.lstm1, o.lstm2, false);
      drop1_.emplace(o.dropout);
      drop2_.emplace(o.dropout);
    }
    if (o.classes > 0) fc_.emplace(features(), o.classes);
  }

  // Width of the penultimate features (the LSTM's state, or the pooled channels).
  int64_t features() const { return opt_.lstm ? opt_.lstm2 : opt_.channels; }

  // Landmark clips [N, T, V, in_channels] -> logits [N, classes].
  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == 4 && x.size(2) == nodes_ && x.size(3) == opt_.in_channels, ShapeError, describe(),
                 ": input ", x.shape().str(), " is not [N, T, ", nodes_, ", ", opt_.in_channels, "]");
    tensor h = blocks_[0].forward(x);
    for (size_t i = 1; i < blocks_.size(); ++i) {
      tensor y = blocks_[i].forward(h);
      expect_shape(y.shape(), h.shape(), describe() + " residual of block " + std::to_string(i));
      add_to(y, h);
      h = y;
    }
    block_shape_ = h.shape();
    const int64_t n = h.size(0), t = h.size(1);
    if (opt_.lstm) {
      const tensor s = drop2_->forward(lstm2_->forward(drop1_->forward(lstm1_->forward(h.reshape({n, t, -1})))));
      return fc_ ? fc_->forward(s) : s;
    }
    // Mean over time and nodes.
    pooled_ = tensor::zeros({n, opt_.channels});
    const int64_t per = t * nodes_;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t r = 0; r < per; ++r)
        for (int64_t c = 0; c < opt_.channels; ++c) pooled_(b, c) += h[(b * per + r) * opt_.channels + c] / T(per);
    return fc_ ? fc_->forward(pooled_) : pooled_;
  }

  tensor backward(const tensor& dy) {
    tensor d = fc_ ? fc_->backward(dy) : dy;
    tensor dh;
    if (opt_.lstm) {
      dh = lstm1_->backward(drop1_->backward(lstm2_->backward(drop2_->backward(d)))).reshape(block_shape_);
    } else {
      dh = tensor::empty(block_shape_);
      const int64_t n = block_shape_[0], per = block_shape_[1] * nodes_, c = opt_.channels;
      for (int64_t b = 0; b < n; ++b)
        for (int64_t r = 0; r < per; ++r)
          for (int64_t ch = 0; ch < c; ++ch) dh[(b * per + r) * c + ch] = d(b, ch) / T(per);
    }
    for (size_t i = blocks_.size() - 1; i >= 1; --i) {  // h_i = blk_i(h_{i-1}) + h_{i-1}
      tensor through = blocks_[i].backward(dh);
      add_to(through, dh);
      dh = through;
    }
    return blocks_[0].backward(dh);
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    for (size_t i = 0; i < blocks_.size(); ++i) blocks_[i].visit_parameters(f, prefix + "blocks." + std::to_string(i) + ".");
    if (lstm1_) {
      lstm1_->visit_parameters(f, prefix + "lstm1.");
      lstm2_->visit_parameters(f, prefix + "lstm2.");
    }
    if (fc_) fc_->visit_parameters(f, prefix + "fc.");
  }
  void train(bool on = true) {
    training_ = on;
    for (auto& b : blocks_) b.train(on);
    for (auto* l : {lstm1_ ? &*lstm1_ : nullptr, lstm2_ ? &*lstm2_ : nullptr})
      if (l) l->train(on);
    if (drop1_) {
      drop1_->train(on);
      drop2_->train(on);
    }
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  Block& block(size_t i) { return blocks_[i]; }
  std::string describe() const { return std::string(opt_.lstm ? "STGCN-LSTM" : "STGCN"); }

 private:
  STGCNOptions opt_;
  int64_t nodes_;
  std::vector<Block> blocks_;
  std::optional<LSTM<B, T>> lstm1_, lstm2_;
  std::optional<Dropout<B, T>> drop1_, drop2_;
  std::optional<Linear<B, T>> fc_;
  Shape block_shape_;
  tensor pooled_;
  bool training_ = true;
};

// Builds the network with the chosen block over graph g and calls f(network).
template <class B = cpu, class T = float, class F>
decltype(auto) with_stgcn_network(BlockKind kind, const STGCNOptions& o, const GraphSpec& g, F&& f) {
  if (kind == BlockKind::stgcn) {
    const auto partitions = stgcn_partitions(g, Partition::spatial, 1);
    STGCNNetwork<STGCNBlock<B, T>, B, T> net(o, g.num_nodes, [&](int, int64_t in) {
      return STGCNBlock<B, T>({.in_channels = in, .out_channels = o.channels, .kernel_size = o.stgcn_kernel,
                               .dropout = o.block_dropout},
                              partitions);
    });
    return f(net);
  }
  const auto masks = PaperSTGCNBlock<B, T>::hop_masks(g);
  STPAIN_CHECK(o.channels % 3 == 0, Error, "the paper's block concatenates three branches: channels (", o.channels,
               ") must be a multiple of 3");
  STGCNNetwork<PaperSTGCNBlock<B, T>, B, T> net(o, g.num_nodes, [&](int, int64_t in) {
    typename PaperSTGCNBlock<B, T>::Options bo;
    bo.in_channels = in;
    bo.node_features = g.num_nodes;
    bo.branch_channels = o.channels / 3;
    bo.dropout = o.block_dropout;
    bo.attention = kind == BlockKind::paper ? AttentionMode::recurrent : AttentionMode::averaging;
    return PaperSTGCNBlock<B, T>(bo, masks);
  });
  return f(net);
}

}  // namespace stpain
