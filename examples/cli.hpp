#pragma once
// A small command-line parser for the example programs: typed options bound
// to variables, --help generated from their descriptions, clear errors.
//   Cli cli("train_toy_classifier", "Trains ... ");
//   cli.option("--epochs", epochs, "training epochs");
//   if (!cli.parse(argc, argv)) return cli.exit_code();
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace stpain::examples {

// A path as the user meant it: relative to the folder `bazel run` was called from.
inline std::string user_path(const std::string& path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path[0] == '/' || !cwd) return path;
  return std::string(cwd) + "/" + path;
}

class Cli {
 public:
  Cli(std::string program, std::string description) : program_(std::move(program)), description_(std::move(description)) {}

  // Binds --name VALUE to target; the help shows the current value as default.
  template <class T>
  Cli& option(const std::string& name, T& target, const std::string& help) {
    options_.push_back({name, help, to_string(target), false, [&target, name](const std::string& v) {
                          target = parse_value<T>(name, v);
                        }});
    return *this;
  }
  // A file or folder option: relative paths are taken from where the user ran
  // `bazel run` (BUILD_WORKING_DIRECTORY), not from Bazel's runfiles folder.
  Cli& path_option(const std::string& name, std::string& target, const std::string& help) {
    options_.push_back({name, help, target, false, [&target](const std::string& v) { target = v; }});
    paths_.push_back(&target);
    return *this;
  }
  // Binds --name (no value) to target = set_to (true, or false for a --no-... flag).
  Cli& flag(const std::string& name, bool& target, const std::string& help, bool set_to = true) {
    options_.push_back({name, help, "", true, [&target, set_to](const std::string&) { target = set_to; }});
    return *this;
  }
  // Binds --name A,B,C to a list (empty items skipped); the help shows the current list as default.
  template <class T>
  Cli& list_option(const std::string& name, std::vector<T>& target, const std::string& help) {
    std::string shown;
    for (const T& v : target) {
      if (!shown.empty()) shown += ',';  // not "," + to_string(v): GCC 12 warns there (-Wrestrict, a false positive)
      shown += to_string(v);
    }
    options_.push_back({name, help, shown, false, [&target, name](const std::string& v) {
                          target.clear();
                          for (size_t begin = 0; begin <= v.size();) {
                            const size_t end = std::min(v.find(',', begin), v.size());
                            if (end > begin) target.push_back(parse_value<T>(name, v.substr(begin, end - begin)));
                            begin = end + 1;
                          }
                        }});
    return *this;
  }
  // Text printed after the options in --help: lists and notes too long for one option's line.
  Cli& epilogue(std::string text) {
    epilogue_ = std::move(text);
    return *this;
  }

  // False when the program should stop: after --help (exit 0) or an error (exit 2).
  bool parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        print_help();
        exit_code_ = 0;
        return false;
      }
      std::string name = arg, value;
      bool has_value = false;
      if (const auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
        name = arg.substr(0, eq);
        value = arg.substr(eq + 1);
        has_value = true;
      }
      const Option* opt = find(name);
      if (!opt) return fail("unknown argument '" + arg + "'");
      if (!opt->is_flag && !has_value) {
        if (i + 1 >= argc) return fail(name + " needs a value");
        value = argv[++i];
      }
      try {
        opt->set(value);
      } catch (const std::exception& e) {
        return fail(e.what());
      }
    }
    for (std::string* p : paths_) *p = user_path(*p);
    return true;
  }
  int exit_code() const { return exit_code_; }

  void print_help() const {
    std::printf("%s: %s\n\noptions:\n", program_.c_str(), description_.c_str());
    for (const auto& o : options_) {
      std::string head = "  " + o.name + (o.is_flag ? "" : " VALUE");
      if (head.size() < 26) head.resize(26, ' ');
      std::printf("%s %s%s\n", head.c_str(), o.help.c_str(),
                  o.is_flag || o.default_value.empty() ? "" : (" (default " + o.default_value + ")").c_str());
    }
    std::printf("  %-24s this text\n", "--help");
    if (!epilogue_.empty()) std::printf("\n%s\n", epilogue_.c_str());
  }

 private:
  struct Option {
    std::string name, help, default_value;
    bool is_flag;
    std::function<void(const std::string&)> set;
  };

  const Option* find(const std::string& name) const {
    for (const auto& o : options_)
      if (o.name == name) return &o;
    return nullptr;
  }
  bool fail(const std::string& why) {
    std::fprintf(stderr, "%s: %s (try --help)\n", program_.c_str(), why.c_str());
    exit_code_ = 2;
    return false;
  }

  template <class T>
  static T parse_value(const std::string& name, const std::string& v) {
    try {
      size_t used = 0;
      T out{};
      if constexpr (std::is_same_v<T, std::string>) {
        return v;
      } else if constexpr (std::is_floating_point_v<T>) {
        out = static_cast<T>(std::stod(v, &used));
      } else {
        out = static_cast<T>(std::stoll(v, &used));
      }
      if (used != v.size()) throw std::invalid_argument(v);
      return out;
    } catch (const std::exception&) {
      throw std::invalid_argument(name + ": cannot parse '" + v + "'");
    }
  }
  template <class T>
  static std::string to_string(const T& v) {
    if constexpr (std::is_same_v<T, std::string>) {
      return v;
    } else if constexpr (std::is_same_v<T, bool>) {
      return v ? "on" : "off";
    } else if constexpr (std::is_floating_point_v<T>) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
      return buf;
    } else {
      return std::to_string(v);
    }
  }

  std::string program_, description_;
  std::vector<Option> options_;
  std::vector<std::string*> paths_;
  std::string epilogue_;
  int exit_code_ = 0;
};

}  // namespace stpain::examples
