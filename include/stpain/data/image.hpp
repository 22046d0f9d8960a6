#pragma once
// Frames from image files to network input, as the paper's authors prepare them:
// cv::imread (BGR) -> RGB -> bilinear resize to size x size (cv::resize,
// INTER_LINEAR) -> /255 -> ImageNet mean / std, laid out CHW (NCHW for a batch).
//
// Options beyond the authors' code:
// * crop_pct: timm's evaluation transform instead of the plain resize: resize
//   the shorter side to floor(size / crop_pct), keeping the aspect ratio, then
//   take the centre size x size. The resize is OpenCV's bilinear (as the rest
//   of this pipeline), not PIL's antialiased one that timm runs: on a 2x
//   downsample values differ by ~2 grey levels on average (more at sharp
//   edges; tools/fixtures/frames.py prints the figures). The geometry
//   (sizes, rounding, crop offsets) is torchvision's exactly.
// * grayscale: luminance replicated into the three channels (each channel still
//   normalised with its own mean / std), e.g. to feed colour and B/W frames alike.
//
// Normalisation goes through a 256-entry table per channel computed in double,
// exactly as numpy computes (v / 255.0 - mean) / std, so outputs are
// bit-identical to the Python reference (tools/fixtures/frames.py).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "stpain/core/error.hpp"
#include "stpain/core/parallel.hpp"
#include "stpain/core/tensor.hpp"

namespace stpain {

struct FramePreprocess {
  int size = 224;                                  // output is size x size
  std::array<double, 3> mean{0.485, 0.456, 0.406};  // RGB order (ImageNet)
  std::array<double, 3> std{0.229, 0.224, 0.225};
  std::optional<double> crop_pct;                  // unset: squash-resize (authors); set: timm centre crop
  bool grayscale = false;                          // luminance copied to R, G and B

