// Landmark CSVs: the authors' layout (68 "(x, y)" cells per frame row, labels
// nopain / pain) and the tidy one-row-per-point layout, written and read back,
// and malformed files refused with the file and line.
#include "stpain/data/landmark_csv.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace stpain;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    path = (base ? fs::path(base) : fs::temp_directory_path()) / ("landmark_csv_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// [clips, frames, 68, 2] with distinct values, some fractional.
Tensor<float> sample_points(int64_t clips, int64_t frames) {
  Tensor<float> t = Tensor<float>::empty({clips, frames, 68, 2});
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(i % 7 == 0 ? i * 0.5 + 0.25 : i);
  return t;
}

std::string header68() {
  std::string h;
  for (int k = 0; k < 68; ++k) h += (k ? "," : "") + std::to_string(k);
  return h + "\n";
}
// A frame row: 68 cells "(k, k)"; `bad` (1-based) replaced by `cell` when given.
std::string row(int bad = 0, const std::string& cell = "", int cells = 68) {
  std::string r;
  for (int k = 1; k <= cells; ++k) r += std::string(k > 1 ? "," : "") + (k == bad ? cell : "\"(" + std::to_string(k) + ", 1)\"");
  return r + "\n";
}

FrameLandmarks frame(float base, double score, LandmarkStatus status = LandmarkStatus::detected) {
  FrameLandmarks f;
  f.status = status;
  f.score = score;
  for (int k = 0; k < 68; ++k) f.points[k] = {base + k, base + 0.5f * k};
  return f;
}

std::vector<ClipLandmarks> sample_clips() {
  ClipLandmarks a;
  a.id = "S001/Posed Pain/Colour frames";
  a.subject = "S001";
  a.condition = "Posed Pain";
  a.label = 1;
  a.frames = {frame(10, 1.25), frame(20, 0.5), frame(0, NAN, LandmarkStatus::missing)};
  carry_over_missing(a);
  ClipLandmarks b;
  b.id = "odd \"name\", with comma";
  b.subject = "S000";
  b.condition = "Neutral";
  b.label = 0;
  b.frames = {frame(100, 2.0, LandmarkStatus::missing), frame(200, 0.75, LandmarkStatus::detected_on_retry),
              frame(300, 3.5)};
  carry_over_missing(b);
  return {a, b};
}

}  // namespace

TEST_CASE("authors' landmarks CSV: written as pandas does, read back exactly") {
  TempDir dir;
  const Tensor<float> points = sample_points(3, 4);
  write_authors_landmarks_csv(dir / "lm.csv", points);
  const std::string text = read_text(dir / "lm.csv");
  CHECK(text.rfind(header68(), 0) == 0);
  CHECK(text.substr(header68().size(), 25) == "\"(0.25, 1)\",\"(2, 3)\",\"(4,");
  CHECK(std::count(text.begin(), text.end(), '\n') == 1 + 12);  // header + clip b at rows 4b..4b+3

  const Tensor<float> back = read_authors_landmarks_csv(dir / "lm.csv", 4);
  REQUIRE(back.shape() == Shape{3, 4, 68, 2});
  CHECK(back.to_vector() == points.to_vector());
  // Same rows, other clip length: 12 rows are 6 clips of 2.
  CHECK(read_authors_landmarks_csv(dir / "lm.csv", 2).shape() == Shape{6, 2, 68, 2});

  write_labels_csv(dir / "labels.csv", std::vector<int64_t>{0, 1, 1});
  CHECK(read_text(dir / "labels.csv") == "label\nnopain\npain\npain\n");
  const LandmarkDataset d = read_authors_landmarks(dir / "lm.csv", dir / "labels.csv", 4);
  CHECK(d.clips() == 3);
  CHECK(d.frames() == 4);
  CHECK(d.labels == std::vector<int64_t>{0, 1, 1});
  CHECK_THROWS_WITH(read_authors_landmarks(dir / "lm.csv", dir / "labels.csv", 2),
                    Catch::Contains("labels.csv: 3 labels but") && Catch::Contains("holds 6 clips of 2 frames"));
}

