// The synthetic PEMF set made from the astronaut photo: written in the layout
// index_pemf reads, metadata.csv agreeing with the clips, frames that decode
// (B/W ones grey), faces dlib still finds, the planted pain movement
// measurable from dlib's landmarks, the same files for the same seed whatever
// the threads, and no existing folder overwritten unless it is one of ours.
#include "stpain/data/synthetic_pemf.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

using namespace stpain;
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

SyntheticPemfOptions small_options(int64_t subjects, int64_t frames) {
  SyntheticPemfOptions o;
  o.subjects = subjects;
  o.frames = frames;
  o.seed = 7;
  o.photo = kAstronaut;
  o.model_path = model_path();
  o.threads = 2;
  return o;
}

// One set for the tests that only read: 3 subjects, 10 frames per clip.
constexpr int64_t kSubjects = 3, kFrames = 10;
const SyntheticPemf& small_set() {
  static TempDir dir("synthetic_pemf");
  static const SyntheticPemf set = make_synthetic_pemf(dir.path / "set", small_options(kSubjects, kFrames));
  return set;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_text(p));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::istringstream l(line);
    for (std::string cell; std::getline(l, cell, ',');) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

// Every file under a folder (relative path -> bytes).
std::map<std::string, std::string> files_under(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = read_text(e.path());
  return files;
}

fs::path frame_path(const SyntheticPemf& set, const SyntheticClip& clip, const std::string& folder, int64_t t) {
  char name[32];
  std::snprintf(name, sizeof name, "frame_%02lld.jpg", static_cast<long long>(t));
  return set.modified_dir / clip.subject / condition_name(clip.condition) / folder / name;
}

const SyntheticClip& clip_of(const SyntheticPemf& set, const std::string& subject, PemfCondition c) {
  for (const auto& clip : set.clips)
    if (clip.subject == subject && clip.condition == c) return clip;
  FAIL("no clip " << subject << " " << condition_name(c));
  return set.clips.front();
}

// What the planted action units change, from dlib's points, relative to the
// eye corners' distance: brows' height above the eye corners (AU4), eye
// opening between upper and lower lids (AU6/7, AU43).
struct FaceMeasures {
  double brow_height = 0, eye_opening = 0;
};

FaceMeasures measure(const FrameLandmarks& f) {
  auto p = [&](int k) { return cv::Point2d(f.points[static_cast<size_t>(k)].x, f.points[static_cast<size_t>(k)].y); };
  const double scale = cv::norm(p(45) - p(36));
  double brows = 0;
  for (int k = 17; k <= 26; ++k) brows += p(k).y / 10;
  const double corners = (p(36).y + p(39).y + p(42).y + p(45).y) / 4;
  const double opening =
      (cv::norm(p(41) - p(37)) + cv::norm(p(40) - p(38)) + cv::norm(p(47) - p(43)) + cv::norm(p(46) - p(44))) / 4;
  return {(corners - brows) / scale, opening / scale};
}

LandmarkDetector& detector() {
  static LandmarkDetector d({.model_path = model_path(), .threads = 2});
  return d;
}

}  // namespace

