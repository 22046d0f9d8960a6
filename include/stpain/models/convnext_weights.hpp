#pragma once
// ConvNeXt checkpoints in the three namings in use, read from safetensors:
//   timm         stem.0, stages.1.downsample.1, stages.2.blocks.5.mlp.fc1, head.norm, head.fc
//   official     downsample_layers.0.0, stages.2.5.pwconv1, norm, head    (facebookresearch/ConvNeXt)
//   torchvision  features.0.0, features.5.5.block.3, classifier.0, classifier.2
// stpain's models use timm's names; the others are renamed on load, the
// naming is detected from the keys, and the configuration (depths, dims,
// classes) can be read off the tensor shapes.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "stpain/io/state_dict.hpp"
#include "stpain/models/convnext.hpp"

namespace stpain {

enum class ConvNeXtNaming { timm, official, torchvision };

inline const char* naming_name(ConvNeXtNaming n) {
  switch (n) {
    case ConvNeXtNaming::timm: return "timm";
    case ConvNeXtNaming::official: return "official";
    case ConvNeXtNaming::torchvision: return "torchvision";
  }
  return "?";
}

inline ConvNeXtNaming parse_naming(const std::string& s) {
  for (auto n : {ConvNeXtNaming::timm, ConvNeXtNaming::official, ConvNeXtNaming::torchvision})
    if (s == naming_name(n)) return n;
  throw Error("unknown ConvNeXt naming \"" + s + "\" (timm, official or torchvision)");
}

namespace detail {

inline std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == '.') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

inline std::string join_dots(const std::vector<std::string>& parts, size_t from = 0) {
  std::string s;
  for (size_t i = from; i < parts.size(); ++i) s += (i > from ? "." : "") + parts[i];
  return s;
}

inline bool is_index(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// Wrappers some exporters put around every key.
inline std::string strip_wrapper(const std::string& name) {
  for (const char* p : {"module.", "model."})
    if (name.rfind(p, 0) == 0) return name.substr(std::string(p).size());
  return name;
}

// Block sub-module names: {official, torchvision} -> timm.
inline const std::map<std::string, std::string>& official_block_parts() {
  static const std::map<std::string, std::string> m = {
      {"dwconv", "conv_dw"}, {"norm", "norm"}, {"pwconv1", "mlp.fc1"}, {"pwconv2", "mlp.fc2"}};
  return m;
}
inline const std::map<std::string, std::string>& torchvision_block_parts() {
  static const std::map<std::string, std::string> m = {
      {"block.0", "conv_dw"}, {"block.2", "norm"}, {"block.3", "mlp.fc1"}, {"block.5", "mlp.fc2"}};
  return m;
}

}  // namespace detail

// The timm name of a tensor of another naming; "" when it has no counterpart.
inline std::string convnext_name_to_timm(const std::string& raw, ConvNeXtNaming from) {
  using namespace detail;
  const std::string name = strip_wrapper(raw);
  const auto p = split_dots(name);
  if (from == ConvNeXtNaming::timm) return name;
  if (from == ConvNeXtNaming::official) {
    if (p.size() >= 3 && p[0] == "downsample_layers" && is_index(p[1]) && is_index(p[2])) {
      if (p[1] == "0") return "stem." + join_dots(p, 2);
      return "stages." + p[1] + ".downsample." + join_dots(p, 2);
    }
    if (p.size() == 5 && p[0] == "stages" && is_index(p[1]) && is_index(p[2])) {
      const auto it = official_block_parts().find(p[3]);
      if (it != official_block_parts().end()) return "stages." + p[1] + ".blocks." + p[2] + "." + it->second + "." + p[4];
    }
    if (p.size() == 4 && p[0] == "stages" && p[3] == "gamma") return "stages." + p[1] + ".blocks." + p[2] + ".gamma";
    if (p.size() == 2 && p[0] == "norm") return "head.norm." + p[1];
    if (p.size() == 2 && p[0] == "head") return "head.fc." + p[1];
    return "";
  }
  // torchvision
  if (p.size() >= 3 && p[0] == "features" && is_index(p[1])) {
    const int k = std::stoi(p[1]);
    if (k == 0) return "stem." + join_dots(p, 2);
    if (k % 2 == 0) return "stages." + std::to_string(k / 2) + ".downsample." + join_dots(p, 2);
    const std::string block = "stages." + std::to_string((k - 1) / 2) + ".blocks." + p[2] + ".";
    if (p.size() == 4 && p[3] == "layer_scale") return block + "gamma";
    if (p.size() == 6) {
      const auto it = torchvision_block_parts().find(p[3] + "." + p[4]);
      if (it != torchvision_block_parts().end()) return block + it->second + "." + p[5];
    }
    return "";
  }
  if (p.size() == 3 && p[0] == "classifier" && p[1] == "0") return "head.norm." + p[2];
  if (p.size() == 3 && p[0] == "classifier" && p[1] == "2") return "head.fc." + p[2];
  return "";
}

// The name a timm-named tensor has in another naming (for the converter).
inline std::string convnext_name_from_timm(const std::string& name, ConvNeXtNaming to) {
  using namespace detail;
  if (to == ConvNeXtNaming::timm) return name;
  const auto p = split_dots(name);
  const bool official = to == ConvNeXtNaming::official;
  auto reverse = [](const std::map<std::string, std::string>& m, const std::string& timm_part) {
    for (const auto& [k, v] : m)
      if (v == timm_part) return k;
    return std::string();
  };
  if (p.size() >= 2 && p[0] == "stem") return (official ? "downsample_layers.0." : "features.0.") + join_dots(p, 1);
  if (p.size() >= 4 && p[0] == "stages" && p[2] == "downsample") {
    const int s = std::stoi(p[1]);
    return (official ? "downsample_layers." + p[1] : "features." + std::to_string(2 * s)) + "." + join_dots(p, 3);
  }
  if (p.size() >= 5 && p[0] == "stages" && p[2] == "blocks") {
    const int s = std::stoi(p[1]);
    const std::string block = official ? "stages." + p[1] + "." + p[3] : "features." + std::to_string(2 * s + 1) + "." + p[3];
    if (p[4] == "gamma") return block + (official ? ".gamma" : ".layer_scale");
    const std::string part = p[4] == "mlp" && p.size() == 7 ? "mlp." + p[5] : p[4];
    const std::string mapped = reverse(official ? official_block_parts() : torchvision_block_parts(), part);
    if (!mapped.empty()) return block + "." + mapped + "." + p.back();
  }
  if (p.size() == 3 && p[0] == "head" && p[1] == "norm") return (official ? "norm." : "classifier.0.") + p[2];
  if (p.size() == 3 && p[0] == "head" && p[1] == "fc") return (official ? "head." : "classifier.2.") + p[2];
  throw Error("convnext_name_from_timm: \"" + name + "\" is not a ConvNeXt tensor name");
}

// The naming of a checkpoint, from its keys.
inline ConvNeXtNaming detect_convnext_naming(const safetensors::File& file) {
  int votes[3] = {0, 0, 0};
  for (const auto& t : file.tensors()) {
    const std::string n = detail::strip_wrapper(t.name);
    if (n.rfind("stem.", 0) == 0 || n.find(".blocks.") != std::string::npos) ++votes[0];
    if (n.rfind("downsample_layers.", 0) == 0 || n.find(".pwconv1.") != std::string::npos) ++votes[1];
    if (n.rfind("features.", 0) == 0 || n.rfind("classifier.", 0) == 0) ++votes[2];
  }
  const int best = static_cast<int>(std::max_element(votes, votes + 3) - votes);
  if (votes[best] == 0) {
    std::string sample;
    for (size_t i = 0; i < file.tensors().size() && i < 5; ++i) sample += "\n  " + file.tensors()[i].name;
    throw FormatError(file.path() + ": not a ConvNeXt checkpoint in timm, official or torchvision naming; first keys:" +
                      (sample.empty() ? std::string(" (none)") : sample));
  }
  return static_cast<ConvNeXtNaming>(best);
}

// Depths, dims, input channels and classes read off a checkpoint's shapes.
inline ConvNeXtConfig infer_convnext_config(const safetensors::File& file) {
  const ConvNeXtNaming naming = detect_convnext_naming(file);
  std::map<int, std::set<int>> blocks;
  std::map<int, int64_t> dims;
  ConvNeXtConfig c;
  c.num_classes = 0;
  for (const auto& t : file.tensors()) {
    const std::string n = convnext_name_to_timm(t.name, naming);
    const auto p = detail::split_dots(n);
    if (n == "stem.0.weight") c.in_channels = t.shape[1];
    if (n == "head.fc.weight") c.num_classes = t.shape[0];
    if (p.size() >= 6 && p[0] == "stages" && p[2] == "blocks" && p[4] == "conv_dw" && p[5] == "weight") {
      blocks[std::stoi(p[1])].insert(std::stoi(p[3]));
      dims[std::stoi(p[1])] = t.shape[0];
    }
  }
  STPAIN_CHECK(!blocks.empty(), FormatError, file.path(), ": no ConvNeXt blocks found (", naming_name(naming),
               " naming)");
  c.depths.clear();
  c.dims.clear();
  for (const auto& [stage, ids] : blocks) {
    STPAIN_CHECK(stage == static_cast<int>(c.depths.size()), FormatError, file.path(), ": stage ", c.depths.size(),
                 " has no blocks");
    c.depths.push_back(static_cast<int64_t>(ids.size()));
    c.dims.push_back(dims[stage]);
  }
  c.name = "custom";
  for (const char* v : {"atto", "femto", "pico", "nano", "tiny", "small", "base", "large", "xlarge"}) {
    const auto known = ConvNeXtConfig::variant(v);
    if (known.depths == c.depths && known.dims == c.dims) c.name = v;
  }
  return c;
}

// Writes a checkpoint under another naming (layer scales reshaped to [C, 1, 1]
// for torchvision, [C] otherwise); dtype F32/F16/BF16, or the source's own.
inline void convert_convnext_checkpoint(const std::string& in, const std::string& out, ConvNeXtNaming to,
                                        std::optional<safetensors::DType> dtype = std::nullopt) {
  const safetensors::File f(in);
  const ConvNeXtNaming from = detect_convnext_naming(f);
  std::vector<safetensors::Entry> entries;
  for (const auto& t : f.tensors()) {
    const std::string timm = convnext_name_to_timm(t.name, from);
    STPAIN_CHECK(!timm.empty(), FormatError, in, ": tensor \"", t.name, "\" is not part of a ConvNeXt (",
                 naming_name(from), " naming)");
    const std::string name = convnext_name_from_timm(timm, to);
    Tensor<float> v = f.load(t.name);
    if (timm.ends_with(".gamma")) v = to == ConvNeXtNaming::torchvision ? v.reshape({-1, 1, 1}) : v.reshape({-1});
    entries.push_back(safetensors::entry(name, v, dtype.value_or(t.dtype)));
  }
  safetensors::save(out, std::move(entries), {{"converted_from", std::string(naming_name(from)) + " naming"}});
}

struct ConvNeXtLoadOptions {
  bool strict = true;    // missing, unexpected or mis-shaped tensors are errors
  bool no_head = false;  // leave head.fc out (a classifier of another size)
};

struct ConvNeXtLoadReport : LoadReport {
  ConvNeXtNaming naming = ConvNeXtNaming::timm;
};

// Loads a checkpoint of any of the three namings (F32, F16 or BF16).
template <class B, class T>
ConvNeXtLoadReport load_convnext_weights(ConvNeXt<B, T>& model, const safetensors::File& file,
                                         const ConvNeXtLoadOptions& o = {}) {
  ConvNeXtLoadReport report;
  report.naming = detect_convnext_naming(file);
  LoadOptions lo;
  lo.strict = o.strict;
  const ConvNeXtNaming naming = report.naming;
  lo.rename = [naming, no_head = o.no_head](const std::string& n) {
    std::string timm = convnext_name_to_timm(n, naming);
    if (timm.empty()) timm = detail::strip_wrapper(n);  // reported as unexpected
    return no_head && timm.rfind("head.fc.", 0) == 0 ? std::string() : timm;
  };
  if (o.no_head) lo.skip_prefixes = {"head.fc."};
  static_cast<LoadReport&>(report) = load_state_dict(model, file, lo);
  return report;
}

template <class B, class T>
ConvNeXtLoadReport load_convnext_weights(ConvNeXt<B, T>& model, const std::string& path,
                                         const ConvNeXtLoadOptions& o = {}) {
  return load_convnext_weights(model, safetensors::File(path), o);
}

}  // namespace stpain
