// 68 dlib face landmarks per frame, to the authors' CSV (+ labels) and a tidy
// CSV, with optional overlay PNGs to check them by eye.
//   bazel run //examples:extract_landmarks -- --help
// Inputs: one --image, a --frames folder (one clip, images sorted by name), a
// --video (one clip; --every N, --max-frames), or a --pemf root (every clip
// of the PEMF layout, 20 frames each). Frames without a face get the nearest
// earlier detection carried over (marked carried); clips without any face are
// reported by id and left out.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "examples/cli.hpp"
#include "stpain/core/progress.hpp"
#include "stpain/data/landmark_csv.hpp"
#include "stpain/data/landmarks.hpp"
#include "stpain/data/pemf.hpp"
#include "stpain/graph/landmark_graphs.hpp"

using namespace stpain;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string model, image, frames, video, pemf, out_csv, labels_csv, tidy_csv, overlay_dir, folders = "all",
      pick = "largest";
  int64_t every = 1, max_frames = 0, clip_length = 20, threads = 2, upsample = 0, retry_upsample = 1;
  double threshold = 0.0, retry_threshold = -0.5;
  bool no_retry = false;
};

// The model Bazel ships with the program (data = @dlib//:shape_predictor_68),
// else Debian's copy; the detector's error names the last place looked.
std::string default_model(const char* argv0) {
  const std::string rel = "dlib/share/dlib/shape_predictor_68_face_landmarks.dat";
  std::vector<std::string> candidates;
  if (const char* dir = std::getenv("RUNFILES_DIR")) candidates.push_back(std::string(dir) + "/" + rel);
  candidates.push_back(std::string(argv0) + ".runfiles/" + rel);
  candidates.push_back("../" + rel);           // run from the main repository's runfiles folder
  candidates.push_back("external/" + rel);     // legacy external runfiles layout
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return c;
  }
  return kDebianShapePredictor68;
}

// ---------------------------------------------------------------- overlays

// The frame with its 68 points, the mesh (thin) and the contour (thick) drawn
// over it: green when detected, red with a banner when carried from another
// frame, a red "NO FACE" banner when there is nothing.
cv::Mat overlay(const cv::Mat& frame, const FrameLandmarks& f, int64_t index) {
  cv::Mat out = detail::to_bgr_or_gray(frame, false).clone();
  // Lines in proportion to the face, text in proportion to the image.
  const int unit = std::max(1, static_cast<int>(f.box.width() / 120));
  const int text_unit = std::max(1, std::min(out.cols, out.rows) / 256);
  const cv::Scalar red(40, 40, 230), green(60, 200, 60), mesh_detected(200, 200, 60), mesh_carried(60, 140, 240);
  const bool carried = f.carried();
  auto pt = [&](int k) { return cv::Point2f(f.points[static_cast<size_t>(k)].x, f.points[static_cast<size_t>(k)].y); };
  std::string banner;
  if (f.has_points()) {
    for (const auto& e : FaceMesh68::edges)
      cv::line(out, pt(e.a), pt(e.b), carried ? mesh_carried : mesh_detected, 1, cv::LINE_AA);
    for (const auto& e : Dlib68Contour::edges)
      cv::line(out, pt(e.a), pt(e.b), carried ? red : green, unit, cv::LINE_AA);
    for (int k = 0; k < kNumLandmarks; ++k) cv::circle(out, pt(k), unit + 1, carried ? red : green, cv::FILLED, cv::LINE_AA);
    if (f.detected()) {
      cv::rectangle(out, cv::Point(static_cast<int>(f.box.left), static_cast<int>(f.box.top)),
                    cv::Point(static_cast<int>(f.box.right), static_cast<int>(f.box.bottom)), green, unit, cv::LINE_AA);
      char text[64];
      std::snprintf(text, sizeof text, "frame %lld score %.2f%s", static_cast<long long>(index), f.score,
                    f.status == LandmarkStatus::detected_on_retry ? " (retry)" : "");
      banner = text;
    } else {
      banner = "CARRIED from frame " + std::to_string(f.source_frame);
    }
  } else {
    banner = "NO FACE";
  }
  const bool alarm = !f.detected();
  if (alarm) cv::rectangle(out, cv::Rect(0, 0, out.cols, out.rows), red, 3 * text_unit);
  const double scale = 0.45 * text_unit;
  int baseline = 0;
  const cv::Size size = cv::getTextSize(banner, cv::FONT_HERSHEY_SIMPLEX, scale, text_unit, &baseline);
  cv::rectangle(out,
                cv::Rect(0, 0, std::min(out.cols, size.width + 8 * text_unit), size.height + baseline + 8 * text_unit),
                alarm ? red : cv::Scalar(0, 0, 0), cv::FILLED);
  cv::putText(out, banner, cv::Point(4 * text_unit, size.height + 4 * text_unit), cv::FONT_HERSHEY_SIMPLEX, scale,
              cv::Scalar(255, 255, 255), text_unit, cv::LINE_AA);
  return out;
}