TEST_CASE("synthetic PEMF: the layout is what index_pemf reads") {
  const SyntheticPemf& set = small_set();
  CHECK(set.modified_dir == set.root / "Pictures" / "Modified");
  CHECK(set.images_written == kSubjects * 4 * 2 * kFrames);

  PemfOptions po;
  po.clip_length = kFrames;
  const PemfIndex index = index_pemf(set.root, po);
  INFO(index.summary());
  CHECK(index.modified_dir == set.modified_dir);
  CHECK(index.skipped.empty());
  CHECK(index.subjects == std::vector<std::string>{"S001", "S002", "S003"});
  REQUIRE(index.clips.size() == static_cast<size_t>(kSubjects * 4 * 2));
  CHECK(index.count_label(0) == kSubjects * 2);
  CHECK(index.count_label(1) == kSubjects * 6);
  std::map<std::pair<PemfCondition, FrameKind>, int> counts;
  for (const auto& clip : index.clips) {
    CHECK(clip.frames.size() == static_cast<size_t>(kFrames));
    CHECK(clip.label == (clip.condition == PemfCondition::neutral ? 0 : 1));
    CHECK(clip.stimulus_folder == clip.condition_name());
    CHECK(clip.frame_kind != FrameKind::other);
    CHECK(clip.frames.front().filename() == "frame_00.jpg");
    CHECK(clip.frames.back().filename() == "frame_09.jpg");
    ++counts[{clip.condition, clip.frame_kind}];
  }
  for (PemfCondition c :
       {PemfCondition::neutral, PemfCondition::posed_pain, PemfCondition::algometer_pain, PemfCondition::laser_pain})
    for (FrameKind k : {FrameKind::colour, FrameKind::bw}) CHECK(counts[{c, k}] == kSubjects);

  // The full-length default (20 frames) would skip these 10-frame clips, and say so.
  CHECK(index_pemf(set.root).skipped.size() == static_cast<size_t>(kSubjects * 8));
}

TEST_CASE("synthetic PEMF: metadata.csv lists every clip as generated") {
  const SyntheticPemf& set = small_set();
  CHECK(set.metadata == set.root / "metadata.csv");
  const auto rows = read_csv(set.metadata);
  REQUIRE(rows.size() == 1 + static_cast<size_t>(kSubjects * 4));
  const std::string header_line =
      "clip,subject,condition,kind,label,intensity,AU4,AU6,AU7,AU9,AU10,AU43,pspi,onset_frame,apex_frame,"
      "offset_frame,mirrored";
  const std::vector<std::string> header = rows[0];
  CHECK(header.size() == 17);
  CHECK(read_text(set.metadata).rfind(header_line + "\n", 0) == 0);
  REQUIRE(set.clips.size() == static_cast<size_t>(kSubjects * 4));
  const std::string letters = "ALNP";
  for (size_t i = 0; i < set.clips.size(); ++i) {
    const SyntheticClip& c = set.clips[i];
    const auto& row = rows[i + 1];
    INFO("row " << i + 1 << ": " << c.clip);
    REQUIRE(row.size() == header.size());
    // Clip ids as PEMF's: subject + A / L / N / P, in that order per subject.
    CHECK(c.subject == detail::concat("S00", i / 4 + 1));
    CHECK(c.clip == c.subject + letters[i % 4]);
    CHECK(row[0] == c.clip);
    CHECK(row[1] == c.subject);
    CHECK(row[2] == condition_name(c.condition));
    CHECK(parse_pemf_condition(row[2]) == c.condition);
    CHECK(row[3] == c.kind());
    CHECK(std::stoi(row[4]) == c.label);
    CHECK(c.label == (c.condition == PemfCondition::neutral ? 0 : 1));
    CHECK(std::stod(row[5]) == Approx(c.intensity).margin(0.005));
    const double au[6] = {c.apex.au4, c.apex.au6, c.apex.au7, c.apex.au9, c.apex.au10, c.apex.au43};
    for (int k = 0; k < 6; ++k) {
      CHECK(std::stod(row[static_cast<size_t>(6 + k)]) == Approx(au[k]).margin(0.005));
      CHECK(au[k] >= 0);
      CHECK(au[k] <= 5);
    }
    CHECK(std::stod(row[12]) == Approx(c.apex.pspi()).margin(0.005));
    CHECK(c.apex.pspi() ==
          Approx(c.apex.au4 + std::max(c.apex.au6, c.apex.au7) + std::max(c.apex.au9, c.apex.au10) + c.apex.au43));
    CHECK(std::stoll(row[13]) == c.onset_frame);
    CHECK(std::stoll(row[14]) == c.apex_frame);
    CHECK(std::stoll(row[15]) == c.offset_frame);
    CHECK(std::stoi(row[16]) == (c.mirrored ? 1 : 0));
    CHECK(c.intensity >= 0);
    CHECK(c.intensity <= 8);
    if (c.condition == PemfCondition::neutral) {
      CHECK(c.intensity == 0);
      CHECK(c.apex.pspi() == 0);
      CHECK(c.onset_frame == -1);
      CHECK(c.apex_frame == -1);
      CHECK(c.offset_frame == -1);
      CHECK(std::string(c.kind()) == "Neutral");
    } else {
      CHECK(c.intensity > 0);
      CHECK(c.apex.au4 > 0);
      CHECK(0 < c.onset_frame);
      CHECK(c.onset_frame < c.apex_frame);
      CHECK(c.apex_frame < kFrames);
      CHECK(c.apex_frame <= c.offset_frame);
      CHECK(c.offset_frame < kFrames);
      CHECK(std::string(c.kind()) == (c.condition == PemfCondition::posed_pain ? "Posed" : "Spontaneous"));
    }
  }
  CHECK(fs::exists(set.root / "synthetic_pemf.txt"));
  // Only the finished files: no temporary left behind by the atomic write.
  for (const auto& e : fs::directory_iterator(set.root))
    CHECK((e.path().filename() == "Pictures" || e.path().filename() == "metadata.csv" ||
           e.path().filename() == "synthetic_pemf.txt"));
}

