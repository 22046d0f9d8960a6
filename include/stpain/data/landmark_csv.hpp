#pragma once
// Landmarks on disk as CSV, in two layouts.
//
// The authors' layout (what their STGCN code reads):
//   landmarks CSV: a header row (pandas writes 0,1,...,67), then one row per
//                  frame of 68 cells, each the string "(x, y)" (quoted, as it
//                  holds a comma); clip b is rows 20b..20b+19 (clip_length 20).
//                  A leading pandas index column (empty header cell) is accepted.
//   labels CSV:    header `label`, one row per clip: `nopain` or `pain`.
// The tidy layout, one row per point, for analysis tools (pandas, R):
//   clip,subject,condition,frame,point,x,y,score,carried
//   score is the detector's confidence, empty for a carried frame (it has no
//   detection of its own); carried is 0 or 1.
//
// Readers give Tensor<float> [clips, frames, 68, 2] of (x, y) pixels, plus
// what the layout holds (labels; ids, subjects, conditions, scores, carried).
// Every complaint names the file and line: `landmarks.csv:17: cell 23
// "(12.5 40)" is not "(x, y)"` (cells counted from 1 along the row). Writes
// are atomic: a failed write leaves an existing file as it was.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "stpain/core/error.hpp"
#include "stpain/core/tensor.hpp"
#include "stpain/data/landmarks.hpp"
#include "stpain/data/pemf.hpp"
#include "stpain/io/atomic_file.hpp"

namespace stpain {

// What a landmark CSV holds, as tensors.
struct LandmarkDataset {
  Tensor<float> points;                    // [clips, frames, 68, 2], (x, y) pixels
  std::vector<int64_t> labels;             // per clip: 0 no pain, 1 pain, -1 unknown; empty if the file has none
  std::vector<std::string> clip_ids;       // tidy CSV only
  std::vector<std::string> conditions;     // tidy CSV only ("Posed Pain", or empty)
  std::vector<int64_t> subjects;           // tidy CSV only: index into subject_names
  std::vector<std::string> subject_names;  // sorted
  Tensor<float> scores;                    // tidy CSV only: [clips, frames], NaN for carried frames
  Tensor<float> carried;                   // tidy CSV only: [clips, frames], 1 where carried over

