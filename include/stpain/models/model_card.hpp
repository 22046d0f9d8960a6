#pragma once
// A model card: what a checkpoint's safetensors metadata says about how to
// rebuild and feed the model (which network, its sizes, the input pipeline,
// fitted scaling). The trainers write one into every checkpoint; the
// prediction program reads it back, so a checkpoint file is all it needs.
#include <map>
#include <string>
#include <vector>

#include "stpain/io/json.hpp"
#include "stpain/io/safetensors.hpp"

namespace stpain {

class ModelCard {
 public:
  ModelCard() = default;
  explicit ModelCard(std::map<std::string, std::string> entries, std::string source = "")
      : entries_(std::move(entries)), source_(std::move(source)) {}
  static ModelCard of(const safetensors::File& f) { return ModelCard(f.metadata(), f.path()); }

  ModelCard& set(const std::string& key, const std::string& value) {
    entries_[key] = value;
    return *this;
  }
  ModelCard& set(const std::string& key, int64_t value) { return set(key, std::to_string(value)); }
  ModelCard& set(const std::string& key, const std::vector<double>& values) {
    json::Array a(values.begin(), values.end());
    return set(key, json::dump(json::Value(std::move(a))));
  }

  bool has(const std::string& key) const { return entries_.count(key) != 0; }
  // The value; a FormatError naming the checkpoint and the key when absent.
  const std::string& get(const std::string& key) const {
    auto it = entries_.find(key);
    STPAIN_CHECK(it != entries_.end(), FormatError, source_.empty() ? "model card" : source_, ": no \"", key,
                 "\" in the checkpoint's metadata (was it written by an stpain trainer?)");
    return it->second;
  }
  std::string get_or(const std::string& key, const std::string& fallback) const {
    return has(key) ? entries_.at(key) : fallback;
  }
  int64_t get_int(const std::string& key) const {
    const std::string& v = get(key);
    try {
      return std::stoll(v);
    } catch (const std::exception&) {
      throw FormatError(source_ + ": metadata \"" + key + "\" = \"" + v + "\" is not an integer");
    }
  }
  std::vector<double> get_numbers(const std::string& key) const {
    std::vector<double> out;
    try {
      const json::Value v = json::parse(get(key));
      for (const auto& x : v.as_array()) out.push_back(x.as_number());
    } catch (const FormatError&) {
      throw;
    } catch (const std::exception& e) {
      throw FormatError(source_ + ": metadata \"" + key + "\" is not a JSON array of numbers (" + e.what() + ")");
    }
    return out;
  }

  const std::map<std::string, std::string>& entries() const { return entries_; }

 private:
  std::map<std::string, std::string> entries_;
  std::string source_;
};

}  // namespace stpain
