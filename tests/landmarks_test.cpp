// LandmarkDetector (dlib's face detector + 68-point shape predictor) on the
// astronaut photo against dlib's own answer (tests/fixtures/landmarks.safetensors,
// tools/fixtures/landmarks.py), and clips made from the photo: faceless
// frames carried over from the nearest earlier detection, a faceless clip
// reported instead of zero-filled, an MJPG video read back with VideoReader,
// and the per-clip face crop the visual pipeline can use (face_crop.hpp).
#include "stpain/data/landmarks.hpp"
#include "stpain/data/face_crop.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "support/fixtures.hpp"

using namespace stpain;
using namespace stpain::testing;
namespace fs = std::filesystem;

namespace {

const char* const kAstronaut = "tests/data/astronaut.png";

// The model Bazel puts in the runfiles (data = @dlib//:shape_predictor_68).
std::string model_path() {
  for (const char* p : {"../dlib/share/dlib/shape_predictor_68_face_landmarks.dat",
                        "external/dlib/share/dlib/shape_predictor_68_face_landmarks.dat"})
    if (fs::exists(p)) return p;
  FAIL("shape_predictor_68_face_landmarks.dat not in the runfiles");
  return "";
}

// Loading the 100 MB model takes about a second: once per test binary.
LandmarkDetector& detector() {
  static LandmarkDetector d({.model_path = model_path()});
  return d;
}

const cv::Mat& photo() {
  static const cv::Mat p = read_image(kAstronaut);
  return p;
}

// A 224 x 224 frame around the face: photo point p lands at scale * (p - kOrigin) + shift.
const cv::Point2f kOrigin(110, 14);
cv::Mat frame_of_photo(double scale, cv::Point2f shift) {
  const cv::Matx23d m(scale, 0, shift.x - scale * kOrigin.x, 0, scale, shift.y - scale * kOrigin.y);
  cv::Mat out;
  cv::warpAffine(photo(), out, m, cv::Size(224, 224), cv::INTER_AREA, cv::BORDER_REPLICATE);
  return out;
}

// The same frame with the face painted over in a flat skin tone.
cv::Mat faceless_frame(double scale, cv::Point2f shift) {
  cv::Mat f = frame_of_photo(scale, shift);
  const cv::Point2f a = scale * (cv::Point2f(160, 60) - kOrigin) + shift, b = scale * (cv::Point2f(290, 200) - kOrigin) + shift;
  cv::rectangle(f, cv::Rect(a, b), cv::Scalar(150, 170, 210), cv::FILLED);
  return f;
}

// max |f - expected| over the 68 points' x and y, expected [68, 2].
double max_error(const FrameLandmarks& f, const Tensor<float>& expected) {
  double worst = 0;
  for (int k = 0; k < kNumLandmarks; ++k)
    worst = std::max({worst, std::fabs(f.points[k].x - double(expected(k, 0))),
                      std::fabs(f.points[k].y - double(expected(k, 1)))});
  return worst;
}

// The photo's points where frame_of_photo(scale, shift) puts them.
Tensor<float> in_frame(const Tensor<float>& photo_points, double scale, cv::Point2f shift) {
  Tensor<float> out = photo_points.clone();
  for (int k = 0; k < kNumLandmarks; ++k) {
    out(k, 0) = float(scale * (photo_points(k, 0) - kOrigin.x) + shift.x);
    out(k, 1) = float(scale * (photo_points(k, 1) - kOrigin.y) + shift.y);
  }
  return out;
}

Tensor<float> points_of(const FrameLandmarks& f) {
  Tensor<float> out = Tensor<float>::empty({kNumLandmarks, 2});
  for (int k = 0; k < kNumLandmarks; ++k) {
    out(k, 0) = f.points[k].x;
    out(k, 1) = f.points[k].y;
  }
  return out;
}

}  // namespace