  int64_t clips() const { return points.defined() ? points.size(0) : 0; }
  int64_t frames() const { return points.defined() ? points.size(1) : 0; }
};

namespace csv_detail {

inline const char* const kTidyColumns[] = {"clip", "subject", "condition", "frame", "point",
                                            "x",    "y",       "score",     "carried"};

// A cell as CSV writes it: quoted when it holds a comma, quote or line break
// (or edge spaces, which readers would trim).
inline std::string cell(const std::string& s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string::npos ||
                     (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// Shortest text that reads back to the same value ("123" for 123.0f).
template <class T>
std::string number(T v) {
  if (std::isnan(v)) return "";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return false;
  if constexpr (std::is_floating_point_v<T>) return std::isfinite(out);
  return true;
}

// "(x, y)" -> x, y (spaces optional).
inline bool parse_point(std::string_view s, float& x, float& y) {
  s = trim(s);
  if (s.size() < 5 || s.front() != '(' || s.back() != ')') return false;
  s = s.substr(1, s.size() - 2);
  const size_t comma = s.find(',');
  if (comma == std::string_view::npos) return false;
  return parse_number(s.substr(0, comma), x) && parse_number(s.substr(comma + 1), y);
}

// The lines of a text file, for line-numbered parsing.
class Lines {
 public:
  explicit Lines(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    STPAIN_CHECK(in, FormatError, path, ": cannot open for reading");
    std::ostringstream s;
    s << in.rdbuf();
    text_ = s.str();
  }
  // The next non-blank line without its line break; false at the end.
  bool next(std::string_view& line) {
    while (pos_ < text_.size()) {
      size_t end = text_.find('\n', pos_);
      if (end == std::string::npos) end = text_.size();
      line = std::string_view(text_).substr(pos_, end - pos_);
      pos_ = end + 1;
      ++number_;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!trim(line).empty()) return true;  // pandas skips blank lines too
    }
    return false;
  }
  int64_t number() const { return number_; }
  const std::string& path() const { return path_; }
  // "path:17: " for messages about the current line.
  std::string where() const { return detail::concat(path_, ":", number_, ": "); }

  // The current line split into cells (RFC 4180 quoting; no line breaks
  // inside quotes).
  std::vector<std::string> split(std::string_view line) const {
    std::vector<std::string> cells(1);
    bool quoted = false, was_quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quoted) {
        if (c != '"') {
          cells.back() += c;
        } else if (i + 1 < line.size() && line[i + 1] == '"') {
          cells.back() += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else if (c == ',') {
        cells.emplace_back();
        was_quoted = false;
      } else if (c == '"' && trim(cells.back()).empty() && !was_quoted) {
        cells.back().clear();
        quoted = was_quoted = true;
      } else if (!was_quoted) {
        cells.back() += c;
      } else {  // only spaces may follow a closing quote
        STPAIN_CHECK(c == ' ' || c == '\t', FormatError, where(), "cell ", cells.size(),
                     ": text after the closing quote");
      }
    }
    STPAIN_CHECK(!quoted, FormatError, where(), "cell ", cells.size(),
                 ": unterminated quote (a cell cannot span lines)");
    return cells;
  }

 private:
  std::string path_, text_;
  size_t pos_ = 0;
  int64_t number_ = 0;
};

inline std::string shown(std::string_view s) {
  constexpr size_t kMax = 40;
  return "\"" + std::string(s.substr(0, kMax)) + (s.size() > kMax ? "...\"" : "\"");
}

}  // namespace csv_detail

// ---------------------------------------------------------------- authors' layout

// points [clips, frames, 68, 2] -> the authors' landmarks CSV.
inline void write_authors_landmarks_csv(const std::string& path, const Tensor<float>& points) {
  STPAIN_CHECK(points.rank() == 4 && points.size(2) == kNumLandmarks && points.size(3) == 2, ShapeError, path,
               ": landmarks must be [clips, frames, 68, 2], got ", points.shape().str());
  std::string out;
  for (int k = 0; k < kNumLandmarks; ++k) out += (k ? "," : "") + std::to_string(k);
  out += '\n';
  const int64_t rows = points.size(0) * points.size(1);
  const float* p = points.data();
  for (int64_t r = 0; r < rows; ++r) {
    for (int k = 0; k < kNumLandmarks; ++k, p += 2)
      out += (k ? "," : "") + csv_detail::cell("(" + csv_detail::number(p[0]) + ", " + csv_detail::number(p[1]) + ")");
    out += '\n';
  }
  write_file_atomically(path, out);
}

// Clips (all of one length, every frame with points) -> the authors' landmarks CSV.
inline void write_authors_landmarks_csv(const std::string& path, const std::vector<ClipLandmarks>& clips) {
  STPAIN_CHECK(!clips.empty(), Error, path, ": no clips to write");
  const int64_t length = clips[0].size();
  Tensor<float> points = Tensor<float>::empty({static_cast<int64_t>(clips.size()), length, kNumLandmarks, 2});
  for (size_t c = 0; c < clips.size(); ++c) {
    STPAIN_CHECK(clips[c].size() == length, ShapeError, path, ": the authors' layout needs clips of one length; clip ",
                 clips[0].id, " has ", length, " frames, clip ", clips[c].id, " has ", clips[c].size());
    const Tensor<float> p = clips[c].points();  // throws NoFaceError for a clip without a face
    std::copy(p.begin(), p.end(), points.data() + static_cast<int64_t>(c) * p.numel());
  }
  write_authors_landmarks_csv(path, points);
}

inline void write_labels_csv(const std::string& path, const std::vector<int64_t>& labels) {
  std::string out = "label\n";
  for (size_t i = 0; i < labels.size(); ++i) {
    STPAIN_CHECK(labels[i] == 0 || labels[i] == 1, Error, path, ": label ", i, " is ", labels[i],
                 " (0 no pain or 1 pain expected)");
    out += labels[i] ? "pain\n" : "nopain\n";
  }
  write_file_atomically(path, out);
}

inline void write_labels_csv(const std::string& path, const std::vector<ClipLandmarks>& clips) {
  std::vector<int64_t> labels;
  for (const auto& c : clips) {
    STPAIN_CHECK(c.label == 0 || c.label == 1, Error, path, ": clip ", c.id, " has no pain label");
    labels.push_back(c.label);
  }
  write_labels_csv(path, labels);
}

// The authors' landmarks CSV -> [clips, clip_length, 68, 2].
inline Tensor<float> read_authors_landmarks_csv(const std::string& path, int64_t clip_length = 20) {
  STPAIN_CHECK(clip_length > 0, Error, path, ": clip_length must be positive, got ", clip_length);
  csv_detail::Lines lines(path);
  std::string_view line;
  STPAIN_CHECK(lines.next(line), FormatError, path, ": empty file (expected a header row and one row per frame)");
  const std::vector<std::string> header = lines.split(line);
  // pandas' to_csv(index=True) adds an unnamed index column first.
  const size_t skip = header.size() == kNumLandmarks + 1 && csv_detail::trim(header[0]).empty() ? 1 : 0;
  STPAIN_CHECK(header.size() == kNumLandmarks + skip, FormatError, lines.where(), "header has ", header.size(),
               " cells, expected 68 (one per landmark)");
  std::vector<float> values;
  while (lines.next(line)) {
    const std::vector<std::string> cells = lines.split(line);
    STPAIN_CHECK(cells.size() == header.size(), FormatError, lines.where(), cells.size(), " cells, expected ",
                 header.size(), " (as the header)");
    for (size_t k = skip; k < cells.size(); ++k) {
      float x = 0, y = 0;
      STPAIN_CHECK(csv_detail::parse_point(cells[k], x, y), FormatError, lines.where(), "cell ", k + 1, " ",
                   csv_detail::shown(cells[k]), " is not \"(x, y)\"");
      values.push_back(x);
      values.push_back(y);
    }
  }
  const int64_t rows = static_cast<int64_t>(values.size()) / (2 * kNumLandmarks);
  STPAIN_CHECK(rows > 0, FormatError, path, ": no frame rows after the header");
  STPAIN_CHECK(rows % clip_length == 0, FormatError, path, ": ", rows, " frame rows is not a multiple of the clip length ",
               clip_length, " (", rows / clip_length, " whole clips and ", rows % clip_length, " rows left over)");
  return Tensor<float>::from({rows / clip_length, clip_length, kNumLandmarks, 2}, values);
}

// The authors' labels CSV -> 0 (nopain) / 1 (pain) per clip.
inline std::vector<int64_t> read_labels_csv(const std::string& path) {
  csv_detail::Lines lines(path);
  std::string_view line;
  STPAIN_CHECK(lines.next(line), FormatError, path, ": empty file (expected a `label` header)");
  const std::vector<std::string> header = lines.split(line);
  STPAIN_CHECK(header.size() == 1 && csv_detail::trim(header[0]) == "label", FormatError, lines.where(),
               "header is ", csv_detail::shown(line), ", expected \"label\"");
  std::vector<int64_t> labels;
  while (lines.next(line)) {
    const std::vector<std::string> cells = lines.split(line);
    STPAIN_CHECK(cells.size() == 1, FormatError, lines.where(), cells.size(), " cells, expected 1");
    const std::string_view v = csv_detail::trim(cells[0]);
    STPAIN_CHECK(v == "nopain" || v == "pain", FormatError, lines.where(), "unknown label ", csv_detail::shown(v),
                 " (expected nopain or pain)");
    labels.push_back(v == "pain" ? 1 : 0);
  }
  STPAIN_CHECK(!labels.empty(), FormatError, path, ": no labels after the header");
  return labels;
}

// Both of the authors' files, checked against each other.
inline LandmarkDataset read_authors_landmarks(const std::string& landmarks_csv, const std::string& labels_csv,
                                              int64_t clip_length = 20) {
  LandmarkDataset d;
  d.points = read_authors_landmarks_csv(landmarks_csv, clip_length);
  d.labels = read_labels_csv(labels_csv);
  STPAIN_CHECK(static_cast<int64_t>(d.labels.size()) == d.clips(), FormatError, labels_csv, ": ", d.labels.size(),
               " labels but ", landmarks_csv, " holds ", d.clips(), " clips of ", clip_length, " frames");
  return d;
}

// ---------------------------------------------------------------- tidy layout

// Clips -> one row per point. Missing frames are not written (a clip without
// a face throws NoFaceError: report it and leave it out before writing).
inline void write_tidy_landmarks_csv(const std::string& path, const std::vector<ClipLandmarks>& clips) {
  std::string out;
  for (const char* c : csv_detail::kTidyColumns) out += (out.empty() ? "" : ",") + std::string(c);
  out += '\n';
  for (const ClipLandmarks& clip : clips) {
    clip.require_points();
    const std::string head = csv_detail::cell(clip.id) + "," + csv_detail::cell(clip.subject) + "," +
                             csv_detail::cell(clip.condition) + ",";
    for (size_t t = 0; t < clip.frames.size(); ++t) {
      const FrameLandmarks& f = clip.frames[t];
      const std::string tail = "," + csv_detail::number(f.carried() ? NAN : f.score) + (f.carried() ? ",1\n" : ",0\n");
      for (int k = 0; k < kNumLandmarks; ++k) {
        const LandmarkPoint& p = f.points[static_cast<size_t>(k)];
        out += head + std::to_string(t) + "," + std::to_string(k) + "," + csv_detail::number(p.x) + "," +
               csv_detail::number(p.y) + tail;
      }
    }
  }
  write_file_atomically(path, out);
}

inline LandmarkDataset read_tidy_landmarks_csv(const std::string& path) {
  using csv_detail::shown;
  csv_detail::Lines lines(path);
  std::string_view line;
  STPAIN_CHECK(lines.next(line), FormatError, path, ": empty file (expected a header row)");
  const std::vector<std::string> header = lines.split(line);
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < header.size(); ++i) column[std::string(csv_detail::trim(header[i]))] = i;
  size_t at[9];
  for (int i = 0; i < 9; ++i) {
    const auto it = column.find(csv_detail::kTidyColumns[i]);
    STPAIN_CHECK(it != column.end(), FormatError, lines.where(), "header has no column \"", csv_detail::kTidyColumns[i],
                 "\" (expected clip,subject,condition,frame,point,x,y,score,carried)");
    at[i] = it->second;
  }
  enum { kClip, kSubject, kCondition, kFrame, kPoint, kX, kY, kScore, kCarried };

