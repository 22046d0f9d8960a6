// A PEMF-like dataset from one real face photo, in PEMF's own layout, so the
// whole project runs end to end without the real database:
//   bazel run //examples:make_synthetic_pemf -- --out /tmp/pemf
//   bazel run //examples:extract_landmarks -- --pemf /tmp/pemf --out-csv ...
// 68 subjects x {Neutral, Posed Pain, Algometer Pain, Laser Pain} x 20 frames,
// colour and B/W, plus metadata.csv (clip ids S001A..., intensity, the action
// units planted). See include/stpain/data/synthetic_pemf.hpp for how.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "examples/cli.hpp"
#include "stpain/data/pemf.hpp"
#include "stpain/data/synthetic_pemf.hpp"

using namespace stpain;
namespace fs = std::filesystem;

namespace {

const char* const kDefaultPhoto = "tests/data/astronaut.png";

// The model Bazel ships with the program (data = @dlib//:shape_predictor_68),
// else Debian's copy; the detector's error names the last place looked.
std::string default_model(const char* argv0) {
  const std::string rel = "dlib/share/dlib/shape_predictor_68_face_landmarks.dat";
  std::vector<std::string> candidates;
  if (const char* dir = std::getenv("RUNFILES_DIR")) candidates.push_back(std::string(dir) + "/" + rel);
  candidates.push_back(std::string(argv0) + ".runfiles/" + rel);
  candidates.push_back("../" + rel);        // run from the main repository's runfiles folder
  candidates.push_back("external/" + rel);  // legacy external runfiles layout
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return c;
  }
  return kDebianShapePredictor68;
}

// The astronaut photo: shipped in the runfiles when tools/setup.sh has
// fetched it, else in the workspace `bazel run` was started from, else
// relative to here. Throws naming every place looked when it is nowhere.
std::string default_photo() {
  std::vector<std::string> candidates = {kDefaultPhoto};  // runfiles (cwd under bazel run) or a checkout
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY"))
    candidates.push_back(std::string(ws) + "/" + kDefaultPhoto);
  std::string looked;
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return c;
    looked += "\n  " + fs::absolute(c, ec).string();
  }
  throw Error(detail::concat("the default face photo ", kDefaultPhoto, " is missing (looked in:", looked,
                             ")\ntools/setup.sh fetches it (NASA's astronaut portrait, public domain); or give "
                             "--photo FILE with a frontal face"));
}

}  // namespace

int main(int argc, char** argv) {
  SyntheticPemfOptions o;
  std::string out, photo, model;
  int64_t subjects = o.subjects, frames = o.frames, size = o.image_size, quality = o.jpeg_quality, threads = 2;
  int64_t seed = static_cast<int64_t>(o.seed);
  bool colour_only = false, overwrite = false;
  examples::Cli cli("make_synthetic_pemf",
                    "a PEMF-like dataset (PEMF's folder layout + metadata.csv) made by warping one real face photo: "
                    "subjects of different face shape, colouring and lighting; pain clips with the PSPI action units "
                    "(brow lowering, lid tightening, nose wrinkle / upper-lip raise, eye closure)");
  cli.path_option("--out", out, "output folder (new or empty; or an earlier synthetic set with --overwrite)")
      .option("--subjects", subjects, "subjects S001..; 4 clips each")
      .option("--frames", frames, "frames per clip")
      .option("--seed", seed, "random seed: the same seed writes the same files")
      .option("--size", size, "frame width and height in pixels")
      .option("--jpeg-quality", quality, "JPEG quality, 1-100")
      .option("--expression-scale", o.expression_scale,
              "how far the action units move the face, x the base amplitudes (1: a pixel or two, hard; 2: learnable, not trivial)")
      .flag("--colour-only", colour_only, "write only the `Colour frames` folders (no `BW frames`)")
      .flag("--overwrite", overwrite, "replace an earlier synthetic set in --out (nothing else is ever deleted)")
      .path_option("--photo", photo,
                   "a photo with one frontal face (default: tests/data/astronaut.png, "
                   "fetched by tools/setup.sh)")
      .path_option("--model", model,
                   "dlib shape_predictor_68_face_landmarks.dat (default: the one Bazel ships, "
                   "else /usr/share/dlib from Debian's libdlib-data)")
      .option("--threads", threads, "worker threads (subjects in parallel)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    STPAIN_CHECK(!out.empty(), Error, "--out is required: the folder to write the dataset into");
    STPAIN_CHECK(threads > 0, Error, "--threads must be positive, got ", threads);
    STPAIN_CHECK(seed >= 0, Error, "--seed must be >= 0, got ", seed);
    o.subjects = subjects;
    o.frames = frames;
    o.image_size = static_cast<int>(size);
    o.jpeg_quality = static_cast<int>(quality);
    o.seed = static_cast<uint64_t>(seed);
    o.bw_frames = !colour_only;
    o.overwrite = overwrite;
    o.photo = photo.empty() ? default_photo() : photo;
    o.model_path = model.empty() ? default_model(argv[0]) : model;
    o.threads = static_cast<int>(threads);
    set_num_threads(static_cast<int>(threads));
    std::printf("photo %s, %lld subjects x 4 clips x %lld frames, %lld x %lld px, seed %lld, %s\n", o.photo.c_str(),
                static_cast<long long>(o.subjects), static_cast<long long>(o.frames), static_cast<long long>(size),
                static_cast<long long>(size), static_cast<long long>(seed),
                colour_only ? "colour frames only" : "colour + B/W frames");
    std::fflush(stdout);

    const SyntheticPemf set = make_synthetic_pemf(out, o, stdout);

    std::map<std::string, std::pair<int, double>> by_condition;  // clips, summed intensity
    for (const auto& c : set.clips) {
      auto& [count, sum] = by_condition[condition_name(c.condition)];
      ++count;
      sum += c.intensity;
    }
    for (const auto& [name, stats] : by_condition)
      std::printf("  %-15s %3d clips, mean intensity %.2f / 8\n", name.c_str(), stats.first,
                  stats.second / std::max(stats.first, 1));
    // Read it back the way every pipeline will: the layout must index cleanly.
    PemfOptions po;
    po.clip_length = o.frames;
    const PemfIndex index = index_pemf(out, po);
    std::printf("%s: %s\n", out.c_str(), index.summary().c_str());
    std::printf("%lld images in %.1f s; clip metadata in %s\n", static_cast<long long>(set.images_written), set.seconds,
                set.metadata.c_str());
    STPAIN_CHECK(index.skipped.empty(), Error, "the written set does not index cleanly (", index.skipped.size(),
                 " skipped): a bug");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_synthetic_pemf: %s\n", e.what());
    return 1;
  }
  return 0;
}
