#include "stpain/data/image.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "support/fixtures.hpp"

using namespace stpain;
using namespace stpain::testing;
namespace fs = std::filesystem;

namespace {

const char* const kAstronaut = "tests/data/astronaut.png";

// A fresh directory under Bazel's per-test temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    const char* base = std::getenv("TEST_TMPDIR");
    path = (base ? fs::path(base) : fs::temp_directory_path()) / (name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// Compares x [3, 224, 224] with the fixture's strided samples, full rows and
// per-channel sums of the Python reference.
void expect_matches_reference(const Tensor<float>& x, const safetensors::File& f, const std::string& name) {
  INFO("case " << name);
  REQUIRE(x.shape() == Shape{3, 224, 224});
  const int64_t stride = f.load_integers("stride").at(0);
  const std::vector<int64_t> rows = f.load_integers("rows");
  const Tensor<float> sub = f.load(name + ".sub"), full_rows = f.load(name + ".rows");
  const Tensor<double> sums = f.load<double>(name + ".sum");
  REQUIRE(sub.shape() == Shape{3, 32, 32});
  REQUIRE(full_rows.shape() == Shape{3, static_cast<int64_t>(rows.size()), 224});

  double worst = 0;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 32; ++i)
      for (int64_t j = 0; j < 32; ++j)
        worst = std::max(worst, double(std::fabs(x(c, i * stride, j * stride) - sub(c, i, j))));
  for (int64_t c = 0; c < 3; ++c)
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t j = 0; j < 224; ++j)
        worst = std::max(worst, double(std::fabs(x(c, rows[r], j) - full_rows(c, static_cast<int64_t>(r), j))));
  CHECK(worst <= 1e-6);
  for (int64_t c = 0; c < 3; ++c) {
    double sum = 0;
    for (int64_t i = 0; i < 224 * 224; ++i) sum += x[c * 224 * 224 + i];
    INFO("channel " << c);
    CHECK(sum == Approx(sums[c]).epsilon(0).margin(1e-6 * 224 * 224));
  }
}

}  // namespace

TEST_CASE("frames are preprocessed exactly as the authors' cv2 + numpy code") {
  const safetensors::File f(fixture_path("frames.safetensors"));
  const cv::Mat photo = read_image(kAstronaut);
  REQUIRE(photo.type() == CV_8UC3);
  REQUIRE(photo.size() == cv::Size(512, 512));

  expect_matches_reference(preprocess_frame(photo), f, "authors");

  FramePreprocess gray;
  gray.grayscale = true;
  expect_matches_reference(preprocess_frame(photo, gray), f, "gray");
}

TEST_CASE("crop_pct follows timm's shorter-side resize and centre crop (cv2 bilinear)") {
  const safetensors::File f(fixture_path("frames.safetensors"));
  const cv::Mat photo = read_image(kAstronaut);
  FramePreprocess crop;
  crop.crop_pct = 0.875;
  expect_matches_reference(preprocess_frame(photo, crop), f, "crop");
  // A non-square input (400 x 512, a view into the photo, not contiguous):
  // 256 x 327 after the resize, crop offset 52 from round-half-even of 51.5.
  expect_matches_reference(preprocess_frame(photo(cv::Rect(0, 0, 512, 400)), crop), f, "crop_wide");
}

TEST_CASE("grey and BGRA images are expanded to three channels") {
  cv::Mat bgr(40, 30, CV_8UC3);
  cv::randu(bgr, 0, 256);
  cv::Mat grey, grey_bgr, bgra;
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  cv::cvtColor(grey, grey_bgr, cv::COLOR_GRAY2BGR);
  cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
  FramePreprocess p;
  p.size = 16;
  CHECK(preprocess_frame(grey, p).to_vector() == preprocess_frame(grey_bgr, p).to_vector());
  CHECK(preprocess_frame(bgra, p).to_vector() == preprocess_frame(bgr, p).to_vector());
  p.grayscale = true;
  CHECK(preprocess_frame(bgr, p).to_vector() == preprocess_frame(grey, p).to_vector());

  // A uniform image maps every pixel of channel c to (v / 255 - mean[c]) / std[c].
  const Tensor<float> x = preprocess_frame(cv::Mat(10, 10, CV_8UC3, cv::Scalar(255, 0, 128)));
  CHECK(x(0, 100, 7) == Approx((128 / 255.0 - 0.485) / 0.229));  // R is the third BGR byte
  CHECK(x(1, 0, 0) == Approx((0 - 0.456) / 0.224));
  CHECK(x(2, 223, 223) == Approx((1 - 0.406) / 0.225));
}

