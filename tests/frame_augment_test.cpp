// The authors' clip augmentation: one draw per clip, each operation checked
// by a property it must have, determinism, option switches, and a strip of
// augmented astronauts saved for a look (frame_augment_strip.png in the
// test's undeclared outputs).
#include "stpain/data/frame_augment.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <opencv2/imgcodecs.hpp>

using namespace stpain;
namespace fs = std::filesystem;

namespace {

const char* const kAstronaut = "tests/data/astronaut.png";

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

// A noise image inside [lo, hi] so colour steps do not clip.
cv::Mat noise(cv::Size size, int lo, int hi, uint64_t seed) {
  cv::Mat m(size, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, cv::Scalar::all(lo), cv::Scalar::all(hi + 1));
  return m;
}

// Intensity-weighted centre of a single-channel view of the image.
cv::Point2d centroid(const cv::Mat& bgr) {
  cv::Mat grey;
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  const cv::Moments m = cv::moments(grey);
  return {m.m10 / m.m00, m.m01 / m.m00};
}

// A black frame with a white 3x3 block centred on `at`.
cv::Mat marked(cv::Size size, cv::Point at) {
  cv::Mat m(size, CV_8UC3, cv::Scalar::all(0));
  m(cv::Rect(at.x - 1, at.y - 1, 3, 3)).setTo(cv::Scalar::all(255));
  return m;
}

}  // namespace

TEST_CASE("one draw gives the same output for every frame of a clip") {
  const cv::Mat photo = read_image(kAstronaut);
  Generator g(3);
  FrameAugmentOptions always;
  always.flip_probability = always.translate_rotate_probability = always.cutout_probability = 1;
  const FrameAugmentDraw d = draw_frame_augment(g, always);

  const std::vector<cv::Mat> same(4, photo);
  const std::vector<cv::Mat> out = augment_clip(same, d);
  REQUIRE(out.size() == 4);
  for (const auto& f : out) CHECK(same_pixels(f, out[0]));
  CHECK(same_pixels(out[0], apply_frame_augment(photo, d)));
  CHECK(!same_pixels(out[0], photo));

  // Distinct frames: each gets exactly what the draw does to it alone.
  std::vector<cv::Mat> clip;
  for (int i = 0; i < 5; ++i) clip.push_back(noise({64, 48}, 0, 255, static_cast<uint64_t>(i)));
  const std::vector<cv::Mat> aug = augment_clip(clip, d);
  for (size_t i = 0; i < clip.size(); ++i) CHECK(same_pixels(aug[i], apply_frame_augment(clip[i], d)));
  CHECK(same_pixels(photo, read_image(kAstronaut)));  // inputs untouched
}

TEST_CASE("flip mirrors the frame left to right") {
  const cv::Mat x = noise({37, 21}, 0, 255, 1);
  FrameAugmentDraw d;
  d.flip = true;
  cv::Mat expected;
  cv::flip(x, expected, 1);
  CHECK(same_pixels(apply_frame_augment(x, d), expected));
  const cv::Mat y = apply_frame_augment(x, d);
  CHECK(y.at<cv::Vec3b>(5, 0) == x.at<cv::Vec3b>(5, 36));
}

TEST_CASE("brightness adds its delta to every [0, 1] intensity") {
  FrameAugmentDraw d;
  d.brightness_delta = 0.2;  // 51 grey levels
  const cv::Mat x = noise({40, 30}, 20, 180, 2);
  const cv::Mat y = apply_frame_augment(x, d);
  cv::Mat expected;
  x.convertTo(expected, CV_8UC3, 1, 51);
  CHECK(cv::norm(y, expected, cv::NORM_INF) <= 1);  // float rounding only
  const cv::Mat photo = read_image(kAstronaut);
  CHECK(cv::mean(apply_frame_augment(photo, d))[0] > cv::mean(photo)[0] + 30);
}

TEST_CASE("contrast scales each channel's spread around its mean by the factor") {
  const cv::Mat x = noise({80, 60}, 70, 180, 3);
  for (double factor : {0.8, 1.2}) {
    FrameAugmentDraw d;
    d.contrast_factor = factor;
    const cv::Mat y = apply_frame_augment(x, d);
    cv::Scalar mx, sx, my, sy;
    cv::meanStdDev(x, mx, sx);
    cv::meanStdDev(y, my, sy);
    for (int c = 0; c < 3; ++c) {
      INFO("factor " << factor << " channel " << c);
      CHECK(my[c] == Approx(mx[c]).margin(0.5));
      CHECK(sy[c] / sx[c] == Approx(factor).epsilon(0.01));
    }
  }
}