TEST_CASE("synthetic PEMF: frames decode; B/W frames are the colour frames in grey") {
  const SyntheticPemf& set = small_set();
  for (const auto& clip : set.clips) {
    INFO(clip.clip);
    for (int64_t t : {int64_t{0}, kFrames / 2, kFrames - 1}) {
      const cv::Mat colour = read_image(frame_path(set, clip, "Colour frames", t));
      const cv::Mat bw = read_image(frame_path(set, clip, "BW frames", t));
      CHECK(colour.size() == cv::Size(256, 256));
      CHECK(bw.size() == cv::Size(256, 256));
      cv::Mat grey_file = cv::imread(frame_path(set, clip, "BW frames", t).string(), cv::IMREAD_UNCHANGED);
      CHECK(grey_file.channels() == 1);  // stored as a grey JPEG
      cv::Mat channels[3];
      cv::split(bw, channels);
      CHECK(cv::countNonZero(channels[0] != channels[1]) == 0);
      CHECK(cv::countNonZero(channels[1] != channels[2]) == 0);
      cv::split(colour, channels);
      CHECK(cv::norm(channels[0], channels[2], cv::NORM_L1) / (256.0 * 256.0) > 5);  // colour is colour
      cv::Mat grey;
      cv::cvtColor(colour, grey, cv::COLOR_BGR2GRAY);
      CHECK(cv::norm(grey, grey_file, cv::NORM_L1) / (256.0 * 256.0) < 3);  // JPEG apart, the same picture
    }
  }
}

