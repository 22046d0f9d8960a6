#pragma once
// The PEMF (Pain E-Motion Faces) stills as clips, laid out as distributed:
//   <Modified>/S###/<stimulus>/<frame folder>/*.{png,jpg,jpeg}
// where <Modified> is found from the root the user gives (the folder itself,
// <root>/Modified, <root>/Pictures/Modified or <root>/Pictures/Pictures/Modified).
//
// As in the authors' code, every frame folder of a stimulus is one clip
// (`Colour frames` and the B/W folder become two clips), its image files are
// sorted by name (byte order, as Python's sorted()) and the first 20 kept, and
// a stimulus containing "Neutral" is labelled 0 (no pain), any other 1 (pain).
// Known quirks are handled: the `Algomer Pain` typo is Algometer Pain, and
// duplicate stimulus folders (`Posed Pain-1`, ...) stay distinct clips (their
// ids keep the folder name).
//
// Nothing is dropped silently: clips with too few frames, stimulus folders
// with an unknown name or no frame folder, and unexpected folders next to the
// subjects are listed in PemfIndex::skipped with the reason and the path.
// Hidden entries (".DS_Store", "._x.jpg" AppleDouble files) are not data and
// are ignored; so are non-image files inside a frame folder.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "stpain/core/error.hpp"
#include "stpain/core/tensor.hpp"
#include "stpain/data/image.hpp"

namespace stpain {

enum class PemfCondition { neutral, posed_pain, algometer_pain, laser_pain };

// The normalised stimulus name: "Neutral", "Posed Pain", "Algometer Pain", "Laser Pain".
inline const char* condition_name(PemfCondition c) {
  switch (c) {
    case PemfCondition::neutral: return "Neutral";
    case PemfCondition::posed_pain: return "Posed Pain";
    case PemfCondition::algometer_pain: return "Algometer Pain";
    case PemfCondition::laser_pain: return "Laser Pain";
  }
  return "?";
}

enum class FrameKind { colour, bw, other };

inline const char* frame_kind_name(FrameKind k) {
  switch (k) {
    case FrameKind::colour: return "colour";
    case FrameKind::bw: return "bw";
    case FrameKind::other: return "other";
  }
  return "?";
}

// Which frame folders become clips. `all` keeps colour, B/W and folders of
// neither name, as the authors' code does.
enum class FrameFolders { all, colour_only, bw_only };

struct PemfOptions {
  int64_t clip_length = 20;  // frames kept per clip; folders with fewer are skipped
  FrameFolders frame_folders = FrameFolders::all;
};

struct PemfClip {
  std::string id;             // "S001/Posed Pain/Colour frames" (folder names as on disk)
  std::string subject;        // "S001"
  int64_t subject_index = 0;  // position of the subject in PemfIndex::subjects (0-based)
  PemfCondition condition = PemfCondition::neutral;
  std::string stimulus_folder;  // as on disk: "Algomer Pain", "Posed Pain-1"
  int label = 0;                // 0 no pain (Neutral), 1 pain
  FrameKind frame_kind = FrameKind::other;
  std::string frame_folder;  // "Colour frames"
  std::filesystem::path dir;
  std::vector<std::filesystem::path> frames;  // the first clip_length images, by name

  const char* condition_name() const { return stpain::condition_name(condition); }
};

struct PemfSkipped {
  std::string id;  // as a clip id would be, as far as it got ("S013/Other", "S002/Neutral/BW frames")
  std::filesystem::path path;
  std::string reason;
};

struct PemfIndex {
  std::filesystem::path modified_dir;  // the folder holding S001, S002, ...
  std::vector<std::string> subjects;   // sorted by number
  std::vector<PemfClip> clips;         // by subject, then stimulus folder, then frame folder (names)
  std::vector<PemfSkipped> skipped;
  int64_t filtered_out = 0;  // frame folders left out by PemfOptions::frame_folders

