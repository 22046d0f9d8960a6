#pragma once
// The landmark networks of the benchmarks by the names tools/bench/stgcn_torch.py
// gives them: "lstm-" (STGCN-LSTM) or "pooled-" (STGCN, pooled), then the
// block: "recurrent" (the paper's recurrent attention), "averaging" (the
// authors' final code) or "yan" (Yan et al.'s ST-GCN block).
#include <string>
#include <vector>

#include "stpain/graph/landmark_graphs.hpp"
#include "stpain/models/stgcn.hpp"

namespace stpain::bench {

inline const std::vector<std::string> kModels = {"lstm-recurrent", "lstm-averaging", "pooled-recurrent",
                                                 "pooled-averaging", "lstm-yan"};

struct ModelKind {
  bool lstm = true;
  BlockKind block = BlockKind::paper;
};

inline ModelKind parse_model(const std::string& name) {
  ModelKind k;
  k.lstm = name.rfind("lstm-", 0) == 0;
  const std::string kind = name.substr(name.find('-') + 1);
  k.block = kind == "yan" ? BlockKind::stgcn : kind == "averaging" ? BlockKind::paper_averaging : BlockKind::paper;
  return k;
}

// f(network) for the named model over the authors' 68-point mesh, on backend B.
template <class B = cpu, class F>
decltype(auto) with_model(const std::string& name, F&& f) {
  const ModelKind k = parse_model(name);
  return with_stgcn_network<B>(k.block, {.lstm = k.lstm}, GraphSpec::of<FaceMesh68>(), std::forward<F>(f));
}

}  // namespace stpain::bench
