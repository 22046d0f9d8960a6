// --device on the trainers and extract_features: cpu is the default, cuda
// stops the program before any work with a message saying why it can't run
// here (a default build has no CUDA backend; a --config=cuda build on a
// machine without a GPU finds no device), and anything else is refused.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

struct Outcome {
  int rc;
  std::string output;
};

Outcome run(const std::string& program, const std::string& args) {
  const fs::path log = fs::temp_directory_path() / ("stpain_device_" + std::to_string(::getpid()) + ".log");
  const int status = std::system(("examples/" + program + " " + args + " > '" + log.string() + "' 2>&1").c_str());
  std::ifstream in(log);
  Outcome o{WIFEXITED(status) ? WEXITSTATUS(status) : -1, {std::istreambuf_iterator<char>(in), {}}};
  fs::remove(log);
  return o;
}

// Each program with its required inputs (missing files: the device is checked first).
const std::pair<const char*, const char*> kPrograms[] = {
    {"train_stgcn", "--tidy /nonexistent/landmarks.csv --out /nonexistent/out"},
    {"train_convnext_lstm", "--features /nonexistent/features.safetensors --out /nonexistent/out"},
    {"train_fusion", "--features /nonexistent/features.safetensors --tidy /nonexistent/landmarks.csv --out /nonexistent/out"},
    {"train_convnext_frames", "--pemf /nonexistent/pemf --out /nonexistent/out.safetensors"},
    {"extract_features", "--image /nonexistent/face.png --arch atto --out /nonexistent/out.safetensors"},
};

}  // namespace

TEST_CASE("every trainer and extract_features documents --device") {
  for (const auto& [program, args] : kPrograms) {
    INFO(program);
    const Outcome o = run(program, "--help");
    CHECK(o.rc == 0);
    CHECK(o.output.find("--device") != std::string::npos);
  }
}

TEST_CASE("--device cuda says why it can't run, before touching the inputs") {
  for (const auto& [program, args] : kPrograms) {
    const Outcome o = run(program, std::string(args) + " --device cuda");
    INFO(program << ":\n" << o.output);
    CHECK(o.rc == 1);
#if defined(STPAIN_WITH_CUDA)
    // No GPU: the device error; a GPU: it is named, then the missing input stops the program.
    CHECK((o.output.find("CUDA device") != std::string::npos || o.output.find("device: ") != std::string::npos));
#else
    CHECK(o.output.find(std::string(program) + ": --device cuda: this program was built without the CUDA backend") !=
          std::string::npos);
    CHECK(o.output.find("--config=cuda") != std::string::npos);
    CHECK(o.output.find("nonexistent") == std::string::npos);
#endif
  }
}

TEST_CASE("--device takes cpu or cuda only") {
  for (const auto& [program, args] : kPrograms) {
    const Outcome o = run(program, std::string(args) + " --device gpu0");
    INFO(program << ":\n" << o.output);
    CHECK(o.rc == 1);
    CHECK(o.output.find("--device must be cpu or cuda, not \"gpu0\"") != std::string::npos);
  }
}