  int64_t count_label(int label) const {
    return std::count_if(clips.begin(), clips.end(), [&](const PemfClip& c) { return c.label == label; });
  }
  // "272 clips (68 no pain, 204 pain) from 68 subjects, 0 skipped"
  std::string summary() const {
    std::string s = detail::concat(clips.size(), " clips (", count_label(0), " no pain, ", count_label(1),
                                   " pain) from ", subjects.size(), " subjects, ", skipped.size(), " skipped");
    if (filtered_out) s += detail::concat(", ", filtered_out, " frame folders left out by kind");
    return s;
  }
};

namespace pemf_detail {

namespace fs = std::filesystem;

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

inline bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

struct Entry {
  std::string name;
  fs::path path;
  bool is_dir = false;
};

// Visible entries of a directory, sorted by name (byte order). Listing
// failures throw: a folder that cannot be read is not an empty folder.
inline std::vector<Entry> list_dir(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  STPAIN_CHECK(!ec, FormatError, dir.string(), ": cannot list folder: ", ec.message());
  std::vector<Entry> entries;
  for (; it != end; it.increment(ec)) {
    STPAIN_CHECK(!ec, FormatError, dir.string(), ": cannot list folder: ", ec.message());
    std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // .DS_Store, ._x.jpg: OS metadata, not data
    std::error_code dir_ec;
    const bool is_dir = it->is_directory(dir_ec);  // follows symlinks
    entries.push_back({std::move(name), it->path(), is_dir});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return entries;
}

// "S001" -> 1; nullopt for anything but 'S' followed by digits.
inline std::optional<int64_t> subject_number(const std::string& name) {
  if (name.size() < 2 || name[0] != 'S' || name.size() > 10) return std::nullopt;
  int64_t n = 0;
  for (size_t i = 1; i < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return std::nullopt;
    n = n * 10 + (name[i] - '0');
  }
  return n;
}

inline bool has_subject_folders(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code dir_ec;
    if (subject_number(it->path().filename().string()) && it->is_directory(dir_ec)) return true;
  }
  return false;
}

inline bool is_image_name(const std::string& name) {
  const std::string ext = lower(fs::path(name).extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

}  // namespace pemf_detail

// The condition a stimulus folder name stands for: matched on lower-case
// words, so the `Algomer Pain` typo and duplicate suffixes (`Posed Pain-1`)
// resolve; nullopt for any other name.
inline std::optional<PemfCondition> parse_pemf_condition(std::string_view stimulus_folder) {
  using pemf_detail::contains;
  const std::string s = pemf_detail::lower(stimulus_folder);
  if (contains(s, "neutral")) return PemfCondition::neutral;
  if (contains(s, "posed")) return PemfCondition::posed_pain;
  if (contains(s, "algometer") || contains(s, "algomer")) return PemfCondition::algometer_pain;
  if (contains(s, "laser")) return PemfCondition::laser_pain;
  return std::nullopt;
}

// Colour, black-and-white or neither, from a frame folder's name.
inline FrameKind parse_frame_kind(std::string_view frame_folder) {
  using pemf_detail::contains;
  const std::string s = pemf_detail::lower(frame_folder);
  if (contains(s, "colour") || contains(s, "color")) return FrameKind::colour;
  for (std::string_view bw : {"bw", "b&w", "b-w", "b_w", "b/w", "black", "gray", "grey", "mono"})
    if (contains(s, bw)) return FrameKind::bw;
  return FrameKind::other;
}

// The folder holding the subject folders, for a root that is that folder, or
// holds Modified, Pictures/Modified or Pictures/Pictures/Modified. Throws
// FormatError listing every place looked at when none holds S### folders.
inline std::filesystem::path find_pemf_modified_dir(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  STPAIN_CHECK(fs::exists(root, ec), FormatError, "PEMF root ", root.string(), ": no such folder");
  const fs::path candidates[] = {root, root / "Modified", root / "Pictures" / "Modified",
                                 root / "Pictures" / "Pictures" / "Modified"};
  std::string looked;
  for (const fs::path& c : candidates) {
    if (pemf_detail::has_subject_folders(c)) return c;
    looked += "\n  " + c.string();
  }
  throw FormatError(detail::concat("PEMF root ", root.string(),
                                   ": no folder of subject folders (S001, S002, ...) found; looked in:", looked,
                                   "\n(give the PEMF download's folder, its Pictures folder or Pictures/Modified)"));
}

// Indexes every clip under `root` (see the top of this file).
inline PemfIndex index_pemf(const std::filesystem::path& root, const PemfOptions& options = {}) {
  namespace fs = std::filesystem;
  using pemf_detail::list_dir;
  STPAIN_CHECK(options.clip_length > 0, Error, "PemfOptions: clip_length must be positive, got ",
               options.clip_length);
  PemfIndex index;
  index.modified_dir = find_pemf_modified_dir(root);

  std::vector<std::pair<int64_t, pemf_detail::Entry>> subjects;
  for (auto& e : list_dir(index.modified_dir)) {
    if (!e.is_dir) continue;  // stray files next to the subjects (spreadsheets, notes)
    if (auto n = pemf_detail::subject_number(e.name))
      subjects.emplace_back(*n, std::move(e));
    else
      index.skipped.push_back({e.name, e.path, "not a subject folder (expected S followed by digits, e.g. S001)"});
  }
  std::sort(subjects.begin(), subjects.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second.name < b.second.name;
  });

  for (const auto& [number, subject] : subjects) {
    const int64_t subject_index = static_cast<int64_t>(index.subjects.size());
    index.subjects.push_back(subject.name);
    for (const auto& stimulus : list_dir(subject.path)) {
      if (!stimulus.is_dir) continue;
      const std::string stimulus_id = subject.name + "/" + stimulus.name;
      const std::optional<PemfCondition> condition = parse_pemf_condition(stimulus.name);
      if (!condition) {
        index.skipped.push_back({stimulus_id, stimulus.path,
                                 "unknown stimulus folder (expected Neutral, Posed Pain, Algometer Pain or "
                                 "Laser Pain)"});
        continue;
      }
      bool any_frame_folder = false;
      for (const auto& folder : list_dir(stimulus.path)) {
        if (!folder.is_dir) continue;
        any_frame_folder = true;
        const std::string id = stimulus_id + "/" + folder.name;
        const FrameKind kind = parse_frame_kind(folder.name);
        if ((options.frame_folders == FrameFolders::colour_only && kind != FrameKind::colour) ||
            (options.frame_folders == FrameFolders::bw_only && kind != FrameKind::bw)) {
          ++index.filtered_out;
          continue;
        }
        std::vector<fs::path> frames;
        for (const auto& file : list_dir(folder.path))
          if (!file.is_dir && pemf_detail::is_image_name(file.name)) frames.push_back(file.path);
        if (static_cast<int64_t>(frames.size()) < options.clip_length) {
          index.skipped.push_back({id, folder.path,
                                   detail::concat(frames.size(), " frames, fewer than the ", options.clip_length,
                                                  " a clip needs")});
          continue;
        }
        frames.resize(static_cast<size_t>(options.clip_length));
        PemfClip clip;
        clip.id = id;
        clip.subject = subject.name;
        clip.subject_index = subject_index;
        clip.condition = *condition;
        clip.stimulus_folder = stimulus.name;
        clip.label = *condition == PemfCondition::neutral ? 0 : 1;
        clip.frame_kind = kind;
        clip.frame_folder = folder.name;
        clip.dir = folder.path;
        clip.frames = std::move(frames);
        index.clips.push_back(std::move(clip));
      }
      if (!any_frame_folder)
        index.skipped.push_back({stimulus_id, stimulus.path,
                                 "no frame folder inside (expected <stimulus>/<frame folder>/*.jpg)"});
    }
  }
  return index;
}

// A clip's frames -> Tensor [T, 3, size, size]. An unreadable frame throws
// FormatError starting with the frame's path and naming the clip; the caller
// decides whether to skip the clip.
inline Tensor<float> load_clip_frames(const PemfClip& clip, const FramePreprocess& preprocess = {}) {
  STPAIN_CHECK(!clip.frames.empty(), Error, "PEMF clip ", clip.id, ": no frames");
  return load_frames(clip.frames, preprocess, "PEMF clip " + clip.id);
}

}  // namespace stpain
