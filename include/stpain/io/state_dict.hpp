#pragma once
// Saving and loading a model's parameters by their dotted PyTorch names.
#include <functional>
#include <set>
#include <sstream>

#include "stpain/io/safetensors.hpp"
#include "stpain/layers/module.hpp"

namespace stpain {

struct LoadOptions {
  // Missing, unexpected or mis-shaped tensors throw a StateDictError listing
  // all of them; with strict = false they are only reported.
  bool strict = true;
  // Maps a name in the file to the model's name ("" drops the tensor);
  // how checkpoints of another naming (timm, torchvision) are read.
  std::function<std::string(const std::string&)> rename;
  // Model parameters under these prefixes are neither loaded nor required
  // (e.g. "head.fc." to drop a classifier of another size).
  std::vector<std::string> skip_prefixes;
};

struct LoadReport {
  std::vector<std::string> loaded, missing, unexpected;
  std::vector<std::string> mismatched;  // "name: model [..] vs file [..]"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string str() const {
    std::ostringstream s;
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      s << "\n  " << v.size() << " " << what << ":";
      for (const auto& n : v) s << "\n    " << n;
    };
    s << loaded.size() << " tensors loaded";
    list("missing from the file", missing);
    list("unexpected in the file", unexpected);
    list("with mismatched shapes", mismatched);
    return s.str();
  }
};

// Shapes that hold the same values in the same order: equal once extents of 1
// are dropped. torchvision stores layer scales as [C, 1, 1] where timm has [C],
// 1x1 convolutions are [out, in, 1, 1] where a Linear is [out, in], and
// num_batches_tracked is [] where stpain keeps [1].
inline bool same_up_to_unit_dims(const Shape& a, const Shape& b) {
  auto squeeze = [](const Shape& s) {
    std::vector<int64_t> d;
    for (int64_t e : s)
      if (e != 1) d.push_back(e);
    return d;
  };
  return squeeze(a) == squeeze(b);
}

// A model's parameter values by name, as host tensors: how weights cross from
// a model on one backend to the same model built on another in a different
// translation unit (the CUDA trainers, gpu/cuda_training.hpp).
using NamedTensors = std::vector<std::pair<std::string, Tensor<float>>>;

template <class L>
NamedTensors parameter_values(L& model) {
  NamedTensors out;
  model.visit_parameters([&](const std::string& name, auto& p) {
    Tensor<float> v = Tensor<float>::empty(p.value.shape());
    std::copy(p.value.begin(), p.value.end(), v.begin());
    out.emplace_back(name, std::move(v));
  });
  return out;
}

// The inverse: every parameter of `model`, in visit order, from `values`;
// a name or shape that differs throws, naming it.
template <class L>
void set_parameter_values(L& model, const NamedTensors& values) {
  size_t i = 0;
  model.visit_parameters([&](const std::string& name, auto& p) {
    STPAIN_CHECK(i < values.size() && values[i].first == name, StateDictError, "set_parameter_values: parameter ", name,
                 " has no match at position ", i, i < values.size() ? " (found " + values[i].first + ")" : std::string());
    expect_shape(values[i].second.shape(), p.value.shape(), "set_parameter_values " + name);
    std::copy(values[i].second.begin(), values[i].second.end(), p.value.begin());
    ++i;
  });
  STPAIN_CHECK(i == values.size(), StateDictError, "set_parameter_values: ", values.size(), " values for ", i, " parameters");
}

template <class L>
void save_state_dict(L& model, const std::string& path, const std::map<std::string, std::string>& metadata = {},
                     safetensors::DType dtype = safetensors::DType::F32) {
  std::vector<safetensors::Entry> entries;
  for (const auto& [name, value] : parameter_values(model)) entries.push_back(safetensors::entry(name, value, dtype));
  safetensors::save(path, std::move(entries), metadata);
}

template <class L>
LoadReport load_state_dict(L& model, const safetensors::File& file, const LoadOptions& opt = {}) {
  auto skipped = [&](const std::string& name) {
    for (const auto& p : opt.skip_prefixes)
      if (name.rfind(p, 0) == 0) return true;
    return false;
  };
  // File tensors under the model's names.
  std::map<std::string, const safetensors::TensorInfo*> by_model_name;
  LoadReport report;
  for (const auto& ti : file.tensors()) {
    const std::string name = opt.rename ? opt.rename(ti.name) : ti.name;
    if (name.empty() || skipped(name)) continue;
    by_model_name[name] = &ti;
  }
  std::set<std::string> used;
  model.visit_parameters([&](const std::string& name, auto& p) {
    if (skipped(name)) return;
    auto it = by_model_name.find(name);
    if (it == by_model_name.end()) {
      report.missing.push_back(name);
      return;
    }
    used.insert(name);
    const auto& ti = *it->second;
    if (!same_up_to_unit_dims(ti.shape, p.value.shape())) {
      report.mismatched.push_back(name + ": model " + p.value.shape().str() + " vs file " + ti.shape.str() +
                                  " (\"" + ti.name + "\")");
      return;
    }
    using T = typename std::decay_t<decltype(p.value)>::value_type;
    if (safetensors::is_float(ti.dtype)) {
      const Tensor<T> v = file.load<T>(ti.name);
      std::copy(v.begin(), v.end(), p.value.begin());
    } else {  // integer buffers such as num_batches_tracked
      const auto v = file.load_integers(ti.name);
      std::transform(v.begin(), v.end(), p.value.begin(), [](int64_t x) { return static_cast<T>(x); });
    }
    report.loaded.push_back(name);
  });
  for (const auto& [name, ti] : by_model_name)
    if (!used.count(name)) report.unexpected.push_back(ti->name == name ? name : ti->name + " (as " + name + ")");
  if (opt.strict && !report.ok())
    throw StateDictError(file.path() + ": state dict does not match the model: " + report.str());
  return report;
}

template <class L>
LoadReport load_state_dict(L& model, const std::string& path, const LoadOptions& opt = {}) {
  return load_state_dict(model, safetensors::File(path), opt);
}

}  // namespace stpain