  struct Frame {
    std::array<float, 2 * kNumLandmarks> xy{};
    std::array<int64_t, kNumLandmarks> line{};  // where each point was read; 0: not yet
    float score = NAN;
    bool carried = false;
  };
  struct Clip {
    std::string id, subject, condition;
    int64_t first_line = 0;
    std::map<int64_t, Frame> frames;
  };
  std::vector<Clip> clips;
  std::map<std::string, size_t> clip_index;

  while (lines.next(line)) {
    const std::vector<std::string> cells = lines.split(line);
    STPAIN_CHECK(cells.size() == header.size(), FormatError, lines.where(), cells.size(), " cells, expected ",
                 header.size(), " (as the header)");
    auto cell = [&](int c) { return std::string_view(cells[at[c]]); };
    const std::string id(cell(kClip));
    auto [it, added] = clip_index.try_emplace(id, clips.size());
    if (added) clips.push_back({id, std::string(cell(kSubject)), std::string(cell(kCondition)), lines.number(), {}});
    Clip& clip = clips[it->second];
    STPAIN_CHECK(cell(kSubject) == clip.subject && cell(kCondition) == clip.condition, FormatError, lines.where(),
                 "clip ", shown(id), " has subject ", shown(cell(kSubject)), " and condition ", shown(cell(kCondition)),
                 " but line ", clip.first_line, " gave ", shown(clip.subject), " and ", shown(clip.condition));
    int64_t frame = 0, point = 0;
    STPAIN_CHECK(csv_detail::parse_number(cell(kFrame), frame) && frame >= 0, FormatError, lines.where(),
                 "frame ", shown(cell(kFrame)), " is not a frame number (0, 1, ...)");
    STPAIN_CHECK(csv_detail::parse_number(cell(kPoint), point) && point >= 0 && point < kNumLandmarks, FormatError,
                 lines.where(), "point ", shown(cell(kPoint)), " is not a landmark number 0..67");
    float x = 0, y = 0, score = NAN;
    STPAIN_CHECK(csv_detail::parse_number(cell(kX), x), FormatError, lines.where(), "x ", shown(cell(kX)),
                 " is not a number");
    STPAIN_CHECK(csv_detail::parse_number(cell(kY), y), FormatError, lines.where(), "y ", shown(cell(kY)),
                 " is not a number");
    const std::string_view carried = csv_detail::trim(cell(kCarried));
    STPAIN_CHECK(carried == "0" || carried == "1", FormatError, lines.where(), "carried ", shown(carried),
                 " is not 0 or 1");
    STPAIN_CHECK(csv_detail::trim(cell(kScore)).empty() || csv_detail::parse_number(cell(kScore), score), FormatError,
                 lines.where(), "score ", shown(cell(kScore)), " is not a number (or empty for a carried frame)");
    Frame& f = clip.frames[frame];
    const auto k = static_cast<size_t>(point);
    STPAIN_CHECK(f.line[k] == 0, FormatError, lines.where(), "clip ", shown(id), " frame ", frame, " point ", point,
                 " again (first on line ", f.line[k], ")");
    f.line[k] = lines.number();
    f.xy[2 * k] = x;
    f.xy[2 * k + 1] = y;
    f.score = score;
    f.carried = carried == "1";
  }
  STPAIN_CHECK(!clips.empty(), FormatError, path, ": no rows after the header");

