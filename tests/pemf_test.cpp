#include "stpain/data/pemf.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace stpain;
namespace fs = std::filesystem;

namespace {

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

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// Frame k is a uniform 8x6 image with blue = 10 k, green 100, red 200, so a
// loaded frame tells which file it came from.
void write_frames(const fs::path& dir, int count, const std::string& ext = ".png") {
  fs::create_directories(dir);
  for (int k = 1; k <= count; ++k)
    REQUIRE(cv::imwrite((dir / ("img" + std::to_string(k) + ext)).string(),
                        cv::Mat(6, 8, CV_8UC3, cv::Scalar(10 * k, 100, 200))));
}

// A small PEMF tree under <base>/Pictures/Pictures/Modified (as archives
// unpack), with the real data's quirks. Returns the Modified folder.
//   S001: the 4 conditions x {Colour frames, BW frames}, 20 frames each  -> 8 clips
//   S002: Neutral colour with 22 frames, Neutral BW, Posed colour, Posed BW
//         with 12 frames (skipped), duplicate Posed Pain-1, Algometer colour
//         in .JPG / .jpeg with a stray notes.txt, Laser colour             -> 6 clips
//   S013: the `Algomer Pain` typo (colour + BW), Neutral colour with hidden
//         and stray files, an unknown `Other` stimulus (skipped), a Laser
//         Pain folder with frames but no frame folder (skipped)           -> 3 clips
//   next to the subjects: an `extras` folder (skipped) and a spreadsheet.
fs::path make_fake_pemf(const fs::path& base) {
  const fs::path m = base / "Pictures" / "Pictures" / "Modified";
  // S013 first: the index must sort, not trust the file system's order.
  write_frames(m / "S013" / "Algomer Pain" / "Colour frames", 20);
  write_frames(m / "S013" / "Algomer Pain" / "BW frames", 20);
  write_frames(m / "S013" / "Neutral" / "Colour frames", 20);
  write_text(m / "S013" / "Neutral" / "Colour frames" / "readme.txt", "not a frame");
  write_text(m / "S013" / "Neutral" / "Colour frames" / ".DS_Store", "mac");
  write_text(m / "S013" / "Neutral" / "Colour frames" / "._img1.png", "AppleDouble, not a PNG");
  fs::create_directories(m / "S013" / "Neutral" / "Colour frames" / "thumbs");
  write_frames(m / "S013" / "Other" / "Colour frames", 20);
  write_frames(m / "S013" / "Laser Pain", 20);
  for (const char* condition : {"Neutral", "Posed Pain", "Algometer Pain", "Laser Pain"})
    for (const char* folder : {"Colour frames", "BW frames"}) write_frames(m / "S001" / condition / folder, 20);
  write_frames(m / "S002" / "Neutral" / "Colour frames", 22);
  write_frames(m / "S002" / "Neutral" / "BW frames", 20);
  write_frames(m / "S002" / "Posed Pain" / "Colour frames", 20);
  write_frames(m / "S002" / "Posed Pain" / "BW frames", 12);
  write_frames(m / "S002" / "Posed Pain-1" / "Colour frames", 20);
  write_frames(m / "S002" / "Algometer Pain" / "Colour frames", 10, ".JPG");
  const fs::path mixed = m / "S002" / "Algometer Pain" / "Colour frames";
  for (int k = 11; k <= 20; ++k)
    REQUIRE(cv::imwrite((mixed / ("img" + std::to_string(k) + ".jpeg")).string(),
                        cv::Mat(6, 8, CV_8UC3, cv::Scalar::all(50))));
  write_text(mixed / "notes.txt", "stray");
  write_frames(m / "S002" / "Laser Pain" / "Colour frames", 20);
  fs::create_directories(m / "extras");
  write_text(m / "PEMF_Database.xlsx", "not a spreadsheet");
  return m;
}

std::vector<std::string> clip_ids(const PemfIndex& index) {
  std::vector<std::string> ids;
  for (const auto& c : index.clips) ids.push_back(c.id);
  return ids;
}

const PemfSkipped* find_skipped(const PemfIndex& index, const std::string& id) {
  for (const auto& s : index.skipped)
    if (s.id == id) return &s;
  return nullptr;
}

// The blue-channel value of a uniform frame after the default normalisation.
float normalised_blue(int value) { return static_cast<float>((value / 255.0 - 0.406) / 0.225); }

}  // namespace

TEST_CASE("stimulus and frame folder names are recognised, quirks included") {
  CHECK(parse_pemf_condition("Neutral") == PemfCondition::neutral);
  CHECK(parse_pemf_condition("Posed Pain") == PemfCondition::posed_pain);
  CHECK(parse_pemf_condition("Posed Pain-1") == PemfCondition::posed_pain);
  CHECK(parse_pemf_condition("Algometer Pain") == PemfCondition::algometer_pain);
  CHECK(parse_pemf_condition("Algomer Pain") == PemfCondition::algometer_pain);
  CHECK(parse_pemf_condition("Laser Pain-2") == PemfCondition::laser_pain);
  CHECK_FALSE(parse_pemf_condition("Other").has_value());
  CHECK(parse_frame_kind("Colour frames") == FrameKind::colour);
  CHECK(parse_frame_kind("BW frames") == FrameKind::bw);
  CHECK(parse_frame_kind("B&W frames") == FrameKind::bw);
  CHECK(parse_frame_kind("frames") == FrameKind::other);
  CHECK(std::string(condition_name(PemfCondition::algometer_pain)) == "Algometer Pain");
}