TEST_CASE("saturation and hue act on the HSV circle") {
  const cv::Mat red(8, 8, CV_8UC3, cv::Scalar(0, 0, 255));  // BGR
  FrameAugmentDraw d;
  d.hue_delta = 1.0 / 3;  // red -> green
  CHECK(apply_frame_augment(red, d).at<cv::Vec3b>(3, 3) == cv::Vec3b(0, 255, 0));
  d.hue_delta = 2.0 / 3;  // red -> blue
  CHECK(apply_frame_augment(red, d).at<cv::Vec3b>(3, 3) == cv::Vec3b(255, 0, 0));

  FrameAugmentDraw grey;
  grey.saturation_factor = 0;  // no saturation: every pixel grey at its value (max channel)
  const cv::Mat x = noise({20, 20}, 0, 255, 4);
  const cv::Mat y = apply_frame_augment(x, grey);
  for (int r = 0; r < y.rows; ++r)
    for (int c = 0; c < y.cols; ++c) {
      const cv::Vec3b p = y.at<cv::Vec3b>(r, c), q = x.at<cv::Vec3b>(r, c);
      REQUIRE((p[0] == p[1] && p[1] == p[2]));
      REQUIRE(p[0] == std::max({q[0], q[1], q[2]}));
    }
  FrameAugmentDraw half;
  half.saturation_factor = 0.5;  // HSV: value (max) kept, spread max - min halved
  const cv::Vec3b p = apply_frame_augment(cv::Mat(2, 2, CV_8UC3, cv::Scalar(40, 120, 200)), half).at<cv::Vec3b>(0, 0);
  CHECK(p[2] == 200);
  CHECK(p[2] - p[0] == 80);
}

TEST_CASE("cutout zeroes one rectangle of the drawn area") {
  const cv::Mat x(120, 90, CV_8UC3, cv::Scalar(200, 150, 100));
  FrameAugmentDraw d;
  d.cutout = true;
  d.cutout_area = 0.1;
  d.cutout_aspect = 1.5;
  d.cutout_x = 0.3;
  d.cutout_y = 0.8;
  const cv::Mat y = apply_frame_augment(x, d);
  const cv::Rect r = frame_augment_cutout_rect(d, x.size());
  cv::Mat grey;
  cv::cvtColor(y, grey, cv::COLOR_BGR2GRAY);
  CHECK(grey.total() - static_cast<size_t>(cv::countNonZero(grey)) == static_cast<size_t>(r.area()));
  CHECK(cv::countNonZero(grey(r)) == 0);
  CHECK(std::abs(r.area() - 0.1 * 120 * 90) <= r.width + r.height + 1);  // rounding of the sides only
  // Aspect in the square view the network sees: fractions of each side.
  CHECK((r.height / 120.0) / (r.width / 90.0) == Approx(1.5).epsilon(0.05));
  CHECK((r & cv::Rect(0, 0, 90, 120)) == r);

  // An extreme draw is cut to the frame, never outside it.
  d.cutout_area = 0.4;
  d.cutout_aspect = 3.3;
  const cv::Rect tall = frame_augment_cutout_rect(d, x.size());
  CHECK(tall.height == 120);
  CHECK((tall & cv::Rect(0, 0, 90, 120)) == tall);
}

