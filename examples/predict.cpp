// Pain probability for new video: sliding windows of frames (the clip length
// the models were trained on) through a landmark model (STGCN / STGCN-LSTM),
// a visual model (ConvNeXt features + a sequence head), or both (late fusion:
// the mean of their probabilities). Each checkpoint's model card (metadata
// written by the trainers) says how to rebuild the model and its input.
//   bazel run --config=opt //examples:predict -- --video face.avi --model a.safetensors,b.safetensors --out out/predict
// Writes predictions.csv, a PNG strip (a thumbnail and the probability per
// window) and, for a video, the video annotated with the probabilities.
#include <cstdio>
#include <filesystem>
#include <optional>

#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "examples/cli.hpp"
#include "stpain/data/face_crop.hpp"
#include "stpain/data/feature_extraction.hpp"
#include "stpain/data/landmarks.hpp"
#include "stpain/data/plot.hpp"
#include "stpain/graph/landmark_graphs.hpp"
#include "stpain/models/from_card.hpp"
#include "stpain/train/landmark_normalize.hpp"
#include "stpain/train/scaler.hpp"
#include "stpain/train/trainer.hpp"

using namespace stpain;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string video, frames, models, out = "out/predict";
  int64_t stride = 10, every = 1, max_frames = 0, threads = 2;
};

struct Windows {
  std::vector<int64_t> starts;  // first frame of each window
  int64_t length = 0;
};

Windows make_windows(int64_t frames, int64_t length, int64_t stride, const std::string& source) {
  STPAIN_CHECK(frames >= length, Error, source, ": ", frames, " frames, fewer than the ", length,
               " a window of the model needs");
  Windows w{{}, length};
  for (int64_t s = 0; s + length <= frames; s += stride) w.starts.push_back(s);
  if (w.starts.back() + length < frames) w.starts.push_back(frames - length);  // cover the end too
  return w;
}

// [frames, ...] -> [windows, length, ...]
Tensor<float> gather_windows(const Tensor<float>& per_frame, const Windows& w) {
  const int64_t width = per_frame.numel() / per_frame.size(0);
  Shape shape = per_frame.shape().with(0, w.length);
  std::vector<int64_t> dims{static_cast<int64_t>(w.starts.size())};
  for (int64_t d : shape) dims.push_back(d);
  Tensor<float> out = Tensor<float>::empty(Shape(dims));
  for (size_t i = 0; i < w.starts.size(); ++i)
    std::copy_n(per_frame.data() + w.starts[i] * width, w.length * width, out.data() + static_cast<int64_t>(i) * w.length * width);
  return out;
}

// One model's pain probability per window.
struct Prediction {
  std::vector<double> pain;
  Windows windows;
};

std::vector<double> pain_column(const Tensor<float>& p) {
  std::vector<double> out;
  for (int64_t i = 0; i < p.size(0); ++i) out.push_back(p(i, 1));
  return out;
}

// The landmark model: dlib on every frame, windows, the card's normalisation and scaling.
Prediction run_landmark_model(const safetensors::File& ckpt, const ModelCard& card, const std::vector<cv::Mat>& frames,
                              const std::string& source, const Options& o, ClipLandmarks& landmarks) {
  if (landmarks.frames.empty()) {
    LandmarkDetector detector;
    landmarks = detector.detect_clip(frames, source);
    carry_over_missing(landmarks);
    STPAIN_CHECK(landmarks.has_face(), NoFaceError, source, ": no face found in any of its ", frames.size(),
                 " frames; the landmark model cannot run");
    std::printf("landmarks: %s\n", landmarks.summary().c_str());
  }
  const Windows w = make_windows(static_cast<int64_t>(frames.size()), card.get_int("landmarks.frames"), o.stride, source);
  Tensor<float> clips = gather_windows(landmarks.points(), w);  // [W, T, 68, 2]
  if (card.get("landmarks.normalize") == "clip") clips = normalize_landmark_clips(clips);
  const StandardScaler scaler(card.get_numbers("scaler.mean"), card.get_numbers("scaler.scale"));
  const int64_t n = clips.size(0), t = clips.size(1);
  clips = scaler.transform(clips.reshape({n * t, -1})).reshape(clips.shape());
  Prediction p{{}, w};
  with_model_from_card(card, [&](auto& net) {
    load_state_dict(net, ckpt);
    p.pain = pain_column(predict_probabilities(net, clips, 16));
  });
  return p;
}