TEST_CASE("a PEMF tree is indexed into labelled, sorted clips with every skip reported") {
  TempDir tmp("stpain_pemf_index");
  const fs::path modified = make_fake_pemf(tmp.path);
  const PemfIndex index = index_pemf(tmp.path);

  CHECK(index.modified_dir == modified);
  CHECK(index.subjects == std::vector<std::string>{"S001", "S002", "S013"});
  CHECK(clip_ids(index) == std::vector<std::string>{
                               "S001/Algometer Pain/BW frames", "S001/Algometer Pain/Colour frames",
                               "S001/Laser Pain/BW frames",     "S001/Laser Pain/Colour frames",
                               "S001/Neutral/BW frames",        "S001/Neutral/Colour frames",
                               "S001/Posed Pain/BW frames",     "S001/Posed Pain/Colour frames",
                               "S002/Algometer Pain/Colour frames", "S002/Laser Pain/Colour frames",
                               "S002/Neutral/BW frames",        "S002/Neutral/Colour frames",
                               "S002/Posed Pain/Colour frames", "S002/Posed Pain-1/Colour frames",
                               "S013/Algomer Pain/BW frames",   "S013/Algomer Pain/Colour frames",
                               "S013/Neutral/Colour frames"});
  CHECK(index.count_label(0) == 5);
  CHECK(index.count_label(1) == 12);
  CHECK(index.filtered_out == 0);
  CHECK(index.summary() == "17 clips (5 no pain, 12 pain) from 3 subjects, 4 skipped");

  for (const auto& clip : index.clips) {
    INFO(clip.id);
    CHECK(clip.frames.size() == 20);
    CHECK(clip.label == (clip.condition == PemfCondition::neutral ? 0 : 1));
    CHECK(clip.id == clip.subject + "/" + clip.stimulus_folder + "/" + clip.frame_folder);
    CHECK(index.subjects[static_cast<size_t>(clip.subject_index)] == clip.subject);
    CHECK(clip.frame_kind == (clip.frame_folder == "BW frames" ? FrameKind::bw : FrameKind::colour));
    CHECK(clip.dir == modified / clip.subject / clip.stimulus_folder / clip.frame_folder);
    CHECK(std::is_sorted(clip.frames.begin(), clip.frames.end()));
  }

  const PemfClip& typo = index.clips[15];
  CHECK(typo.subject == "S013");
  CHECK(typo.subject_index == 2);
  CHECK(typo.condition == PemfCondition::algometer_pain);
  CHECK(std::string(typo.condition_name()) == "Algometer Pain");
  CHECK(typo.stimulus_folder == "Algomer Pain");
  CHECK(typo.label == 1);

  const PemfClip& duplicate = index.clips[13];
  CHECK(duplicate.condition == PemfCondition::posed_pain);
  CHECK(duplicate.stimulus_folder == "Posed Pain-1");

  // Sorted by name in byte order as the authors' sorted(): img1, img10..img19,
  // img2, img20, img21, img22, img3, ..., img7 are the first 20 of 22.
  const PemfClip& longer = index.clips[11];
  REQUIRE(longer.id == "S002/Neutral/Colour frames");
  CHECK(longer.frames[0].filename() == "img1.png");
  CHECK(longer.frames[1].filename() == "img10.png");
  CHECK(longer.frames[11].filename() == "img2.png");
  CHECK(longer.frames[19].filename() == "img7.png");

  // Upper-case and .jpeg extensions count; the stray notes.txt does not.
  const PemfClip& mixed = index.clips[8];
  CHECK(mixed.frames[0].filename() == "img1.JPG");
  CHECK(mixed.frames[2].filename() == "img11.jpeg");
  // Hidden files, the stray readme and the thumbs folder are not frames.
  for (const auto& f : index.clips[16].frames) CHECK(f.extension() == ".png");
  CHECK(index.clips[16].frames[0].filename() == "img1.png");

  REQUIRE(index.skipped.size() == 4);
  const PemfSkipped* short_clip = find_skipped(index, "S002/Posed Pain/BW frames");
  REQUIRE(short_clip);
  CHECK(short_clip->reason == "12 frames, fewer than the 20 a clip needs");
  CHECK(short_clip->path == modified / "S002" / "Posed Pain" / "BW frames");
  const PemfSkipped* unknown = find_skipped(index, "S013/Other");
  REQUIRE(unknown);
  CHECK_THAT(unknown->reason, Catch::Contains("unknown stimulus folder"));
  const PemfSkipped* flat = find_skipped(index, "S013/Laser Pain");
  REQUIRE(flat);
  CHECK_THAT(flat->reason, Catch::Contains("no frame folder"));
  const PemfSkipped* extras = find_skipped(index, "extras");
  REQUIRE(extras);
  CHECK(extras->path == modified / "extras");
  CHECK_THAT(extras->reason, Catch::Contains("not a subject folder"));
}

