// examples/extract_landmarks as a program: a small MJPG .avi made from the
// astronaut photo through --video (overlays, a carried frame), a PEMF-layout
// tree with a faceless clip reported and left out, a faceless --frames folder,
// and the program's errors. (VideoReader itself: tests/landmarks_test.cpp.)
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "stpain/data/landmark_csv.hpp"
#include "stpain/data/landmarks.hpp"

using namespace stpain;
namespace fs = std::filesystem;

namespace {

const fs::path kDir = [] {
  const char* base = std::getenv("TEST_TMPDIR");
  return (base ? fs::path(base) : fs::temp_directory_path()) / ("extract_landmarks_" + std::to_string(::getpid()));
}();

const cv::Mat& photo() {
  static const cv::Mat p = read_image("tests/data/astronaut.png");
  return p;
}

// 224 x 224 around the face, moved by `shift` pixels; the face painted over when faceless.
cv::Mat frame(cv::Point2f shift, bool faceless = false) {
  const cv::Matx23d m(1, 0, shift.x - 110, 0, 1, shift.y - 14);
  cv::Mat out;
  cv::warpAffine(photo(), out, m, cv::Size(224, 224), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  if (faceless) cv::rectangle(out, cv::Rect(cv::Point2f(50, 46) + shift, cv::Point2f(180, 186) + shift),
                              cv::Scalar(150, 170, 210), cv::FILLED);
  return out;
}

int run(const std::string& args) {
  const std::string cmd = "examples/extract_landmarks " + args + " > " + (kDir / "log.txt").string() + " 2>&1";
  return std::system(cmd.c_str());
}

std::string log_text() {
  std::ifstream in(kDir / "log.txt");
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string write_video() {
  const std::string path = (kDir / "talk.avi").string();
  cv::VideoWriter writer(path, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10, cv::Size(224, 224));
  REQUIRE(writer.isOpened());
  for (int i = 0; i < 8; ++i) writer.write(frame({float(2 * i), float(-i)}, i == 5));  // frame 5 faceless
  writer.release();
  return path;
}

}  // namespace

TEST_CASE("extract_landmarks --video: CSVs and overlays, the faceless frame carried") {
  fs::remove_all(kDir);
  fs::create_directories(kDir);
  const std::string video = write_video();
  const std::string csv = (kDir / "lm.csv").string(), tidy = (kDir / "tidy.csv").string(),
                    overlays = (kDir / "overlays").string();
  REQUIRE(run("--video " + video + " --max-frames 7 --out-csv " + csv + " --tidy-csv " + tidy + " --overlay-dir " +
              overlays) == 0);
  INFO(log_text());
  CHECK_THAT(log_text(), Catch::Contains("talk: 7 frames: 6 detected, 1 carried"));
  CHECK_THAT(log_text(), Catch::Contains("frames/s"));

  CHECK(read_authors_landmarks_csv(csv, 7).shape() == Shape{1, 7, 68, 2});
  const LandmarkDataset d = read_tidy_landmarks_csv(tidy);
  REQUIRE(d.points.shape() == Shape{1, 7, 68, 2});
  CHECK(d.clip_ids == std::vector<std::string>{"talk"});
  CHECK(d.carried.to_vector() == std::vector<float>{0, 0, 0, 0, 0, 1, 0});
  for (int k = 0; k < 68; ++k) CHECK(d.points(0, 5, k, 0) == d.points(0, 4, k, 0));  // carried from frame 4
  CHECK(std::isnan(d.scores(0, 5)));
  CHECK(d.scores(0, 4) > 0);

  // One PNG per frame; the carried one framed in red, a detected one not.
  int pngs = 0;
  for (const auto& e : fs::directory_iterator(fs::path(overlays) / "talk")) pngs += e.path().extension() == ".png";
  CHECK(pngs == 7);
  const cv::Mat carried = cv::imread(overlays + "/talk/frame_000005.png");
  const cv::Mat detected = cv::imread(overlays + "/talk/frame_000004.png");
  REQUIRE(carried.size() == cv::Size(224, 224));
  const cv::Vec3b edge = carried.at<cv::Vec3b>(200, 1), plain = detected.at<cv::Vec3b>(200, 1);
  CHECK(edge == cv::Vec3b(40, 40, 230));  // the overlay's red (BGR)
  CHECK(plain != cv::Vec3b(40, 40, 230));
}

TEST_CASE("extract_landmarks --pemf and --frames: faceless clips reported by id and left out") {
  fs::remove_all(kDir);
  const std::string csv = (kDir / "lm.csv").string(), labels = (kDir / "labels.csv").string(),
                    tidy = (kDir / "tidy.csv").string();

  // S001/Neutral has faces; S001/Posed Pain none; S002/Laser Pain a faceless middle frame.
  const fs::path root = kDir / "PEMF" / "Pictures" / "Modified";
  auto clip = [&](const std::string& subject, const std::string& condition, std::vector<bool> faceless) {
    const fs::path d = root / subject / condition / "Colour frames";
    fs::create_directories(d);
    for (size_t i = 0; i < faceless.size(); ++i)
      cv::imwrite((d / ("img" + std::to_string(i) + ".jpg")).string(), frame({float(3 * i), 2}, faceless[i]));
  };
  clip("S001", "Neutral", {false, false, false});
  clip("S001", "Posed Pain", {true, true, true});
  clip("S002", "Laser Pain", {false, true, false});
  REQUIRE(run("--pemf " + (kDir / "PEMF").string() + " --clip-length 3 --out-csv " + csv + " --labels-csv " + labels +
              " --tidy-csv " + tidy) == 0);
  INFO(log_text());
  CHECK_THAT(log_text(), Catch::Contains("no face in clip S001/Posed Pain/Colour frames (3 frames): left out"));
  CHECK_THAT(log_text(), Catch::Contains("clips 3/3 (100%)") && Catch::Contains("ETA"));
  CHECK_THAT(log_text(), Catch::Contains("2 clips kept, 1 left out"));
  const LandmarkDataset authors = read_authors_landmarks(csv, labels, 3);
  CHECK(authors.clips() == 2);
  CHECK(authors.labels == std::vector<int64_t>{0, 1});
  const LandmarkDataset d = read_tidy_landmarks_csv(tidy);
  CHECK(d.clip_ids == std::vector<std::string>{"S001/Neutral/Colour frames", "S002/Laser Pain/Colour frames"});
  CHECK(d.subject_names == std::vector<std::string>{"S001", "S002"});
  CHECK(d.conditions == std::vector<std::string>{"Neutral", "Laser Pain"});
  CHECK(d.carried.to_vector() == std::vector<float>{0, 0, 0, 0, 1, 0});
  CHECK(d.points.to_vector() == authors.points.to_vector());

  // A frame folder without a face: reported, an error, and nothing written.
  fs::remove(csv);
  CHECK(run("--frames \"" + (root / "S001" / "Posed Pain" / "Colour frames").string() + "\" --out-csv " + csv) != 0);
  CHECK_THAT(log_text(), Catch::Contains("no face in clip Colour frames (3 frames): left out") &&
                             Catch::Contains("no clip with a face"));
  CHECK_FALSE(fs::exists(csv));
}

TEST_CASE("extract_landmarks: usage errors and a missing model are explained") {
  fs::create_directories(kDir);
  CHECK(run("--help") == 0);
  CHECK_THAT(log_text(), Catch::Contains("--video") && Catch::Contains("--tidy-csv"));
  CHECK(run("--out-csv x.csv") != 0);
  CHECK_THAT(log_text(), Catch::Contains("exactly one of --image, --frames, --video or --pemf"));
  CHECK(run("--image tests/data/astronaut.png") != 0);
  CHECK_THAT(log_text(), Catch::Contains("nothing to write"));
  CHECK(run("--image tests/data/astronaut.png --out-csv x.csv --labels-csv y.csv") != 0);
  CHECK_THAT(log_text(), Catch::Contains("--labels-csv needs --pemf"));
  CHECK(run("--image tests/data/astronaut.png --out-csv x.csv --model /nowhere/model.dat") != 0);
  CHECK_THAT(log_text(), Catch::Contains("/nowhere/model.dat") && Catch::Contains("libdlib-data"));
  fs::remove_all(kDir);
}