TEST_CASE("synthetic PEMF: dlib finds the face, and the planted movement shows in its landmarks") {
  const SyntheticPemf& set = small_set();
  int strong_brows = 0, strong_eyes = 0, shown_brows = 0, shown_eyes = 0;
  double pain_brows = 0, neutral_brows = 0;
  for (int s = 1; s <= kSubjects; ++s) {
    const std::string subject = detail::concat("S00", s);
    // The subject's neutral face: the median over the neutral clip's frames.
    const SyntheticClip& neutral = clip_of(set, subject, PemfCondition::neutral);
    std::vector<double> brows, eyes;
    for (int64_t t = 0; t < kFrames; t += 2) {
      for (const char* folder : {"Colour frames", "BW frames"}) {
        const FrameLandmarks f = detector().detect(read_image(frame_path(set, neutral, folder, t)));
        INFO(neutral.clip << " " << folder << " frame " << t);
        REQUIRE(f.detected());
        if (std::string(folder) == "Colour frames") {
          brows.push_back(measure(f).brow_height);
          eyes.push_back(measure(f).eye_opening);
        }
      }
    }
    std::sort(brows.begin(), brows.end());
    std::sort(eyes.begin(), eyes.end());
    const FaceMeasures rest{brows[brows.size() / 2], eyes[eyes.size() / 2]};
    neutral_brows += rest.brow_height;

    for (PemfCondition c : {PemfCondition::posed_pain, PemfCondition::algometer_pain, PemfCondition::laser_pain}) {
      const SyntheticClip& pain = clip_of(set, subject, c);
      for (int64_t t : {int64_t{0}, pain.apex_frame, kFrames - 1}) {
        for (const char* folder : {"Colour frames", "BW frames"}) {
          INFO(pain.clip << " " << folder << " frame " << t);
          REQUIRE(detector().detect(read_image(frame_path(set, pain, folder, t))).detected());
        }
      }
      const FaceMeasures apex =
          measure(detector().detect(read_image(frame_path(set, pain, "Colour frames", pain.apex_frame))));
      pain_brows += apex.brow_height;
      INFO(pain.clip << ": AU4 " << pain.apex.au4 << ", brows " << apex.brow_height << " vs neutral "
                     << rest.brow_height << "; AU7 " << pain.apex.au7 << ", AU43 " << pain.apex.au43 << ", eyes "
                     << apex.eye_opening << " vs neutral " << rest.eye_opening);
      // Strongly planted movements must show, in most clips: weak ones may
      // drown in the noise, and dlib's shape model sometimes misfits a face
      // with the eyes squeezed shut (its brows come out higher).
      if (pain.apex.au4 >= 1.5) {
        ++strong_brows;
        shown_brows += apex.brow_height < 0.93 * rest.brow_height;
      }
      if (std::max(pain.apex.au7, pain.apex.au43) >= 1.5) {
        ++strong_eyes;
        shown_eyes += apex.eye_opening < 0.85 * rest.eye_opening;
      }
    }
  }
  CHECK(strong_brows >= 3);  // the seed gives enough strong clips for the checks below to mean something
  CHECK(strong_eyes >= 3);
  INFO("brow lowering shows in " << shown_brows << " of " << strong_brows << " strong clips, eye closure in "
                                 << shown_eyes << " of " << strong_eyes);
  CHECK(shown_brows >= 0.75 * strong_brows);
  CHECK(shown_eyes >= 0.75 * strong_eyes);
  CHECK(pain_brows / (3 * kSubjects) < neutral_brows / kSubjects);  // and on average over all pain clips
}

TEST_CASE("synthetic PEMF: the same seed writes the same bytes, whatever the threads") {
  TempDir dir("synthetic_pemf_seed");
  SyntheticPemfOptions o = small_options(2, 4);
  o.threads = 1;
  const SyntheticPemf a = make_synthetic_pemf(dir.path / "a", o);
  o.threads = 2;
  const SyntheticPemf b = make_synthetic_pemf(dir.path / "b", o);
  o.seed = 8;
  const SyntheticPemf c = make_synthetic_pemf(dir.path / "c", o);
  const auto fa = files_under(a.root), fb = files_under(b.root), fc = files_under(c.root);
  CHECK(fa.size() == 1 + 1 + 2 * 4 * 2 * 4);  // metadata, marker, frames
  CHECK(fa == fb);
  REQUIRE(fc.size() == fa.size());
  int same = 0;
  for (const auto& [name, bytes] : fa)
    if (name.find("frame_") != std::string::npos) same += fc.at(name) == bytes;
  CHECK(same == 0);  // another seed: other subjects, every frame different
  CHECK(fc.at("metadata.csv") != fa.at("metadata.csv"));
}