TEST_CASE("landmarks on the astronaut photo match dlib's own within 1 px") {
  const safetensors::File ref(fixture_path("landmarks.safetensors"));
  const Tensor<float> expected = ref.load("points");  // [68, 2]
  const std::vector<int64_t> box = ref.load_integers("box");
  REQUIRE(expected.shape() == Shape{68, 2});

  const FrameLandmarks f = detector().detect(photo());
  REQUIRE(f.status == LandmarkStatus::detected);
  CHECK(f.faces == 1);
  const double error = max_error(f, expected);
  INFO("max |error| vs dlib's reference: " << error << " px");
  CHECK(error <= 1.0);
  CHECK(std::abs(f.box.left - box[0]) <= 1);
  CHECK(std::abs(f.box.top - box[1]) <= 1);
  CHECK(std::abs(f.box.right - box[2]) <= 1);
  CHECK(std::abs(f.box.bottom - box[3]) <= 1);
  // dlib's SIMD code differs with -march, so the score only nearly matches.
  CHECK(f.score == Approx(ref.load<double>("score")[0]).margin(1e-3));

  // Pinned by value (dlib 19.24, Debian's model; image pixels, subject's right
  // is the image's left): a changed model or pipeline shows up here first.
  auto at = [&](int k) { return std::pair<float, float>(f.points[k].x, f.points[k].y); };
  CHECK(at(30) == std::pair<float, float>(225, 127));  // nose tip
  CHECK(at(36) == std::pair<float, float>(195, 101));  // right eye, outer corner
  CHECK(at(39) == std::pair<float, float>(212, 104));  // right eye, inner corner
  CHECK(at(42) == std::pair<float, float>(238, 105));  // left eye, inner corner
  CHECK(at(45) == std::pair<float, float>(255, 104));  // left eye, outer corner
  CHECK(at(8) == std::pair<float, float>(221, 178));   // chin
  CHECK(f.box.left == 179);
  CHECK(f.box.width() == 88);  // near dlib's 80 px minimum face size

  // Grey and BGRA inputs go through the same conversion to dlib's BGR image.
  cv::Mat bgra;
  cv::cvtColor(photo(), bgra, cv::COLOR_BGR2BGRA);
  CHECK(max_error(detector().detect(bgra), expected) <= 1.0);
  cv::Mat grey;
  cv::cvtColor(photo(), grey, cv::COLOR_BGR2GRAY);
  const FrameLandmarks g = detector().detect(grey);
  REQUIRE(g.detected());
  CHECK(max_error(g, expected) <= 3.0);  // grey loses colour gradients: close, not equal
}

TEST_CASE("frames run in parallel give what one frame at a time gives") {
  std::vector<cv::Mat> frames;
  for (int i = 0; i < 4; ++i) frames.push_back(frame_of_photo(1.0, {float(3 * i), float(-2 * i)}));
  const std::vector<FrameLandmarks> parallel = detector().detect_frames(frames);
  REQUIRE(detector().workers() == num_threads());
  for (size_t i = 0; i < frames.size(); ++i) {
    INFO("frame " << i);
    const FrameLandmarks one = detector().detect(frames[i]);
    REQUIRE(parallel[i].detected());
    CHECK(max_error(parallel[i], points_of(one)) == 0);
    CHECK(parallel[i].score == one.score);
  }
}

TEST_CASE("a clip's faceless frames carry the nearest earlier detection") {
  const safetensors::File ref(fixture_path("landmarks.safetensors"));
  const Tensor<float> expected = ref.load("points");
  // 0 faceless (leading: carried back from 1), 1 shifted, 2 enlarged,
  // 3 faceless (from 2), 4 shrunk to a ~50 px face (found on the retry),
  // 5 faceless (from 4).
  const std::vector<cv::Mat> frames = {faceless_frame(1.0, {0, 0}), frame_of_photo(1.0, {6, -4}),
                                       frame_of_photo(1.2, {-20, -10}), faceless_frame(1.0, {2, 2}),
                                       frame_of_photo(0.55, {40, 40}),   faceless_frame(0.9, {0, 0})};
  const ClipLandmarks clip = detector().detect_clip(frames, "S001/Posed Pain/synthetic");
  INFO(clip.summary());
  REQUIRE(clip.has_face());
  const std::vector<LandmarkStatus> statuses = {
      LandmarkStatus::carried,  LandmarkStatus::detected,          LandmarkStatus::detected,
      LandmarkStatus::carried,  LandmarkStatus::detected_on_retry, LandmarkStatus::carried};
  const std::vector<int64_t> sources = {1, 1, 2, 2, 4, 4};
  for (size_t t = 0; t < frames.size(); ++t) {
    INFO("frame " << t << ": " << status_name(clip.frames[t].status) << ", " << clip.frames[t].faces << " faces");
    CHECK(clip.frames[t].status == statuses[t]);
    CHECK(clip.frames[t].source_frame == sources[t]);
  }
  CHECK(clip.summary() == "6 frames: 3 detected (1 on retry), 3 carried");

  // Detected frames follow the photo's geometry (the detector's box moves, so
  // the predictor's points move by a pixel or two, not exactly).
  CHECK(max_error(clip.frames[1], in_frame(expected, 1.0, {6, -4})) <= 2.0);
  CHECK(max_error(clip.frames[2], in_frame(expected, 1.2, {-20, -10})) <= 3.0);
  CHECK(max_error(clip.frames[4], in_frame(expected, 0.55, {40, 40})) <= 3.0);
  CHECK(clip.frames[4].box.width() < 80);

  // Carried frames hold exactly their source's points and box, and no score of their own.
  for (size_t t : {0, 3, 5}) {
    const FrameLandmarks& f = clip.frames[t];
    const FrameLandmarks& from = clip.frames[static_cast<size_t>(f.source_frame)];
    INFO("frame " << t);
    for (int k = 0; k < kNumLandmarks; ++k) {
      CHECK(f.points[k].x == from.points[k].x);
      CHECK(f.points[k].y == from.points[k].y);
    }
    CHECK(f.box.left == from.box.left);
    CHECK(std::isnan(f.score));
    CHECK(f.faces == 0);
  }

  const Tensor<float> points = clip.points();
  REQUIRE(points.shape() == Shape{6, 68, 2});
  CHECK(points(3, 30, 0) == clip.frames[2].points[30].x);
  CHECK(points(0, 30, 1) == clip.frames[1].points[30].y);
}