TEST_CASE("authors' landmarks CSV: pandas index column, CRLF and blank lines are read") {
  TempDir dir;
  std::string text = "," + header68();
  for (int r = 0; r < 2; ++r) text += std::to_string(r) + "," + row();
  for (size_t p = 0; (p = text.find('\n', p)) != std::string::npos; p += 2) text.replace(p, 1, "\r\n");
  write_text(dir / "pandas.csv", text + "\r\n\r\n");
  const Tensor<float> t = read_authors_landmarks_csv(dir / "pandas.csv", 1);
  REQUIRE(t.shape() == Shape{2, 1, 68, 2});
  CHECK(t(1, 0, 67, 0) == 68);
  CHECK(t(1, 0, 67, 1) == 1);
  write_text(dir / "spaces.csv", header68() + row(5, " \"( 12.5 ,40 )\" "));
  CHECK(read_authors_landmarks_csv(dir / "spaces.csv", 1)(0, 0, 4, 0) == 12.5f);
}

TEST_CASE("authors' landmarks CSV: malformed files name the file and line") {
  TempDir dir;
  const std::string path = dir / "file.csv";
  auto error_of = [&](const std::string& text, int64_t clip_length = 1) {
    write_text(path, text);
    try {
      read_authors_landmarks_csv(path, clip_length);
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of(header68() + row() + row(23, "\"(12.5 40)\"")) == path + ":3: cell 23 \"(12.5 40)\" is not \"(x, y)\"");
  CHECK(error_of(header68() + row(68, "\"(1, y)\"")) == path + ":2: cell 68 \"(1, y)\" is not \"(x, y)\"");
  CHECK(error_of(header68() + row(1, "12")) == path + ":2: cell 1 \"12\" is not \"(x, y)\"");
  CHECK(error_of(header68() + row(2, "\"(1, inf)\"")) == path + ":2: cell 2 \"(1, inf)\" is not \"(x, y)\"");
  CHECK(error_of(header68() + row() + "\n" + row(0, "", 67)) == path + ":4: 67 cells, expected 68 (as the header)");
  CHECK(error_of(header68() + row() + row() + row(), 2) ==
        path + ": 3 frame rows is not a multiple of the clip length 2 (1 whole clips and 1 rows left over)");
  CHECK(error_of("0,1,2\n" + row()) == path + ":1: header has 3 cells, expected 68 (one per landmark)");
  CHECK(error_of(header68() + "\"(1, 2)") == path + ":2: cell 1: unterminated quote (a cell cannot span lines)");
  CHECK(error_of(header68() + "\"(1, 2)\"x," + row(0, "", 67)) == path + ":2: cell 1: text after the closing quote");
  CHECK(error_of(header68()) == path + ": no frame rows after the header");
  CHECK(error_of("") == path + ": empty file (expected a header row and one row per frame)");
  CHECK_THROWS_WITH(read_authors_landmarks_csv(dir / "absent.csv"), dir / "absent.csv" + ": cannot open for reading");
}

TEST_CASE("labels CSV: unknown labels and bad headers name the line") {
  TempDir dir;
  const std::string path = dir / "labels.csv";
  auto error_of = [&](const std::string& text) {
    write_text(path, text);
    try {
      read_labels_csv(path);
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of("label\nnopain\nPain\n") == path + ":3: unknown label \"Pain\" (expected nopain or pain)");
  CHECK(error_of("label\n1\n") == path + ":2: unknown label \"1\" (expected nopain or pain)");
  CHECK(error_of("labels\npain\n") == path + ":1: header is \"labels\", expected \"label\"");
  CHECK(error_of("label\npain,1\n") == path + ":2: 2 cells, expected 1");
  CHECK(error_of("label\n") == path + ": no labels after the header");
  write_text(path, "label\r\npain\r\n\r\nnopain\r\n");
  CHECK(read_labels_csv(path) == std::vector<int64_t>{1, 0});
}

TEST_CASE("authors' CSV from clips: carried frames written, faceless clips and mixed lengths refused") {
  TempDir dir;
  std::vector<ClipLandmarks> clips = sample_clips();
  write_authors_landmarks_csv(dir / "lm.csv", clips);
  write_labels_csv(dir / "labels.csv", clips);
  const LandmarkDataset d = read_authors_landmarks(dir / "lm.csv", dir / "labels.csv", 3);
  REQUIRE(d.points.shape() == Shape{2, 3, 68, 2});
  CHECK(d.labels == std::vector<int64_t>{1, 0});
  CHECK(d.points(0, 2, 5, 0) == 25);  // frame 2 carried from frame 1
  CHECK(d.points(1, 0, 5, 0) == 205);  // frame 0 carried back from frame 1

  // A clip without a face: NoFaceError, and the existing file is left as it was.
  const std::string before = read_text(dir / "lm.csv");
  ClipLandmarks faceless;
  faceless.id = "S009/Laser Pain/Colour frames";
  faceless.frames.resize(3);
  clips.push_back(faceless);
  CHECK_THROWS_AS(write_authors_landmarks_csv(dir / "lm.csv", clips), NoFaceError);
  CHECK_THROWS_WITH(write_authors_landmarks_csv(dir / "lm.csv", clips), Catch::Contains("S009/Laser Pain/Colour frames"));
  CHECK(read_text(dir / "lm.csv") == before);
  clips.back() = clips[0];
  clips.back().frames.pop_back();
  CHECK_THROWS_AS(write_authors_landmarks_csv(dir / "lm.csv", clips), ShapeError);
  clips.back().label = -1;
  CHECK_THROWS_WITH(write_labels_csv(dir / "labels.csv", clips), Catch::Contains("has no pain label"));
  CHECK(read_labels_csv(dir / "labels.csv") == std::vector<int64_t>{1, 0});
  // No half-written temporaries left beside the targets.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
  CHECK(files == 2);
  CHECK_THROWS_WITH(write_labels_csv(dir / "no/such/dir/labels.csv", std::vector<int64_t>{1}),
                    Catch::Contains("cannot create temporary file"));
}

TEST_CASE("tidy CSV: one row per point, read back with ids, subjects, scores and carried flags") {
  TempDir dir;
  const std::vector<ClipLandmarks> clips = sample_clips();
  write_tidy_landmarks_csv(dir / "tidy.csv", clips);
  const std::string text = read_text(dir / "tidy.csv");
  CHECK(text.rfind("clip,subject,condition,frame,point,x,y,score,carried\n"
                   "S001/Posed Pain/Colour frames,S001,Posed Pain,0,0,10,10,1.25,0\n",
                   0) == 0);
  CHECK(text.find("S001/Posed Pain/Colour frames,S001,Posed Pain,2,67,87,53.5,,1\n") != std::string::npos);
  CHECK(text.find("\"odd \"\"name\"\", with comma\",S000,Neutral,0,0,200,200,,1\n") != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1 + 2 * 3 * 68);

  const LandmarkDataset d = read_tidy_landmarks_csv(dir / "tidy.csv");
  REQUIRE(d.points.shape() == Shape{2, 3, 68, 2});
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t t = 0; t < 3; ++t)
      for (int k = 0; k < 68; ++k) {
        CHECK(d.points(c, t, k, 0) == clips[c].frames[t].points[k].x);
        CHECK(d.points(c, t, k, 1) == clips[c].frames[t].points[k].y);
      }
  CHECK(d.clip_ids == std::vector<std::string>{clips[0].id, clips[1].id});
  CHECK(d.subject_names == std::vector<std::string>{"S000", "S001"});
  CHECK(d.subjects == std::vector<int64_t>{1, 0});
  CHECK(d.conditions == std::vector<std::string>{"Posed Pain", "Neutral"});
  CHECK(d.labels == std::vector<int64_t>{1, 0});
  CHECK(d.scores(0, 0) == 1.25f);
  CHECK(d.scores(1, 1) == 0.75f);
  CHECK(std::isnan(d.scores(0, 2)));
  CHECK(d.carried.to_vector() == std::vector<float>{0, 0, 1, 1, 0, 0});

  // Rows in any order read the same; clips without a PEMF condition get label -1.
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::string shuffled = lines[0] + "\n";  // each clip's rows reversed, clips in their order
  for (size_t i = 3 * 68; i >= 1; --i) shuffled += lines[i] + "\n";
  for (size_t i = 2 * 3 * 68; i > 3 * 68; --i) shuffled += lines[i] + "\n";
  write_text(dir / "shuffled.csv", shuffled);
  CHECK(read_tidy_landmarks_csv(dir / "shuffled.csv").points.to_vector() == d.points.to_vector());
  std::vector<ClipLandmarks> video = {clips[0]};
  video[0].id = "talk.avi";
  video[0].subject = video[0].condition = "";
  write_tidy_landmarks_csv(dir / "video.csv", video);
  const LandmarkDataset v = read_tidy_landmarks_csv(dir / "video.csv");
  CHECK(v.labels == std::vector<int64_t>{-1});
  CHECK(v.subject_names == std::vector<std::string>{""});
}

TEST_CASE("tidy CSV: malformed files name the file and line") {
  TempDir dir;
  const std::string path = dir / "tidy.csv";
  const std::string head = "clip,subject,condition,frame,point,x,y,score,carried\n";
  auto frame_rows = [](const std::string& clip, int frame, int points = 68) {
    std::string s;
    for (int k = 0; k < points; ++k)
      s += clip + ",S001,Neutral," + std::to_string(frame) + "," + std::to_string(k) + ",1.5,2,0.9,0\n";
    return s;
  };
  auto error_of = [&](const std::string& text) {
    write_text(path, text);
    try {
      read_tidy_landmarks_csv(path);
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of(frame_rows("a", 0) + frame_rows("a", 1)).find("header has no column \"clip\"") != std::string::npos);
  CHECK(error_of(head + "a,S001,Neutral,0,68,1,2,0.9,0\n") == path + ":2: point \"68\" is not a landmark number 0..67");
  CHECK(error_of(head + "a,S001,Neutral,-1,0,1,2,0.9,0\n") == path + ":2: frame \"-1\" is not a frame number (0, 1, ...)");
  CHECK(error_of(head + "a,S001,Neutral,0,0,(1,2),3,0.9,0\n") == path + ":2: 10 cells, expected 9 (as the header)");
  CHECK(error_of(head + "a,S001,Neutral,0,0,1,y,0.9,0\n") == path + ":2: y \"y\" is not a number");
  CHECK(error_of(head + "a,S001,Neutral,0,0,1,2,high,0\n") ==
        path + ":2: score \"high\" is not a number (or empty for a carried frame)");
  CHECK(error_of(head + "a,S001,Neutral,0,0,1,2,,yes\n") == path + ":2: carried \"yes\" is not 0 or 1");
  CHECK(error_of(head + frame_rows("a", 0, 3) + "a,S001,Neutral,0,1,1,2,0.9,0\n") ==
        path + ":5: clip \"a\" frame 0 point 1 again (first on line 3)");
  CHECK(error_of(head + frame_rows("a", 0) + "a,S002,Neutral,1,0,1,2,0.9,0\n") ==
        path + ":70: clip \"a\" has subject \"S002\" and condition \"Neutral\" but line 2 gave \"S001\" and \"Neutral\"");
  CHECK(error_of(head + frame_rows("a", 0, 67)) == path + ": clip \"a\" frame 0 has no point 67");
  CHECK(error_of(head + frame_rows("a", 0) + frame_rows("a", 2)) ==
        path + ": clip \"a\" has no frame 1 (frames must be numbered 0..1)");
  CHECK(error_of(head + frame_rows("a", 0) + frame_rows("a", 1) + frame_rows("b", 0)) ==
        path + ": clip \"b\" has 1 frames but clip \"a\" has 2 (a tensor needs clips of one length)");
  CHECK(error_of(head) == path + ": no rows after the header");
  CHECK(error_of(head + frame_rows("a", 0)) == "no error");
}