TEST_CASE("synthetic PEMF: colour only") {
  TempDir dir("synthetic_pemf_colour");
  SyntheticPemfOptions o = small_options(1, 3);
  o.bw_frames = false;
  const SyntheticPemf set = make_synthetic_pemf(dir.path / "set", o);
  CHECK(set.images_written == 4 * 3);
  PemfOptions po;
  po.clip_length = 3;
  const PemfIndex index = index_pemf(set.root, po);
  CHECK(index.clips.size() == 4);
  for (const auto& clip : index.clips) CHECK(clip.frame_kind == FrameKind::colour);
}

TEST_CASE("synthetic PEMF: refuses to overwrite unless asked, and then only its own set") {
  TempDir dir("synthetic_pemf_overwrite");
  SyntheticPemfOptions o = small_options(2, 2);
  const fs::path out = dir.path / "set";
  make_synthetic_pemf(out, o);
  const auto before = files_under(out);

  SECTION("an existing set is kept") {
    o.seed = 9;
    CHECK_THROWS_WITH(make_synthetic_pemf(out, o), Catch::Contains("refusing to overwrite"));
    CHECK(files_under(out) == before);
  }
  SECTION("overwrite replaces an earlier set, leaving nothing of it behind") {
    o.subjects = 1;
    o.overwrite = true;
    make_synthetic_pemf(out, o);
    CHECK_FALSE(fs::exists(out / "Pictures" / "Modified" / "S002"));
    PemfOptions po;
    po.clip_length = 2;
    CHECK(index_pemf(out, po).clips.size() == 8);
    CHECK(read_csv(out / "metadata.csv").size() == 5);
  }
  SECTION("a folder with anything else in it is never cleared") {
    std::ofstream(out / "notes.txt") << "mine";
    o.overwrite = true;
    CHECK_THROWS_WITH(make_synthetic_pemf(out, o), Catch::Contains("notes.txt"));
    CHECK(fs::exists(out / "notes.txt"));
    CHECK(fs::exists(out / "metadata.csv"));
  }
  SECTION("nor a folder that is not a synthetic set") {
    const fs::path other = dir.path / "other";
    fs::create_directories(other / "Pictures" / "Modified" / "S001");
    o.overwrite = true;
    CHECK_THROWS_WITH(make_synthetic_pemf(other, o), Catch::Contains("not a synthetic PEMF folder"));
    CHECK(fs::exists(other / "Pictures" / "Modified" / "S001"));
  }
  SECTION("an empty folder is fine") {
    fs::create_directories(dir.path / "empty");
    CHECK_NOTHROW(make_synthetic_pemf(dir.path / "empty", o));
  }
}

TEST_CASE("synthetic PEMF: bad input is refused before anything is written") {
  TempDir dir("synthetic_pemf_bad");
  const fs::path out = dir.path / "set";
  SyntheticPemfOptions o = small_options(1, 2);
  SECTION("a missing photo") {
    o.photo = (dir.path / "missing.png").string();
    CHECK_THROWS_WITH(make_synthetic_pemf(out, o), Catch::Contains("missing.png") && Catch::Contains("no such file"));
  }
  SECTION("a photo without a face") {
    o.photo = (dir.path / "wall.png").string();
    REQUIRE(cv::imwrite(o.photo, cv::Mat(300, 300, CV_8UC3, cv::Scalar(120, 140, 160))));
    CHECK_THROWS_WITH(make_synthetic_pemf(out, o), Catch::Contains("no face"));
  }
  SECTION("options out of range") {
    for (auto bad :
         {+[](SyntheticPemfOptions& x) { x.subjects = 0; }, +[](SyntheticPemfOptions& x) { x.frames = 1; },
          +[](SyntheticPemfOptions& x) { x.image_size = 64; }, +[](SyntheticPemfOptions& x) { x.jpeg_quality = 0; },
          +[](SyntheticPemfOptions& x) { x.colour_frames = x.bw_frames = false; }}) {
      SyntheticPemfOptions b = o;
      bad(b);
      CHECK_THROWS_AS(make_synthetic_pemf(out, b), Error);
    }
  }
  CHECK_FALSE(fs::exists(out));
}
