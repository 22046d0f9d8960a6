#pragma once
// Per-clip frame features on disk: what extract_features writes for a dataset
// and the sequence trainers read. One safetensors file holding
//   features  F32 [clips, frames, dim]     (pooled + LayerNorm frame features)
//   logits    F32 [clips, frames, classes] (only when the backbone had a head)
//   augmented_features F32 [clips, copies, frames, dim]
//             (only when extracted with augmented copies: each clip's features
//             under `copies` independent draws of the training augmentation,
//             data/frame_augment.hpp; provenance "augmentation" says which)
//   labels    I64 [clips]                  (0 no pain, 1 pain)
//   subjects  I64 [clips]                  (subject index, for grouped folds)
// and metadata: clip ids, subject names and conditions as JSON arrays, plus
// free-form provenance (backbone, weights, preprocessing).
#include <string>
#include <vector>

#include "stpain/io/json.hpp"
#include "stpain/io/safetensors.hpp"

namespace stpain {

struct ClipFeatures {
  Tensor<float> features;  // [clips, frames, dim]
  Tensor<float> logits;    // [clips, frames, classes] or empty
  Tensor<float> augmented_features;  // [clips, copies, frames, dim] or empty
  std::vector<int64_t> labels, subjects;
  std::vector<std::string> clip_ids, subject_names, conditions;
  std::map<std::string, std::string> provenance;

  int64_t clips() const { return features.defined() ? features.size(0) : 0; }
  int64_t frames() const { return features.size(1); }
  int64_t dim() const { return features.size(2); }
  int64_t augmented_copies() const { return augmented_features.defined() ? augmented_features.size(1) : 0; }
};

namespace detail {
inline std::string json_strings(const std::vector<std::string>& v) {
  json::Array a;
  for (const auto& s : v) a.push_back(s);
  return json::dump(json::Value(std::move(a)));
}
inline std::vector<std::string> strings_from_json(const std::string& path, const std::string& key,
                                                  const std::map<std::string, std::string>& meta) {
  auto it = meta.find(key);
  STPAIN_CHECK(it != meta.end(), FormatError, path, ": metadata has no \"", key, "\"");
  std::vector<std::string> out;
  try {
    const json::Value parsed = json::parse(it->second);
    for (const auto& v : parsed.as_array()) out.push_back(v.as_string());
  } catch (const std::exception& e) {
    throw FormatError(path + ": metadata \"" + key + "\" is not a JSON array of strings (" + e.what() + ")");
  }
  return out;
}
}  // namespace detail

inline void save_clip_features(const std::string& path, const ClipFeatures& c) {
  const auto n = static_cast<size_t>(c.clips());
  STPAIN_CHECK(c.features.rank() == 3 && c.labels.size() == n && c.subjects.size() == n && c.clip_ids.size() == n &&
                   c.conditions.size() == n,
               ShapeError, path, ": features ", c.features.shape().str(), " need ", n,
               " labels, subjects, clip ids and conditions");
  std::vector<safetensors::Entry> entries = {safetensors::entry("features", c.features),
                                             safetensors::integer_entry("labels", c.labels),
                                             safetensors::integer_entry("subjects", c.subjects)};
  if (c.logits.defined()) entries.push_back(safetensors::entry("logits", c.logits));
  if (c.augmented_features.defined()) {
    const Tensor<float>& a = c.augmented_features;
    STPAIN_CHECK(a.rank() == 4 && a.size(0) == c.clips() && a.size(2) == c.frames() && a.size(3) == c.dim(),
                 ShapeError, path, ": augmented_features ", a.shape().str(), " do not match features ",
                 c.features.shape().str(), " (expected [clips, copies, frames, dim])");
    entries.push_back(safetensors::entry("augmented_features", a));
  }
  auto meta = c.provenance;
  meta["clip_ids"] = detail::json_strings(c.clip_ids);
  meta["subject_names"] = detail::json_strings(c.subject_names);
  meta["conditions"] = detail::json_strings(c.conditions);
  safetensors::save(path, std::move(entries), meta);
}

// Reads and cross-checks a clip feature file; errors name the file.
inline ClipFeatures load_clip_features(const std::string& path) {
  const safetensors::File f(path);
  ClipFeatures c;
  c.features = f.load("features");
  STPAIN_CHECK(c.features.rank() == 3, FormatError, path, ": \"features\" has shape ", c.features.shape().str(),
               ", expected [clips, frames, dim]");
  c.labels = f.load_integers("labels");
  c.subjects = f.load_integers("subjects");
  if (f.contains("logits")) c.logits = f.load("logits");
  if (f.contains("augmented_features")) {
    c.augmented_features = f.load("augmented_features");
    const Tensor<float>& a = c.augmented_features;
    STPAIN_CHECK(a.rank() == 4 && a.size(0) == c.clips() && a.size(2) == c.frames() && a.size(3) == c.dim(),
                 FormatError, path, ": \"augmented_features\" has shape ", a.shape().str(), ", expected [",
                 c.clips(), ", copies, ", c.frames(), ", ", c.dim(), "]");
  }
  c.clip_ids = detail::strings_from_json(path, "clip_ids", f.metadata());
  c.subject_names = detail::strings_from_json(path, "subject_names", f.metadata());
  c.conditions = detail::strings_from_json(path, "conditions", f.metadata());
  const auto n = static_cast<size_t>(c.clips());
  STPAIN_CHECK(c.labels.size() == n && c.subjects.size() == n && c.clip_ids.size() == n && c.conditions.size() == n,
               FormatError, path, ": ", n, " clips of features but ", c.labels.size(), " labels, ", c.subjects.size(),
               " subjects, ", c.clip_ids.size(), " clip ids, ", c.conditions.size(), " conditions");
  for (size_t i = 0; i < n; ++i) {
    STPAIN_CHECK(c.labels[i] == 0 || c.labels[i] == 1, FormatError, path, ": label ", c.labels[i], " of clip ", i,
                 " (", c.clip_ids[i], ") is not 0 or 1");
    STPAIN_CHECK(c.subjects[i] >= 0 && c.subjects[i] < static_cast<int64_t>(c.subject_names.size()), FormatError,
                 path, ": subject index ", c.subjects[i], " of clip ", i, " is out of range");
  }
  for (const auto& [k, v] : f.metadata())
    if (k != "clip_ids" && k != "subject_names" && k != "conditions") c.provenance[k] = v;
  return c;
}

}  // namespace stpain
