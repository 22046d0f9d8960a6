#pragma once
// Builds the model a model card describes, on any backend:
//
//   with_model_from_card<cuda>(card, [&](auto& model) { ... });
//
// The card is the trainers' checkpoint metadata ("stpain.model" and its
// keys), so a checkpoint can be rebuilt for prediction and a model built on
// one backend can be rebuilt on another (the CUDA trainers build the cpu model,
// then the same one on the GPU from its card). Kinds and their keys:
//   stgcn             stgcn.block, stgcn.graph, stgcn.lstm ("true"/"false")
//   sequence_head     head.name, head.input_size
//   mid_fusion        stgcn.block, stgcn.graph, head.input_size (LSTM visual branch)
//   frame_classifier  frame.input_size, frame.hidden (0: one Linear)
//   convnext          convnext.arch, convnext.classes, convnext.drop_path
#include <string>

#include "stpain/compose/named.hpp"
#include "stpain/compose/sequential.hpp"
#include "stpain/graph/landmark_graphs.hpp"
#include "stpain/layers/activations.hpp"
#include "stpain/layers/dropout.hpp"
#include "stpain/layers/linear.hpp"
#include "stpain/models/convnext.hpp"
#include "stpain/models/fusion.hpp"
#include "stpain/models/model_card.hpp"
#include "stpain/models/sequence_heads.hpp"
#include "stpain/models/stgcn.hpp"

namespace stpain {

// The landmark graphs by their card / command-line names.
inline GraphSpec landmark_graph_named(const std::string& name) {
  if (name == "mesh") return GraphSpec::of<FaceMesh68>();
  if (name == "contour") return GraphSpec::of<Dlib68Contour>();
  if (name == "mesh-shifted") return GraphSpec::of<ShiftedByOne<FaceMesh68>>();
  throw Error("unknown landmark graph \"" + name + "\" (mesh, contour or mesh-shifted)");
}

// A per-frame classifier on features: features -> hidden, ReLU, dropout -> classes.
template <class B = cpu, class T = float>
using FrameMlp = Sequential<Named<"fc1", Linear<B, T>>, ReLU<B, T>, Dropout<B, T>, Named<"fc2", Linear<B, T>>>;

// Calls f(model) with the card's model built on backend B (fresh weights).
template <class B = cpu, class T = float, class F>
void with_model_from_card(const ModelCard& card, F&& f) {
  const std::string kind = card.get("stpain.model");
  if (kind == "stgcn") {
    with_stgcn_network<B, T>(parse_block_kind(card.get("stgcn.block")), {.lstm = card.get("stgcn.lstm") == "true"},
                             landmark_graph_named(card.get("stgcn.graph")), f);
  } else if (kind == "sequence_head") {
    with_sequence_head<B, T>(card.get("head.name"), {.input_size = card.get_int("head.input_size")},
                             [&](auto&& head) { f(head); });
  } else if (kind == "mid_fusion") {
    with_mid_fusion<B, T>(parse_block_kind(card.get("stgcn.block")), card.get_int("head.input_size"),
                          {.input_size = card.get_int("head.input_size")}, {},
                          landmark_graph_named(card.get("stgcn.graph")), f);
  } else if (kind == "frame_classifier") {
    const int64_t in = card.get_int("frame.input_size"), hidden = card.get_int("frame.hidden");
    if (hidden == 0) {
      Linear<B, T> model(in, 2);
      f(model);
    } else {
      FrameMlp<B, T> model(Linear<B, T>(in, hidden), ReLU<B, T>(), Dropout<B, T>(0.25), Linear<B, T>(hidden, 2));
      f(model);
    }
  } else if (kind == "convnext") {
    ConvNeXtConfig config = ConvNeXtConfig::variant(card.get("convnext.arch"), card.get_int("convnext.classes"));
    config.drop_path_rate = std::stod(card.get("convnext.drop_path"));
    ConvNeXt<B, T> model(config);
    f(model);
  } else {
    throw FormatError("model card: unknown \"stpain.model\" = \"" + kind +
                      "\" (stgcn, sequence_head, mid_fusion, frame_classifier or convnext)");
  }
}

}  // namespace stpain
