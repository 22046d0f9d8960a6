// Writes generated clip features with a planted temporal pain pattern (see
// include/stpain/synthetic/planted_features.hpp), in extract_features' format,
// to try the sequence trainers without images or a backbone.
//   bazel run //examples:make_planted_features -- --out planted.safetensors [--shuffle-labels]
#include <cstdio>

#include "examples/cli.hpp"
#include "stpain/synthetic/planted_features.hpp"

using namespace stpain;

int main(int argc, char** argv) {
  PlantedFeatureOptions o;
  std::string out;
  int64_t seed = 1;
  examples::Cli cli("make_planted_features", "generated clip features with a planted temporal pain pattern");
  cli.path_option("--out", out, "output .safetensors (required)")
      .option("--subjects", o.subjects, "subjects (4 clips each: 1 no pain, 3 pain)")
      .option("--frames", o.frames, "frames per clip")
      .option("--dim", o.dim, "feature size")
      .option("--seed", seed, "seed")
      .flag("--shuffle-labels", o.shuffle_labels, "permute the labels (nothing left to learn)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    STPAIN_CHECK(!out.empty(), Error, "--out is required");
    o.seed = static_cast<uint64_t>(seed);
    const ClipFeatures f = make_planted_features(o);
    save_clip_features(out, f);
    std::printf("%s: %lld clips x %lld frames x %lld features%s\n", out.c_str(), static_cast<long long>(f.clips()),
                static_cast<long long>(f.frames()), static_cast<long long>(f.dim()), o.shuffle_labels ? " (labels shuffled)" : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_planted_features: %s\n", e.what());
    return 1;
  }
  return 0;
}