void write_overlay(const fs::path& path, const cv::Mat& frame, const FrameLandmarks& f, int64_t index) {
  fs::create_directories(path.parent_path());
  STPAIN_CHECK(cv::imwrite(path.string(), overlay(frame, f, index)), Error, path.string(), ": cannot write PNG");
}

// Overlays of a clip read from image files: <dir>/<clip id>/<frame stem>.png.
void write_overlays(const Options& o, const ClipLandmarks& clip, const std::vector<fs::path>& paths) {
  if (o.overlay_dir.empty()) return;
  for (size_t t = 0; t < paths.size(); ++t)
    write_overlay(fs::path(o.overlay_dir) / clip.id / (paths[t].stem().string() + ".png"), read_image(paths[t]),
                  clip.frames[t], static_cast<int64_t>(t));
}

// ---------------------------------------------------------------- inputs

struct Result {
  std::vector<ClipLandmarks> clips;    // with a face
  std::vector<std::string> left_out;   // "id: why"
  int64_t frames = 0;
};

void keep_or_report(Result& r, ClipLandmarks clip) {
  r.frames += clip.size();
  if (clip.has_face()) {
    r.clips.push_back(std::move(clip));
    return;
  }
  std::printf("no face in clip %s (%lld frames): left out\n", clip.id.c_str(), static_cast<long long>(clip.size()));
  r.left_out.push_back(clip.id + ": no face in any frame");
}

std::vector<fs::path> images_in(const std::string& dir) {
  STPAIN_CHECK(fs::is_directory(dir), Error, dir, ": not a folder");
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  STPAIN_CHECK(!paths.empty(), Error, dir, ": no .png/.jpg/.jpeg images");
  return paths;
}

Result from_files(const Options& o, LandmarkDetector& detector, const std::vector<fs::path>& paths, std::string id) {
  Result r;
  ClipLandmarks clip = detector.detect_clip(paths, std::move(id));
  std::printf("%s: %s\n", clip.id.c_str(), clip.summary().c_str());
  write_overlays(o, clip, paths);
  keep_or_report(r, std::move(clip));
  return r;
}

// A video as one clip, read in batches so only frames still waiting for a
// carried-over overlay stay in memory.
Result from_video(const Options& o, LandmarkDetector& detector) {
  VideoReader reader(o.video, {.every = o.every, .max_frames = o.max_frames});
  int64_t expected = reader.frame_count_hint() / o.every;
  if (o.max_frames) expected = std::min(expected, o.max_frames);
  ClipLandmarks clip;
  clip.id = fs::path(o.video).stem().string();
  std::vector<int64_t> indices;
  std::vector<std::pair<size_t, cv::Mat>> waiting;  // frames without a face, for their overlays
  const fs::path overlays = fs::path(o.overlay_dir) / clip.id;
  auto overlay_path = [&](size_t t) {
    char name[32];
    std::snprintf(name, sizeof name, "frame_%06lld.png", static_cast<long long>(indices[t]));
    return overlays / name;
  };
  Progress progress("frames", std::max<int64_t>(expected, 1), stdout);
  const size_t batch = 16 * static_cast<size_t>(detector.workers());
  for (bool more = true; more;) {
    std::vector<cv::Mat> frames;
    cv::Mat frame;
    int64_t index = 0;
    while (frames.size() < batch && (more = reader.next(frame, index))) {
      frames.push_back(frame.clone());
      indices.push_back(index);
    }
    const size_t start = clip.frames.size();
    for (auto& f : detector.detect_frames(frames)) clip.frames.push_back(f);
    if (!o.overlay_dir.empty())
      for (size_t i = 0; i < frames.size(); ++i) {
        const size_t t = start + i;
        if (clip.frames[t].detected())
          write_overlay(overlay_path(t), frames[i], clip.frames[t], indices[t]);
        else
          waiting.emplace_back(t, frames[i]);
      }
    progress.update(clip.size(), detail::concat(clip.count(LandmarkStatus::missing), " without a face"));
  }
  progress.finish();
  STPAIN_CHECK(clip.size() > 0, FormatError, o.video, ": no frame could be read from the video");
  carry_over_missing(clip);
  for (const auto& [t, frame] : waiting) write_overlay(overlay_path(t), frame, clip.frames[t], indices[t]);
  std::printf("%s: %s\n", clip.id.c_str(), clip.summary().c_str());
  Result r;
  keep_or_report(r, std::move(clip));
  return r;
}