TEST_CASE("a clip without any face is reported, never zero-filled") {
  const std::vector<cv::Mat> frames = {faceless_frame(1.0, {0, 0}), cv::Mat(160, 160, CV_8UC3, cv::Scalar(128, 128, 128)),
                                       faceless_frame(0.8, {10, 10})};
  ClipLandmarks clip = detector().detect_clip(frames, "S002/Neutral/blank");
  CHECK_FALSE(clip.has_face());
  CHECK(clip.count(LandmarkStatus::missing) == 3);
  CHECK(clip.summary() == "3 frames: 0 detected, 3 missing");
  for (const auto& f : clip.frames) {
    CHECK(f.source_frame == -1);
    CHECK_FALSE(f.has_points());
  }
  CHECK_THROWS_WITH(clip.points(), Catch::Contains("clip S002/Neutral/blank") &&
                                       Catch::Contains("no face in any of its 3 frames"));
  CHECK_THROWS_AS(clip.points(), NoFaceError);
  carry_over_missing(clip);  // nothing to carry from: stays missing
  CHECK(clip.count(LandmarkStatus::missing) == 3);
}

TEST_CASE("carry_over_missing: forward from the last detection, backward for leading frames") {
  ClipLandmarks clip;
  clip.id = "unit";
  clip.frames.resize(7);
  for (size_t t : {2, 5}) {
    clip.frames[t].status = LandmarkStatus::detected;
    clip.frames[t].score = 1.0;
    for (auto& p : clip.frames[t].points) p = {float(t), float(10 * t)};
  }
  carry_over_missing(clip);
  const std::vector<int64_t> sources = {2, 2, 2, 2, 2, 5, 5};
  for (size_t t = 0; t < 7; ++t) {
    INFO("frame " << t);
    CHECK(clip.frames[t].source_frame == sources[t]);
    CHECK(clip.frames[t].points[67].x == float(sources[t]));
    CHECK(clip.frames[t].carried() == (t != 2 && t != 5));
  }
  carry_over_missing(clip);  // idempotent
  CHECK(clip.count(LandmarkStatus::carried) == 5);

  // A frame left missing is caught before its zeros could be used.
  ClipLandmarks partial;
  partial.id = "half";
  partial.frames.resize(2);
  partial.frames[0].status = LandmarkStatus::detected;
  CHECK_THROWS_WITH(partial.points(), Catch::Contains("frame 1 has no landmarks"));
}

TEST_CASE("a missing or wrong model file is named, with its Debian package") {
  CHECK_THROWS_WITH(LandmarkDetector({.model_path = "/nowhere/shape_predictor_68_face_landmarks.dat"}),
                    Catch::Contains("/nowhere/shape_predictor_68_face_landmarks.dat") &&
                        Catch::Contains("libdlib-data"));
  CHECK_THROWS_WITH(LandmarkDetector({.model_path = kAstronaut}),
                    Catch::Contains(kAstronaut) && Catch::Contains("not a dlib shape predictor"));
  CHECK_THROWS_WITH(LandmarkDetector({.model_path = model_path(), .upsample = 9}), Catch::Contains("upsample"));
}

