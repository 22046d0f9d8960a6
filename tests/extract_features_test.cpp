// examples/extract_features as a program: a small PEMF-layout tree written
// here, features per clip, a corrupt frame reported and its clip left out,
// an interrupted run resumed from the cached clips, and augmented copies
// (--augment) added, cached and reproducible, and faceless clips left out
// under --face-crop.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "stpain/io/clip_features.hpp"

using namespace stpain;
namespace fs = std::filesystem;

namespace {
const fs::path kDir = fs::temp_directory_path() / ("stpain_extract_" + std::to_string(::getpid()));

void make_tree() {
  fs::remove_all(kDir);
  cv::Mat img(48, 40, CV_8UC3);
  int k = 0;
  for (const char* subject : {"S001", "S002"})
    for (const char* cond : {"Neutral", "Posed Pain", "Laser Pain"}) {
      const fs::path d = kDir / "Pictures" / "Modified" / subject / cond / "Colour frames";
      fs::create_directories(d);
      for (int f = 0; f < 20; ++f) {
        cv::randu(img, cv::Scalar::all(0), cv::Scalar::all(255));
        cv::imwrite((d / ("f" + std::to_string(100 + f) + ".png")).string(), img);
      }
      ++k;
    }
  std::ofstream(kDir / "Pictures/Modified/S002/Laser Pain/Colour frames/f105.png") << "not a png";
}

int run(const std::string& args) {
  const std::string cmd = "examples/extract_features --arch atto --size 64 --batch 10 " + args + " > " +
                          (kDir / "log.txt").string() + " 2>&1";
  return std::system(cmd.c_str());
}

std::string log_text() {
  std::ifstream in(kDir / "log.txt");
  return {std::istreambuf_iterator<char>(in), {}};
}
}  // namespace

TEST_CASE("extract_features writes one feature tensor per PEMF clip and resumes") {
  make_tree();
  const std::string out = (kDir / "features.safetensors").string();
  const std::string args = "--pemf " + kDir.string() + " --out " + out;
  REQUIRE(run(args) == 0);
  CHECK_THAT(log_text(), Catch::Contains("RANDOM weights"));
  CHECK_THAT(log_text(), Catch::Contains("left out S002/Laser Pain/Colour frames") && Catch::Contains("f105.png"));
  const ClipFeatures f = load_clip_features(out);
  CHECK(f.features.shape() == Shape{5, 20, 320});  // atto: 320 features; the corrupt clip is left out
  CHECK(f.labels == std::vector<int64_t>{1, 0, 1, 0, 1});  // stimulus folders by name: Laser, Neutral, Posed
  CHECK(f.subjects == std::vector<int64_t>{0, 0, 0, 1, 1});
  CHECK(f.clip_ids[3] == "S002/Neutral/Colour frames");
  CHECK(f.subject_names == std::vector<std::string>{"S001", "S002"});
  CHECK(f.provenance.at("left_out").find("f105.png") != std::string::npos);

  // Resume: cached clips are reused (their files untouched), a deleted one is redone.
  const fs::path kept = out + ".parts/clip_0.safetensors", redone = out + ".parts/clip_1.safetensors";
  const auto kept_time = fs::last_write_time(kept);
  fs::remove(redone);
  REQUIRE(run(args) == 0);
  CHECK_THAT(log_text(), Catch::Contains("4 cached"));
  CHECK(fs::last_write_time(kept) == kept_time);
  CHECK(fs::exists(redone));
  const ClipFeatures again = load_clip_features(out);
  CHECK(again.features.to_vector() == f.features.to_vector());  // same seed, same features

  CHECK(f.augmented_copies() == 0);
  CHECK(f.provenance.count("augmentation") == 0);

  // --augment 1: the plain clips come from the cache, one augmented copy per clip is added.
  REQUIRE(run(args + " --augment 1") == 0);
  CHECK_THAT(log_text(), Catch::Contains("1 augmented copies each"));
  CHECK(fs::last_write_time(kept) == kept_time);
  CHECK(fs::exists(out + ".parts/clip_0_augmented_0.safetensors"));
  const ClipFeatures aug = load_clip_features(out);
  REQUIRE(aug.augmented_features.shape() == Shape{5, 1, 20, 320});
  CHECK(aug.augmented_copies() == 1);
  CHECK(aug.features.to_vector() == f.features.to_vector());
  CHECK(aug.augmented_features.to_vector() != aug.features.to_vector());
  for (int64_t c = 0; c < 5; ++c) {  // every clip's copy differs from its plain features
    const auto plain = aug.features.slice(c, c + 1).to_vector();
    const auto copy = aug.augmented_features.slice(c, c + 1).to_vector();
    CHECK(plain != copy);
  }
  CHECK_THAT(aug.provenance.at("augmentation"), Catch::Contains("1 copies per clip") && Catch::Contains("flip"));

  // A rerun reuses everything; a run from scratch draws the same augmentation.
  REQUIRE(run(args + " --augment 1") == 0);
  CHECK_THAT(log_text(), Catch::Contains("5 cached"));
  fs::remove_all(out + ".parts");
  REQUIRE(run(args + " --augment 1") == 0);
  const ClipFeatures fresh = load_clip_features(out);
  CHECK(fresh.augmented_features.to_vector() == aug.augmented_features.to_vector());
  CHECK(fresh.features.to_vector() == f.features.to_vector());
  // Another seed draws other augmentations (the plain features stay).
  REQUIRE(run(args + " --augment 1 --augment-seed 9") == 0);
  const ClipFeatures reseeded = load_clip_features(out);
  CHECK(reseeded.augmented_features.to_vector() != aug.augmented_features.to_vector());
  CHECK(reseeded.features.to_vector() == f.features.to_vector());
  CHECK(run("--image " + (kDir / "log.txt").string() + " --augment 1 --out " + out) != 0);
  CHECK_THAT(log_text(), Catch::Contains("--augment needs --pemf"));

  // --face-crop: noise frames have no face, so every clip is reported and left out.
  REQUIRE(run(args + " --face-crop") != 0);
  CHECK_THAT(log_text(), Catch::Contains("left out S001/Neutral/Colour frames") && Catch::Contains("no face found") &&
                             Catch::Contains("no clip could be read"));

  CHECK(run("--pemf " + (kDir / "nothing").string() + " --out " + out) != 0);
  CHECK_THAT(log_text(), Catch::Contains("nothing"));
  CHECK(run("--out " + out) != 0);
  CHECK_THAT(log_text(), Catch::Contains("exactly one of --image, --frames or --pemf"));
  fs::remove_all(kDir);
}