Result from_pemf(const Options& o, LandmarkDetector& detector) {
  PemfOptions po;
  po.clip_length = o.clip_length;
  if (o.folders == "colour") po.frame_folders = FrameFolders::colour_only;
  else if (o.folders == "bw") po.frame_folders = FrameFolders::bw_only;
  else STPAIN_CHECK(o.folders == "all", Error, "--folders must be all, colour or bw, not \"", o.folders, "\"");
  const PemfIndex index = index_pemf(o.pemf, po);
  std::printf("%s: %s\n", o.pemf.c_str(), index.summary().c_str());
  for (const auto& s : index.skipped) std::printf("  skipped %s: %s (%s)\n", s.id.c_str(), s.reason.c_str(), s.path.c_str());
  Result r;
  Progress progress("clips", static_cast<int64_t>(index.clips.size()), stdout);
  int64_t carried = 0, retried = 0;
  for (size_t i = 0; i < index.clips.size(); ++i) {
    const PemfClip& pemf = index.clips[i];
    try {
      ClipLandmarks clip = detector.detect_clip(pemf);
      carried += clip.count(LandmarkStatus::carried);
      retried += clip.count(LandmarkStatus::detected_on_retry);
      write_overlays(o, clip, pemf.frames);
      keep_or_report(r, std::move(clip));
    } catch (const FormatError& e) {  // an unreadable frame: report, leave the clip out
      std::printf("left out %s: %s\n", pemf.id.c_str(), e.what());
      r.left_out.push_back(pemf.id + ": " + e.what());
    }
    char extra[128];
    std::snprintf(extra, sizeof extra, "%.1f frames/s, %lld carried, %lld on retry, %zu left out",
                  static_cast<double>(r.frames) / std::max(progress.seconds(), 1e-9), static_cast<long long>(carried),
                  static_cast<long long>(retried), r.left_out.size());
    progress.update(static_cast<int64_t>(i + 1), extra);
  }
  progress.finish();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli("extract_landmarks", "68 dlib face landmarks per frame to the authors' CSV and a tidy CSV");
  cli.path_option("--model", o.model, "dlib shape_predictor_68_face_landmarks.dat (default: the one Bazel ships, "
                                      "else /usr/share/dlib from Debian's libdlib-data)")
      .path_option("--image", o.image, "one image (a clip of one frame)")
      .path_option("--frames", o.frames, "a folder of frames: one clip, images sorted by name")
      .path_option("--video", o.video, "a video file: one clip")
      .option("--every", o.every, "video: keep every N-th frame")
      .option("--max-frames", o.max_frames, "video: at most this many frames (0: all)")
      .path_option("--pemf", o.pemf, "a PEMF root: every clip")
      .option("--folders", o.folders, "PEMF frame folders: all, colour or bw")
      .option("--clip-length", o.clip_length, "PEMF frames per clip (first N by name)")
      .path_option("--out-csv", o.out_csv, "landmarks in the authors' layout: one row per frame, 68 \"(x, y)\" cells")
      .path_option("--labels-csv", o.labels_csv, "PEMF labels in the authors' layout (label: nopain / pain)")
      .path_option("--tidy-csv", o.tidy_csv, "one row per point: clip,subject,condition,frame,point,x,y,score,carried")
      .path_option("--overlay-dir", o.overlay_dir, "PNG per frame with the points, mesh and contour drawn")
      .option("--threads", o.threads, "worker threads (one dlib detector each)")
      .option("--upsample", o.upsample, "pyramid_up steps before detecting (finds faces under ~80 px)")
      .option("--threshold", o.threshold, "detector adjust_threshold")
      .option("--retry-upsample", o.retry_upsample, "upsampling of the retry on frames without a face")
      .option("--retry-threshold", o.retry_threshold, "adjust_threshold of the retry")
      .flag("--no-retry", o.no_retry, "no second try on frames without a face")
      .option("--pick", o.pick, "of several faces take the largest or the best-scoring: largest or score");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    const int inputs = !o.image.empty() + !o.frames.empty() + !o.video.empty() + !o.pemf.empty();
    STPAIN_CHECK(inputs == 1, Error, "give exactly one of --image, --frames, --video or --pemf");
    STPAIN_CHECK(!o.out_csv.empty() || !o.tidy_csv.empty() || !o.overlay_dir.empty(), Error,
                 "nothing to write: give --out-csv, --tidy-csv and / or --overlay-dir");
    STPAIN_CHECK(o.labels_csv.empty() || !o.pemf.empty(), Error, "--labels-csv needs --pemf (labels come from PEMF's conditions)");
    STPAIN_CHECK(o.threads > 0 && o.every > 0 && o.max_frames >= 0 && o.clip_length > 0, Error,
                 "--threads, --every and --clip-length must be positive, --max-frames >= 0");
    STPAIN_CHECK(o.pick == "largest" || o.pick == "score", Error, "--pick must be largest or score, not \"", o.pick, "\"");
    set_num_threads(static_cast<int>(o.threads));
    LandmarkOptions lo;
    lo.model_path = o.model.empty() ? default_model(argv[0]) : o.model;
    lo.upsample = static_cast<int>(o.upsample);
    lo.adjust_threshold = o.threshold;
    lo.retry = !o.no_retry;
    lo.retry_upsample = static_cast<int>(o.retry_upsample);
    lo.retry_adjust_threshold = o.retry_threshold;
    lo.pick = o.pick == "score" ? FacePick::best_score : FacePick::largest;
    lo.threads = static_cast<int>(o.threads);
    LandmarkDetector detector(lo);
    std::printf("model: %s, %lld threads\n", lo.model_path.c_str(), static_cast<long long>(o.threads));

    const auto start = std::chrono::steady_clock::now();
    Result r;
    if (!o.image.empty()) r = from_files(o, detector, {o.image}, fs::path(o.image).stem().string());
    else if (!o.frames.empty()) r = from_files(o, detector, images_in(o.frames), fs::path(o.frames).filename().string());
    else if (!o.video.empty()) r = from_video(o, detector);
    else r = from_pemf(o, detector);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%lld frames in %.1f s (%.1f frames/s), %zu clips kept, %zu left out\n", static_cast<long long>(r.frames),
                seconds, static_cast<double>(r.frames) / std::max(seconds, 1e-9), r.clips.size(), r.left_out.size());
    for (const auto& why : r.left_out) std::printf("  left out %s\n", why.c_str());
    STPAIN_CHECK(!r.clips.empty(), Error, "no clip with a face: nothing written");

    if (!o.out_csv.empty()) {
      write_authors_landmarks_csv(o.out_csv, r.clips);
      std::printf("%s: %zu clips x %lld frames, one row per frame\n", o.out_csv.c_str(), r.clips.size(),
                  static_cast<long long>(r.clips[0].size()));
    }
    if (!o.labels_csv.empty()) {
      write_labels_csv(o.labels_csv, r.clips);
      std::printf("%s: %zu labels\n", o.labels_csv.c_str(), r.clips.size());
    }
    if (!o.tidy_csv.empty()) {
      write_tidy_landmarks_csv(o.tidy_csv, r.clips);
      std::printf("%s: one row per point\n", o.tidy_csv.c_str());
    }
    if (!o.overlay_dir.empty()) std::printf("%s: overlays\n", o.overlay_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "extract_landmarks: %s\n", e.what());
    return 1;
  }
  return 0;
}