TEST_CASE("an MJPG video read back through VideoReader: every kept frame has its face") {
  const char* base = std::getenv("TEST_TMPDIR");
  const fs::path dir = (base ? fs::path(base) : fs::temp_directory_path()) / ("landmarks_video_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string video = (dir / "talk.avi").string();
  auto shift = [](int64_t i) { return cv::Point2f(float(2 * i), float(-i)); };
  {
    cv::VideoWriter writer(video, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10, cv::Size(224, 224));
    REQUIRE(writer.isOpened());
    for (int i = 0; i < 8; ++i) writer.write(i == 5 ? faceless_frame(1.0, shift(i)) : frame_of_photo(1.0, shift(i)));
  }
  std::vector<int64_t> indices;
  const std::vector<cv::Mat> frames = read_video_frames(video, {.every = 2}, &indices);
  CHECK(indices == std::vector<int64_t>{0, 2, 4, 6});  // the faceless frame 5 is skipped
  REQUIRE(frames.size() == 4);
  CHECK(frames[0].size() == cv::Size(224, 224));
  CHECK(read_video_frames(video, {.every = 3, .max_frames = 2}).size() == 2);
  CHECK(read_video_frames(video).size() == 8);

  const safetensors::File ref(fixture_path("landmarks.safetensors"));
  const ClipLandmarks clip = detector().detect_clip(frames, "talk");
  INFO(clip.summary());
  CHECK(clip.count(LandmarkStatus::detected) == 4);
  for (size_t t = 0; t < frames.size(); ++t) {
    INFO("frame " << indices[t]);
    // JPEG-compressed frames: the points move by a pixel or two.
    CHECK(max_error(clip.frames[t], in_frame(ref.load("points"), 1.0, shift(indices[t]))) <= 3.0);
  }

  CHECK_THROWS_WITH(VideoReader(dir / "none.avi"), Catch::Contains("none.avi: no such file"));
  std::ofstream(dir / "junk.avi") << "not a video";
  CHECK_THROWS_AS(read_video_frames(dir / "junk.avi"), FormatError);
  fs::remove_all(dir);
}

TEST_CASE("square_crop_box widens, squares and moves the box into the image") {
  // Points 40 wide, 60 high around (100, 80): side 60 * (1 + 2 * 0.25) = 90, centred.
  CHECK(square_crop_box(80, 50, 120, 110, 0.25, 300, 200) == cv::Rect(55, 35, 90, 90));
  // Near the top-left corner: moved inside, not shrunk.
  CHECK(square_crop_box(0, 0, 40, 60, 0.25, 300, 200) == cv::Rect(0, 0, 90, 90));
  // Near the bottom-right corner.
  CHECK(square_crop_box(260, 140, 300, 200, 0.25, 300, 200) == cv::Rect(210, 110, 90, 90));
  // Larger than the image's short side: shrunk to it.
  CHECK(square_crop_box(0, 0, 300, 200, 0.25, 300, 200) == cv::Rect(50, 0, 200, 200));  // still centred
}

TEST_CASE("clip_face_box covers the face of every probe frame with the margin; faceless clips are named") {
  // The head moves 8 px right across the clip: the box must hold it in the first and last frame.
  std::vector<cv::Mat> frames;
  for (int i = 0; i < 9; ++i) frames.push_back(frame_of_photo(1.0, cv::Point2f(20 + i, 30)));
  const FaceCropOptions o{.margin = 0.2, .probe_frames = 3};
  const cv::Rect box = clip_face_box(detector(), frames, "S001/Posed Pain", o);
  CHECK(box.width == box.height);
  CHECK((box & cv::Rect(0, 0, 224, 224)) == box);
  double x0 = 1e9, y0 = 1e9, x1 = -1e9, y1 = -1e9;
  for (size_t i : {size_t{0}, size_t{4}, size_t{8}}) {
    const FrameLandmarks f = detector().detect(frames[i]);
    REQUIRE(f.detected());
    for (const LandmarkPoint& p : f.points) {
      x0 = std::min<double>(x0, p.x), x1 = std::max<double>(x1, p.x);
      y0 = std::min<double>(y0, p.y), y1 = std::max<double>(y1, p.y);
    }
  }
  // Every point of the three probes is inside, with at least the margin left (unless the image ends first).
  const double extent = std::max(x1 - x0, y1 - y0);
  CHECK(box.width == Approx(extent * 1.4).margin(1.0));
  CHECK(box.x <= x0 - 0.15 * extent);
  CHECK(box.x + box.width >= x1 + 0.15 * extent);
  CHECK(box.y <= y0);
  CHECK(box.y + box.height >= y1);

  // Cropped frames are views of that box: the face now fills most of the input.
  const std::vector<cv::Mat> cropped = crop_frames(frames, box);
  REQUIRE(cropped.size() == frames.size());
  CHECK(cropped[3].size() == box.size());
  CHECK(cv::norm(cropped[3], frames[3](box), cv::NORM_INF) == 0);
  CHECK(cv::norm(crop_to_face(detector(), frames, "S001/Posed Pain", o)[3], cropped[3], cv::NORM_INF) == 0);
  std::vector<cv::Mat> small = frames;
  small[5] = cv::Mat(64, 64, CV_8UC3, cv::Scalar::all(0));
  CHECK_THROWS_AS(crop_frames(small, box), ShapeError);

  // A clip without a face: NoFaceError naming the clip.
  const std::vector<cv::Mat> faceless(4, faceless_frame(1.0, cv::Point2f(20, 30)));
  CHECK_THROWS_WITH(clip_face_box(detector(), faceless, "S009/Neutral", o),
                    Catch::Contains("S009/Neutral") && Catch::Contains("no face"));
}