TEST_CASE("translate then rotate moves a marked pixel where expected") {
  const cv::Size size(101, 101);  // centre (50, 50)
  const cv::Point mark(70, 50);
  FrameAugmentDraw d;
  d.translate_rotate = true;

  SECTION("a quarter turn counter-clockwise") {
    d.rotate_degrees = 90;
    const cv::Point2d c = centroid(apply_frame_augment(marked(size, mark), d));
    CHECK(c.x == Approx(50).margin(0.05));
    CHECK(c.y == Approx(30).margin(0.05));
  }
  SECTION("a translation in fractions of the frame") {
    d.translate_x = 10.0 / 101;
    d.translate_y = -20.0 / 101;
    const cv::Point2d c = centroid(apply_frame_augment(marked(size, mark), d));
    CHECK(c.x == Approx(80).margin(0.05));
    CHECK(c.y == Approx(30).margin(0.05));
  }
  SECTION("both: translated first, then rotated about the centre") {
    d.translate_x = 0.1;
    d.translate_y = -0.05;
    d.rotate_degrees = 12;
    const double a = 12 * std::numbers::pi / 180;
    const double px = mark.x + 0.1 * 101 - 50, py = mark.y - 0.05 * 101 - 50;
    const double ex = 50 + std::cos(a) * px + std::sin(a) * py, ey = 50 - std::sin(a) * px + std::cos(a) * py;
    const cv::Point2d c = centroid(apply_frame_augment(marked(size, mark), d));
    CHECK(c.x == Approx(ex).margin(0.1));
    CHECK(c.y == Approx(ey).margin(0.1));
  }
  SECTION("non-square frames: fractions of each side, border filled with 0") {
    d.translate_x = 0.1;
    d.translate_y = 0.25;
    const cv::Mat y = apply_frame_augment(marked({120, 80}, {30, 20}), d);
    const cv::Point2d c = centroid(y);
    CHECK(c.x == Approx(42).margin(0.05));
    CHECK(c.y == Approx(40).margin(0.05));
    const cv::Mat full = apply_frame_augment(cv::Mat(80, 120, CV_8UC3, cv::Scalar::all(255)), d);
    CHECK(full.at<cv::Vec3b>(5, 5) == cv::Vec3b(0, 0, 0));         // uncovered corner
    CHECK(full.at<cv::Vec3b>(60, 60) == cv::Vec3b(255, 255, 255));  // still image
  }
}

TEST_CASE("crop and resize keeps the size and shows the drawn crop") {
  const cv::Mat x = noise({100, 70}, 0, 255, 5);
  FrameAugmentDraw d;
  d.crop = true;
  d.crop_side = 0.8;
  d.crop_x = 1;
  d.crop_y = 0;
  const cv::Rect r = frame_augment_crop_rect(d, x.size());
  CHECK(r == cv::Rect(20, 0, 80, 56));
  cv::Mat expected;
  cv::resize(x(r), expected, x.size(), 0, 0, cv::INTER_LINEAR);
  const cv::Mat y = apply_frame_augment(x, d);
  CHECK(y.size() == x.size());
  CHECK(same_pixels(y, expected));

  Generator g(9);
  for (int i = 0; i < 50; ++i) {
    const FrameAugmentDraw any = draw_frame_augment(g);
    const cv::Rect c = frame_augment_crop_rect(any, {224, 224});
    REQUIRE(c.width == c.height);  // square on a square frame
    REQUIRE(c.width >= 179);       // floor(0.8 * 224)
    REQUIRE(c.width < 224);
    REQUIRE((c & cv::Rect(0, 0, 224, 224)) == c);
    REQUIRE(apply_frame_augment(x, any).size() == x.size());
  }
}

TEST_CASE("draws follow the options' probabilities and ranges") {
  Generator g(11);
  const FrameAugmentOptions o;
  int flips = 0, moves = 0, cutouts = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const FrameAugmentDraw d = draw_frame_augment(g, o);
    flips += d.flip;
    moves += d.translate_rotate;
    cutouts += d.cutout;
    REQUIRE((d.brightness_delta >= 0 && d.brightness_delta < 0.4));
    REQUIRE((d.contrast_factor >= 0.8 && d.contrast_factor < 1.2));
    REQUIRE((d.saturation_factor >= 0.8 && d.saturation_factor < 1.2));
    REQUIRE((d.hue_delta >= 0 && d.hue_delta < 0.1));
    REQUIRE(d.crop);
    REQUIRE((d.crop_side >= 0.8 && d.crop_side < 1));
    if (d.translate_rotate) {
      REQUIRE(std::abs(d.translate_x) <= 0.2);
      REQUIRE(std::abs(d.translate_y) <= 0.2);
      REQUIRE(std::abs(d.rotate_degrees) <= 15);
    }
    if (d.cutout) {
      REQUIRE((d.cutout_area >= 0.02 && d.cutout_area < 0.4));
      REQUIRE((d.cutout_aspect >= 0.3 && d.cutout_aspect < 3.3));
    }
  }
  CHECK(flips / double(n) == Approx(0.5).margin(0.03));
  CHECK(moves / double(n) == Approx(0.7).margin(0.03));
  CHECK(cutouts / double(n) == Approx(0.5).margin(0.03));
}

