// Writes generated landmark clips with a planted pain movement (brow lowering,
// eye closure; include/stpain/synthetic/planted_landmarks.hpp) as a tidy
// landmarks CSV, to try train_stgcn without images or dlib.
//   bazel run //examples:make_planted_landmarks -- --out planted_landmarks.csv [--shuffle-labels]
#include <cstdio>

#include "examples/cli.hpp"
#include "stpain/data/landmark_csv.hpp"
#include "stpain/synthetic/planted_landmarks.hpp"

using namespace stpain;

int main(int argc, char** argv) {
  PlantedLandmarkOptions o;
  std::string out;
  int64_t seed = 1;
  examples::Cli cli("make_planted_landmarks", "generated landmark clips with a planted pain movement, as a tidy CSV");
  cli.path_option("--out", out, "output tidy CSV (required)")
      .option("--subjects", o.subjects, "subjects (4 clips each: 1 no pain, 3 pain)")
      .option("--frames", o.frames, "frames per clip")
      .option("--seed", seed, "seed")
      .flag("--shuffle-labels", o.shuffle_labels, "permute the labels (nothing left to learn)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    STPAIN_CHECK(!out.empty(), Error, "--out is required");
    o.seed = static_cast<uint64_t>(seed);
    const PlantedLandmarks d = make_planted_landmarks(o);
    const char* conditions[] = {"Neutral", "Posed Pain", "Algometer Pain", "Laser Pain"};
    std::vector<ClipLandmarks> clips;
    for (int64_t c = 0; c < d.points.size(0); ++c) {
      char subject[32];
      std::snprintf(subject, sizeof subject, "S%03lld", static_cast<long long>(d.subjects[static_cast<size_t>(c)] + 1));
      ClipLandmarks clip;
      clip.subject = subject;
      clip.condition = d.labels[static_cast<size_t>(c)] ? conditions[1 + c % 3] : conditions[0];
      clip.id = clip.subject + "/" + conditions[c % 4] + "/generated";
      clip.label = static_cast<int>(d.labels[static_cast<size_t>(c)]);
      for (int64_t t = 0; t < d.points.size(1); ++t) {
        FrameLandmarks f;
        f.status = LandmarkStatus::detected;
        f.score = 1.0;
        f.faces = 1;
        f.source_frame = t;
        for (int p = 0; p < 68; ++p) f.points[static_cast<size_t>(p)] = {d.points(c, t, p, 0), d.points(c, t, p, 1)};
        clip.frames.push_back(f);
      }
      clips.push_back(std::move(clip));
    }
    write_tidy_landmarks_csv(out, clips);
    std::printf("%s: %zu clips x %lld frames x 68 points%s\n", out.c_str(), clips.size(), static_cast<long long>(o.frames),
                o.shuffle_labels ? " (labels shuffled)" : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_planted_landmarks: %s\n", e.what());
    return 1;
  }
  return 0;
}