  const int64_t length = static_cast<int64_t>(clips[0].frames.size());
  for (const Clip& c : clips) {
    STPAIN_CHECK(static_cast<int64_t>(c.frames.size()) == length, FormatError, path, ": clip ", shown(c.id), " has ",
                 c.frames.size(), " frames but clip ", shown(clips[0].id), " has ", length,
                 " (a tensor needs clips of one length)");
    int64_t expected = 0;
    for (const auto& [t, f] : c.frames) {
      STPAIN_CHECK(t == expected, FormatError, path, ": clip ", shown(c.id), " has no frame ", expected,
                   " (frames must be numbered 0..", length - 1, ")");
      ++expected;
      for (int k = 0; k < kNumLandmarks; ++k)
        STPAIN_CHECK(f.line[static_cast<size_t>(k)] != 0, FormatError, path, ": clip ", shown(c.id), " frame ", t,
                     " has no point ", k);
    }
  }

  LandmarkDataset d;
  const int64_t n = static_cast<int64_t>(clips.size());
  d.points = Tensor<float>::empty({n, length, kNumLandmarks, 2});
  d.scores = Tensor<float>::empty({n, length});
  d.carried = Tensor<float>::empty({n, length});
  std::set<std::string> subjects;
  for (const Clip& c : clips) subjects.insert(c.subject);
  d.subject_names.assign(subjects.begin(), subjects.end());
  float* p = d.points.data();
  for (int64_t i = 0; i < n; ++i) {
    const Clip& c = clips[static_cast<size_t>(i)];
    for (const auto& [t, f] : c.frames) {
      p = std::copy(f.xy.begin(), f.xy.end(), p);
      d.scores(i, t) = f.score;
      d.carried(i, t) = f.carried ? 1.0f : 0.0f;
    }
    d.clip_ids.push_back(c.id);
    d.conditions.push_back(c.condition);
    d.subjects.push_back(std::lower_bound(d.subject_names.begin(), d.subject_names.end(), c.subject) -
                         d.subject_names.begin());
    const auto condition = parse_pemf_condition(c.condition);
    d.labels.push_back(!condition ? -1 : *condition == PemfCondition::neutral ? 0 : 1);
  }
  return d;
}

}  // namespace stpain