TEST_CASE("the same seed gives the same augmentation") {
  const cv::Mat photo = read_image(kAstronaut);
  Generator a(42), b(42), c(43);
  const std::vector<cv::Mat> clip(2, photo);
  const auto x = augment_clip(clip, a), y = augment_clip(clip, b), z = augment_clip(clip, c);
  CHECK(same_pixels(x[0], y[0]));
  CHECK(same_pixels(x[1], y[1]));
  CHECK(!same_pixels(x[0], z[0]));
  // The generator moved on: the next draw differs from the first.
  CHECK(!same_pixels(augment_clip(clip, a)[0], x[0]));
}

TEST_CASE("options switch parts off without changing the other draws") {
  const cv::Mat photo = read_image(kAstronaut);
  Generator g(5);
  CHECK(same_pixels(apply_frame_augment(photo, draw_frame_augment(g, FrameAugmentOptions::none())), photo));
  CHECK(FrameAugmentOptions::none().describe() == "none");

  FrameAugmentOptions all;
  all.flip_probability = all.translate_rotate_probability = all.cutout_probability = 1;
  Generator g1(6);
  const FrameAugmentDraw full = draw_frame_augment(g1, all);
  auto without = [&](auto switch_off) {
    FrameAugmentOptions o = all;
    switch_off(o);
    Generator g2(6);
    return draw_frame_augment(g2, o);
  };
  const FrameAugmentDraw no_flip = without([](auto& o) { o.flip = false; });
  CHECK(!no_flip.flip);
  CHECK(no_flip.crop_side == full.crop_side);
  CHECK(no_flip.cutout_area == full.cutout_area);
  CHECK(without([](auto& o) { o.brightness = false; }).brightness_delta == 0);
  CHECK(without([](auto& o) { o.contrast = false; }).contrast_factor == 1);
  CHECK(without([](auto& o) { o.saturation = false; }).saturation_factor == 1);
  const FrameAugmentDraw no_hue = without([](auto& o) { o.hue = false; });
  CHECK(no_hue.hue_delta == 0);
  CHECK(no_hue.rotate_degrees == full.rotate_degrees);
  CHECK(!without([](auto& o) { o.translate_rotate = false; }).translate_rotate);
  CHECK(!without([](auto& o) { o.crop = false; }).crop);
  const FrameAugmentDraw no_cutout = without([](auto& o) { o.cutout = false; });
  CHECK(!no_cutout.cutout);
  CHECK(no_cutout.flip);

  // Only the flip on: the output is the mirror image.
  FrameAugmentOptions flip_only = FrameAugmentOptions::none();
  flip_only.flip = true;
  flip_only.flip_probability = 1;
  cv::Mat mirrored;
  cv::flip(photo, mirrored, 1);
  CHECK(same_pixels(apply_frame_augment(photo, draw_frame_augment(g, flip_only)), mirrored));
  CHECK_THAT(flip_only.describe(), Catch::Equals("flip p=1"));
  CHECK_THAT(FrameAugmentOptions().describe(), Catch::Contains("brightness U(0,0.4)") && Catch::Contains("cutout"));
}

TEST_CASE("bad options and frames are refused") {
  Generator g;
  FrameAugmentOptions o;
  o.flip_probability = 1.5;
  CHECK_THROWS_WITH(draw_frame_augment(g, o), Catch::Contains("flip_probability"));
  o = {};
  o.crop_side_fraction = {0.9, 0.8};
  CHECK_THROWS_WITH(draw_frame_augment(g, o), Catch::Contains("crop_side_fraction"));
  CHECK_THROWS_WITH(apply_frame_augment(cv::Mat(4, 4, CV_8UC1), {}), Catch::Contains("8-bit BGR"));
  CHECK_THROWS_WITH(apply_frame_augment(cv::Mat(), {}), Catch::Contains("empty"));
}

TEST_CASE("a strip of augmented astronauts for a look") {
  const cv::Mat photo = read_image(kAstronaut);
  const int tile = 256;
  cv::Mat strip(2 * tile, 4 * tile, CV_8UC3, cv::Scalar::all(0));
  for (int i = 0; i < 8; ++i) {
    Generator g(static_cast<uint64_t>(100 + i));
    const cv::Mat frame = i == 0 ? photo : apply_frame_augment(photo, draw_frame_augment(g));
    cv::resize(frame, strip(cv::Rect((i % 4) * tile, (i / 4) * tile, tile, tile)), {tile, tile}, 0, 0,
               cv::INTER_AREA);
  }
  const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  const fs::path out = fs::path(dir ? dir : fs::temp_directory_path().string()) / "frame_augment_strip.png";
  REQUIRE(cv::imwrite(out.string(), strip));
  CHECK(fs::file_size(out) > 0);
}