TEST_CASE("frame folders can be limited to colour or B/W, and the clip length is an option") {
  TempDir tmp("stpain_pemf_kinds");
  make_fake_pemf(tmp.path);
  const PemfIndex colour = index_pemf(tmp.path, {.frame_folders = FrameFolders::colour_only});
  CHECK(colour.clips.size() == 11);
  CHECK(colour.filtered_out == 7);  // 6 B/W clips and the short B/W folder
  CHECK(colour.skipped.size() == 3);
  for (const auto& c : colour.clips) CHECK(c.frame_kind == FrameKind::colour);

  const PemfIndex bw = index_pemf(tmp.path, {.frame_folders = FrameFolders::bw_only});
  CHECK(bw.clips.size() == 6);
  CHECK(bw.filtered_out == 11);
  CHECK(bw.skipped.size() == 4);
  for (const auto& c : bw.clips) CHECK(c.frame_kind == FrameKind::bw);
  CHECK_THAT(bw.summary(), Catch::EndsWith("11 frame folders left out by kind"));

  const PemfIndex longer = index_pemf(tmp.path, {.clip_length = 22});
  REQUIRE(clip_ids(longer) == std::vector<std::string>{"S002/Neutral/Colour frames"});
  CHECK(longer.clips[0].frames.size() == 22);
  CHECK(longer.skipped.size() == 4 + 16);

  const PemfIndex shorter = index_pemf(tmp.path, {.clip_length = 12});
  CHECK(shorter.clips.size() == 18);
  CHECK(shorter.clips[0].frames.size() == 12);

  CHECK_THROWS_WITH(index_pemf(tmp.path, {.clip_length = 0}), Catch::Contains("clip_length"));
}

TEST_CASE("the PEMF root is found from the download, Pictures or Modified folder") {
  TempDir tmp("stpain_pemf_roots");
  const fs::path modified = make_fake_pemf(tmp.path / "download");
  // A folder holding Pictures/Pictures/Modified, one holding Pictures/Modified,
  // one holding Modified, and Modified itself.
  for (const fs::path& root : {tmp.path / "download", tmp.path / "download" / "Pictures",
                               tmp.path / "download" / "Pictures" / "Pictures", modified}) {
    INFO(root.string());
    const PemfIndex index = index_pemf(root);
    CHECK(index.modified_dir == modified);
    CHECK(index.clips.size() == 17);
  }

  // A root with no subjects anywhere: the error names every place looked at.
  const fs::path wrong = tmp.path;
  CHECK_THROWS_AS(index_pemf(wrong), FormatError);
  CHECK_THROWS_WITH(index_pemf(wrong), Catch::Contains("PEMF root " + wrong.string()) &&
                                           Catch::Contains("S001") &&
                                           Catch::Contains((wrong / "Modified").string()) &&
                                           Catch::Contains((wrong / "Pictures" / "Modified").string()) &&
                                           Catch::Contains((wrong / "Pictures" / "Pictures" / "Modified").string()));
  CHECK_THROWS_WITH(index_pemf(tmp.path / "nowhere"), Catch::Contains("nowhere") && Catch::Contains("no such folder"));
}

TEST_CASE("a clip loads as [T, 3, H, W] and an unreadable frame is reported with the clip and path") {
  TempDir tmp("stpain_pemf_load");
  make_fake_pemf(tmp.path);
  const PemfIndex index = index_pemf(tmp.path);
  FramePreprocess small;
  small.size = 16;

  const PemfClip& clip = index.clips[11];  // S002/Neutral/Colour frames: img1, img10, ..., img7
  const Tensor<float> x = load_clip_frames(clip, small);
  REQUIRE(x.shape() == Shape{20, 3, 16, 16});
  CHECK(x(0, 0, 5, 5) == Approx((200 / 255.0 - 0.485) / 0.229));  // red
  CHECK(x(0, 2, 0, 0) == Approx(normalised_blue(10)));          // img1
  CHECK(x(1, 2, 15, 15) == Approx(normalised_blue(100)));       // img10
  CHECK(x(19, 2, 3, 7) == Approx(normalised_blue(70)));         // img7

  const PemfClip& victim = index.clips[5];  // S001/Neutral/Colour frames
  REQUIRE(victim.id == "S001/Neutral/Colour frames");
  write_text(victim.frames[4], "garbage, not a PNG");
  CHECK_THROWS_AS(load_clip_frames(victim, small), FormatError);
  CHECK_THROWS_WITH(load_clip_frames(victim, small),
                    Catch::StartsWith(victim.frames[4].string()) && Catch::Contains("cannot decode") &&
                        Catch::Contains("frame 5 of 20, PEMF clip S001/Neutral/Colour frames"));
  fs::remove(victim.frames[7]);
  CHECK_THROWS_WITH(load_clip_frames(victim, small),
                    Catch::StartsWith(victim.frames[4].string()));  // the first failing frame is reported
  CHECK_THROWS_WITH(load_clip_frames(PemfClip{}, small), Catch::Contains("no frames"));
}