  // Throws Error naming the bad option.
  void validate() const {
    STPAIN_CHECK(size > 0, Error, "FramePreprocess: size must be positive, got ", size);
    STPAIN_CHECK(!crop_pct || (*crop_pct > 0 && *crop_pct <= 1), Error,
                 "FramePreprocess: crop_pct must be in (0, 1], got ", crop_pct.value_or(0));
    for (int c = 0; c < 3; ++c)
      STPAIN_CHECK(std[c] > 0, Error, "FramePreprocess: std[", c, "] must be positive, got ", std[c]);
  }
};

// Reads an image as 8-bit BGR (grey and alpha images are converted by OpenCV;
// EXIF orientation is applied). Throws FormatError starting with the path when
// the file is missing, not a regular file, unreadable or cannot be decoded.
inline cv::Mat read_image(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const std::string p = path.string();
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  STPAIN_CHECK(fs::exists(st), FormatError, p, ": no such file");
  STPAIN_CHECK(fs::is_regular_file(st), FormatError, p, ": not a regular file");
  // imread answers every failure with an empty Mat; ask the OS first so the
  // message says why.
  STPAIN_CHECK(::access(p.c_str(), R_OK) == 0, FormatError, p, ": cannot read: ", std::strerror(errno));
  cv::Mat image;
  try {
    image = cv::imread(p, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw FormatError(p + ": cannot decode image: " + e.what());
  }
  STPAIN_CHECK(!image.empty(), FormatError, p, ": cannot decode image (corrupt, empty or not a supported format)");
  return image;
}

namespace detail {

// value -> (value / 255.0 - mean) / std, per channel, in double then rounded
// once to float: the same arithmetic as numpy on the authors' float64 arrays.
struct NormalizeTable {
  std::array<std::array<float, 256>, 3> rgb;
  explicit NormalizeTable(const FramePreprocess& p) {
    for (int c = 0; c < 3; ++c)
      for (int v = 0; v < 256; ++v) rgb[c][v] = static_cast<float>((v / 255.0 - p.mean[c]) / p.std[c]);
  }
};

// Any 8-bit grey / BGR / BGRA Mat -> 8-bit BGR (or grey when `grayscale`).
inline cv::Mat to_bgr_or_gray(const cv::Mat& image, bool grayscale) {
  STPAIN_CHECK(!image.empty(), Error, "preprocess_frame: empty image");
  STPAIN_CHECK(image.depth() == CV_8U, Error, "preprocess_frame: expected an 8-bit image, got OpenCV type ",
               cv::typeToString(image.type()));
  const int ch = image.channels();
  STPAIN_CHECK(ch == 1 || ch == 3 || ch == 4, Error, "preprocess_frame: expected 1, 3 or 4 channels, got ", ch);
  cv::Mat out;
  if (grayscale) {
    if (ch == 1) return image;
    cv::cvtColor(image, out, ch == 3 ? cv::COLOR_BGR2GRAY : cv::COLOR_BGRA2GRAY);
    return out;
  }
  if (ch == 3) return image;
  cv::cvtColor(image, out, ch == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_BGRA2BGR);
  return out;
}

// Python's round() (half to even), as torchvision's center_crop uses it.
inline int round_half_even(double v) { return static_cast<int>(std::nearbyint(v)); }

// The size x size view the network sees: squash-resize, or timm's
// shorter-side resize + centre crop.
inline cv::Mat resize_for_network(const cv::Mat& image, const FramePreprocess& p) {
  cv::Mat resized;
  if (!p.crop_pct) {
    if (image.rows == p.size && image.cols == p.size) return image;
    cv::resize(image, resized, cv::Size(p.size, p.size), 0, 0, cv::INTER_LINEAR);
    return resized;
  }
  // timm: scale_size = floor(size / crop_pct); torchvision Resize(int) keeps
  // the aspect ratio with the longer side int(scale * long / short).
  const int scale = static_cast<int>(std::floor(p.size / *p.crop_pct));
  const int64_t h = image.rows, w = image.cols;
  const int64_t short_side = std::min(h, w), long_side = std::max(h, w);
  const int new_long = static_cast<int>(static_cast<double>(scale * long_side) / static_cast<double>(short_side));
  const int new_h = w <= h ? new_long : scale, new_w = w <= h ? scale : new_long;
  if (new_h == image.rows && new_w == image.cols)
    resized = image;
  else
    cv::resize(image, resized, cv::Size(new_w, new_h), 0, 0, cv::INTER_LINEAR);
  const int top = round_half_even((new_h - p.size) / 2.0), left = round_half_even((new_w - p.size) / 2.0);
  return resized(cv::Rect(left, top, p.size, p.size));
}

// One preprocessed frame into out[3 * size * size] (planes R, G, B).
inline void preprocess_frame_into(const cv::Mat& image, const FramePreprocess& p, const NormalizeTable& table,
                                  float* out) {
  const cv::Mat view = resize_for_network(to_bgr_or_gray(image, p.grayscale), p);
  const int64_t plane = static_cast<int64_t>(p.size) * p.size;
  float* r = out;
  float* g = out + plane;
  float* b = out + 2 * plane;
  const auto& tr = table.rgb[0];
  const auto& tg = table.rgb[1];
  const auto& tb = table.rgb[2];
  for (int y = 0; y < p.size; ++y) {
    const uint8_t* row = view.ptr<uint8_t>(y);  // rows of a cropped view are not contiguous
    const int64_t o = static_cast<int64_t>(y) * p.size;
    if (view.channels() == 1) {
      for (int x = 0; x < p.size; ++x) {
        const uint8_t v = row[x];
        r[o + x] = tr[v];
        g[o + x] = tg[v];
        b[o + x] = tb[v];
      }
    } else {  // BGR in memory: swap to RGB planes here
      for (int x = 0; x < p.size; ++x) {
        r[o + x] = tr[row[3 * x + 2]];
        g[o + x] = tg[row[3 * x + 1]];
        b[o + x] = tb[row[3 * x]];
      }
    }
  }
}

// Runs job(i) for i in [0, n) on all cores; rethrows the exception of the
// lowest failing index (exceptions must not cross an OpenMP region).
template <class Job>
void for_each_frame(int64_t n, Job&& job) {
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  parallel_for(n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      try {
        job(i);
      } catch (...) {
        errors[static_cast<size_t>(i)] = std::current_exception();
      }
    }
  });
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace detail

// One 8-bit BGR (or grey / BGRA) image -> Tensor [3, size, size], RGB planes.
inline Tensor<float> preprocess_frame(const cv::Mat& bgr, const FramePreprocess& p = {}) {
  p.validate();
  Tensor<float> out = Tensor<float>::empty({3, p.size, p.size});
  detail::preprocess_frame_into(bgr, p, detail::NormalizeTable(p), out.data());
  return out;
}

// Images -> Tensor [N, 3, size, size], frames processed in parallel.
inline Tensor<float> preprocess_frames(const std::vector<cv::Mat>& frames, const FramePreprocess& p = {}) {
  p.validate();
  const int64_t n = static_cast<int64_t>(frames.size());
  Tensor<float> out = Tensor<float>::empty({n, 3, p.size, p.size});
  const detail::NormalizeTable table(p);
  const int64_t stride = 3 * static_cast<int64_t>(p.size) * p.size;
  detail::for_each_frame(n, [&](int64_t i) {
    detail::preprocess_frame_into(frames[static_cast<size_t>(i)], p, table, out.data() + i * stride);
  });
  return out;
}

// Reads and preprocesses image files -> Tensor [N, 3, size, size], in
// parallel. A file that cannot be read throws FormatError starting with its
// path, followed by "(frame i of N<context>)"; `context` names the caller's
// unit (a clip) so the message says where the frame belongs.
inline Tensor<float> load_frames(const std::vector<std::filesystem::path>& paths, const FramePreprocess& p = {},
                                 const std::string& context = "") {
  p.validate();
  const int64_t n = static_cast<int64_t>(paths.size());
  Tensor<float> out = Tensor<float>::empty({n, 3, p.size, p.size});
  const detail::NormalizeTable table(p);
  const int64_t stride = 3 * static_cast<int64_t>(p.size) * p.size;
  detail::for_each_frame(n, [&](int64_t i) {
    try {
      detail::preprocess_frame_into(read_image(paths[static_cast<size_t>(i)]), p, table, out.data() + i * stride);
    } catch (const FormatError& e) {
      throw FormatError(detail::concat(e.what(), " (frame ", i + 1, " of ", n, context.empty() ? "" : ", ", context,
                                       ")"));
    }
  });
  return out;
}

}  // namespace stpain