TEST_CASE("a batch of frames is an NCHW tensor equal to the frames one by one") {
  const cv::Mat photo = read_image(kAstronaut);
  std::vector<cv::Mat> frames;
  for (int i = 0; i < 5; ++i) frames.push_back(photo(cv::Rect(i * 40, i * 30, 300, 280)));
  FramePreprocess p;
  p.size = 96;
  const Tensor<float> batch = preprocess_frames(frames, p);
  REQUIRE(batch.shape() == Shape{5, 3, 96, 96});
  for (int64_t i = 0; i < 5; ++i) {
    INFO("frame " << i);
    CHECK(batch.slice(i, i + 1).to_vector() == preprocess_frame(frames[static_cast<size_t>(i)], p).to_vector());
  }
  CHECK(preprocess_frames({}, p).shape() == Shape{0, 3, 96, 96});

  const Tensor<float> loaded = load_frames({kAstronaut, kAstronaut}, p);
  REQUIRE(loaded.shape() == Shape{2, 3, 96, 96});
  CHECK(loaded.slice(1, 2).to_vector() == preprocess_frame(photo, p).to_vector());
}

TEST_CASE("unreadable images are reported with their path") {
  TempDir dir("stpain_image_test");
  const fs::path missing = dir.path / "missing.png";
  CHECK_THROWS_AS(read_image(missing), FormatError);
  CHECK_THROWS_WITH(read_image(missing), Catch::StartsWith(missing.string()) && Catch::Contains("no such file"));

  const fs::path corrupt = dir.path / "corrupt.jpg";
  write_bytes(corrupt, "this is not a JPEG \x01\x02\x03\xff\xd8 at all");
  CHECK_THROWS_AS(read_image(corrupt), FormatError);
  CHECK_THROWS_WITH(read_image(corrupt), Catch::StartsWith(corrupt.string()) && Catch::Contains("cannot decode"));

  const fs::path empty = dir.path / "empty.png";
  write_bytes(empty, "");
  CHECK_THROWS_WITH(read_image(empty), Catch::StartsWith(empty.string()) && Catch::Contains("cannot decode"));

  CHECK_THROWS_WITH(read_image(dir.path), Catch::StartsWith(dir.path.string()) &&
                                              Catch::Contains("not a regular file"));

  // In a batch, the failing frame is named with its position and the caller's context.
  CHECK_THROWS_WITH(load_frames({kAstronaut, corrupt.string(), kAstronaut}, {}, "clip X"),
                    Catch::StartsWith(corrupt.string()) && Catch::Contains("frame 2 of 3, clip X"));
}

TEST_CASE("bad preprocessing options and images are rejected") {
  const cv::Mat image(8, 8, CV_8UC3, cv::Scalar::all(0));
  FramePreprocess p;
  p.size = 0;
  CHECK_THROWS_WITH(preprocess_frame(image, p), Catch::Contains("size"));
  p = {};
  p.crop_pct = 1.5;
  CHECK_THROWS_WITH(preprocess_frame(image, p), Catch::Contains("crop_pct"));
  CHECK_THROWS_WITH(preprocess_frame(cv::Mat(), FramePreprocess{}), Catch::Contains("empty"));
  CHECK_THROWS_WITH(preprocess_frame(cv::Mat(8, 8, CV_32FC3), FramePreprocess{}), Catch::Contains("8-bit"));
  CHECK_THROWS_WITH(preprocess_frame(cv::Mat(8, 8, CV_8UC2), FramePreprocess{}), Catch::Contains("channels"));
}