// The visual model: the card's backbone and preprocessing, frame features, windows, the head.
Prediction run_visual_model(const safetensors::File& ckpt, const ModelCard& card, const std::vector<cv::Mat>& frames,
                            const std::string& source, const Options& o) {
  Backbone backbone = make_backbone({.arch = card.get_or("backbone_arch", ""), .weights = card.get_or("backbone_weights", ""),
                                     .no_head = true, .seed = static_cast<uint64_t>(std::stoull(card.get_or("backbone_seed", "0")))});
  FramePreprocess pre;
  pre.size = static_cast<int>(card.get_int("image_size"));
  if (!card.get_or("crop_pct", "").empty()) pre.crop_pct = std::stod(card.get("crop_pct"));
  std::vector<cv::Mat> input = frames;
  if (!card.get_or("face_crop", "").empty()) {  // one box for the whole input, probed every ~20 frames
    LandmarkDetector detector;
    const int probes = std::max(3, static_cast<int>(frames.size() / 20));
    input = crop_to_face(detector, frames, source, {.probe_frames = probes});
  }
  const Tensor<float> features = backbone.extract(preprocess_frames(input, pre), 8).features;  // [frames, dim]
  STPAIN_CHECK(features.size(1) == card.get_int("head.input_size"), Error, ckpt.path(), ": the head takes ",
               card.get("head.input_size"), " features, the backbone gives ", features.size(1));
  const Windows w = make_windows(features.size(0), card.get_int("frames"), o.stride, source);
  Prediction p{{}, w};
  with_model_from_card(card, [&](auto& head) {
    load_state_dict(head, ckpt);
    p.pain = pain_column(predict_probabilities(head, gather_windows(features, w), 16));
  });
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli("predict", "pain probability per window of a video or a frames folder, from trained checkpoints");
  cli.path_option("--video", o.video, "a video file (OpenCV/FFmpeg)")
      .path_option("--frames", o.frames, "a folder of frames (sorted by name)")
      .option("--model", o.models, "checkpoint(s) from train_stgcn / train_convnext_lstm, comma-separated (several: late fusion)")
      .option("--stride", o.stride, "frames between window starts")
      .option("--every", o.every, "keep every N-th video frame")
      .option("--max-frames", o.max_frames, "read at most N frames (0: all)")
      .path_option("--out", o.out, "output folder: predictions.csv, strip.png, annotated.avi")
      .option("--threads", o.threads, "CPU threads");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    STPAIN_CHECK(o.video.empty() != o.frames.empty(), Error, "give exactly one of --video or --frames");
    STPAIN_CHECK(!o.models.empty(), Error, "--model is required");
    set_num_threads(static_cast<int>(o.threads));
    const std::string source = o.video.empty() ? o.frames : o.video;
    std::vector<cv::Mat> frames;
    if (!o.video.empty()) {
      frames = read_video_frames(o.video, {.every = o.every, .max_frames = o.max_frames});
    } else {
      std::vector<fs::path> paths;
      for (const auto& e : fs::directory_iterator(o.frames)) {
        std::string ext = e.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
        if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) paths.push_back(e.path());
      }
      std::sort(paths.begin(), paths.end());
      STPAIN_CHECK(!paths.empty(), Error, o.frames, ": no .png/.jpg/.jpeg frames");
      for (const auto& p : paths) frames.push_back(read_image(p));
    }
    std::printf("%s: %zu frames\n", source.c_str(), frames.size());

    std::vector<std::string> names;
    std::vector<std::vector<double>> probabilities;
    std::optional<Windows> windows;
    ClipLandmarks landmarks;  // detected once, shared by landmark models
    std::string rest = o.models;
    for (size_t comma; !rest.empty(); rest = comma == std::string::npos ? "" : rest.substr(comma + 1)) {
      comma = rest.find(',');
      const std::string path = examples::user_path(rest.substr(0, comma));
      const safetensors::File ckpt(path);
      const ModelCard card = ModelCard::of(ckpt);
      const std::string kind = card.get("stpain.model");
      Prediction p;
      if (kind == "stgcn") p = run_landmark_model(ckpt, card, frames, source, o, landmarks);
      else if (kind == "sequence_head") p = run_visual_model(ckpt, card, frames, source, o);
      else
        throw FormatError(path + ": predict runs landmark (stgcn) and visual (sequence_head) models; this checkpoint holds a \"" +
                          kind + "\" model");
      // Late fusion needs the same windows from every model.
      STPAIN_CHECK(!windows || windows->starts == p.windows.starts, Error, path,
                   ": its clip length differs from the first model's; predict them one at a time");
      windows = p.windows;
      probabilities.push_back(p.pain);
      names.push_back(fs::path(path).stem().string());
    }
    const Windows& w = *windows;
    std::vector<double> fused(w.starts.size(), 0.0);
    for (const auto& p : probabilities)
      for (size_t i = 0; i < p.size(); ++i) fused[i] += p[i] / static_cast<double>(probabilities.size());

    fs::create_directories(o.out);
    std::string csv = "window,first_frame,last_frame";
    for (const auto& n : names) csv += "," + n;
    csv += probabilities.size() > 1 ? ",fused\n" : "\n";
    std::printf("\n%8s %8s", "window", "frames");
    for (const auto& n : names) std::printf("  %20.20s", n.c_str());
    if (probabilities.size() > 1) std::printf("  %8s", "fused");
    std::printf("\n");
    for (size_t i = 0; i < w.starts.size(); ++i) {
      char line[64];
      std::snprintf(line, sizeof line, "%zu,%lld,%lld", i, static_cast<long long>(w.starts[i]),
                    static_cast<long long>(w.starts[i] + w.length - 1));
      csv += line;
      std::printf("%8zu %3lld-%-4lld", i, static_cast<long long>(w.starts[i]), static_cast<long long>(w.starts[i] + w.length - 1));
      for (const auto& p : probabilities) {
        csv += "," + std::to_string(p[i]);
        std::printf("  %20.3f", p[i]);
      }
      if (probabilities.size() > 1) {
        csv += "," + std::to_string(fused[i]);
        std::printf("  %8.3f", fused[i]);
      }
      csv += "\n";
      std::printf("\n");
    }
    write_file_atomically(o.out + "/predictions.csv", csv);

    // A strip: the middle frame of each window with its pain probability.
    std::vector<Bar> bars;
    for (size_t i = 0; i < w.starts.size(); ++i)
      bars.push_back({std::to_string(w.starts[i]) + "-" + std::to_string(w.starts[i] + w.length - 1), fused[i], 0,
                      fused[i] >= 0.5 ? cv::Scalar(40, 40, 214) : cv::Scalar(80, 160, 40)});
    plot_bars(o.out + "/probability.png", bars,
              {.title = "pain probability per window", .x_label = "frames", .y_label = "P(pain)", .y_min = 0.0, .y_max = 1.0});
    const int thumb = 128;
    cv::Mat strip(thumb + 30, thumb * static_cast<int>(w.starts.size()), CV_8UC3, cv::Scalar(255, 255, 255));
    for (size_t i = 0; i < w.starts.size(); ++i) {
      cv::Mat t;
      cv::resize(frames[static_cast<size_t>(w.starts[i] + w.length / 2)], t, {thumb, thumb});
      t.copyTo(strip(cv::Rect(static_cast<int>(i) * thumb, 0, thumb, thumb)));
      const cv::Scalar colour = fused[i] >= 0.5 ? cv::Scalar(40, 40, 214) : cv::Scalar(80, 160, 40);
      cv::rectangle(strip, cv::Rect(static_cast<int>(i) * thumb, thumb, static_cast<int>(fused[i] * thumb), 10), colour, cv::FILLED);
      char label[32];
      std::snprintf(label, sizeof label, "%.2f", fused[i]);
      cv::putText(strip, label, {static_cast<int>(i) * thumb + 4, thumb + 27}, cv::FONT_HERSHEY_SIMPLEX, 0.45, {0, 0, 0}, 1, cv::LINE_AA);
    }
    write_image_atomically(o.out + "/strip.png", strip);
    if (!o.video.empty()) {  // every frame annotated with the latest window covering it
      const std::string path = o.out + "/annotated.avi";
      cv::VideoWriter writer(path, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 25, frames[0].size());
      STPAIN_CHECK(writer.isOpened(), Error, path, ": cannot open for writing");
      for (size_t f = 0; f < frames.size(); ++f) {
        size_t k = 0;
        for (size_t i = 0; i < w.starts.size(); ++i)
          if (w.starts[i] <= static_cast<int64_t>(f)) k = i;
        cv::Mat img = frames[f].clone();
        char label[48];
        std::snprintf(label, sizeof label, "P(pain) %.2f", fused[k]);
        cv::putText(img, label, {10, 30}, cv::FONT_HERSHEY_SIMPLEX, 0.8,
                    fused[k] >= 0.5 ? cv::Scalar(40, 40, 214) : cv::Scalar(80, 160, 40), 2, cv::LINE_AA);
        writer.write(img);
      }
    }
    std::printf("\nwritten: %s/predictions.csv, probability.png, strip.png%s\n", o.out.c_str(),
                o.video.empty() ? "" : ", annotated.avi");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predict: %s\n", e.what());
    return 1;
  }
  return 0;
}
