#pragma once
// Figures for the reports, drawn with OpenCV (no plotting library on these
// machines): training curves, confusion-matrix heatmaps and bar charts, on a
// white background with labelled axes, ticks, grid, legend and title.
//
// render_* return the image (8-bit BGR); plot_* render and write it. The
// file is encoded in memory (format from the extension: .png, .jpg, ...) and
// replaces the target atomically (AtomicFile: temporary file, fsync,
// rename), so a failed plot never leaves a half-written image. Every error
// from plot_* starts with the output path.
//
// OpenCV's Hershey fonts are ASCII only: other characters in labels are
// written as '?' ("±" as "+/-").
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "stpain/core/error.hpp"
#include "stpain/io/atomic_file.hpp"
#include "stpain/train/metrics.hpp"

namespace stpain {

// One line of a curve plot. x defaults to 1, 2, ..., y.size() (epochs);
// NaN values leave a gap (e.g. validation measured every few epochs).
struct Series {
  std::string name;                  // legend entry; empty: not in the legend
  std::vector<double> y;
  std::vector<double> x;
  std::optional<cv::Scalar> colour;  // BGR; default: the palette, in series order
  bool dashed = false;               // e.g. validation beside a solid training curve
};

struct PlotOptions {
  std::string title, x_label, y_label;
  int width = 800, height = 500;
  std::optional<double> y_min, y_max;  // fixed value axis (e.g. 0 and 1 for accuracy); default: from the data
};

// One bar; error draws a +/- error bar (e.g. the std over folds).
struct Bar {
  std::string label;
  double value = 0;
  double error = 0;
  std::optional<cv::Scalar> colour;  // BGR; default: the palette's first colour
};

struct BarOptions {
  bool value_labels = true;  // print each value above (below, if negative) its bar when it fits
  int value_decimals = -1;   // digits after the point; -1: 3 significant digits
};

// matplotlib's tab10 colours, BGR.
inline cv::Scalar plot_palette(size_t i) {
  static const cv::Scalar colours[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44},  {40, 39, 214},
                                       {189, 103, 148}, {75, 86, 140},  {194, 119, 227}, {127, 127, 127},
                                       {34, 189, 188},  {207, 190, 23}};
  return colours[i % 10];
}

// matplotlib's "Blues" colormap at t in [0, 1] (white to dark blue), BGR.
inline cv::Scalar blues_colour(double t) {
  static const double rgb[9][3] = {{247, 251, 255}, {222, 235, 247}, {198, 219, 239}, {158, 202, 225}, {107, 174, 214},
                                   {66, 146, 198},  {33, 113, 181},  {8, 81, 156},    {8, 48, 107}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 8.0;
  const int i = std::min(7, static_cast<int>(t));
  const double f = t - i;
  auto mix = [&](int c) { return std::round(rgb[i][c] + f * (rgb[i + 1][c] - rgb[i][c])); };
  return {mix(2), mix(1), mix(0)};
}

namespace detail::plot {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr double kTickScale = 0.45, kLabelScale = 0.5, kTitleScale = 0.65;
const cv::Scalar kWhite(255, 255, 255), kText(40, 40, 40), kAxis(90, 90, 90), kGrid(228, 228, 228);

// Hershey fonts draw ASCII only.
inline std::string ascii(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xB1) {
      out += "+/-";
      ++i;
    } else if ((c & 0xC0) == 0xC0) {
      out += '?';  // a lead byte; its continuation bytes are dropped
    }
  }
  return out;
}

inline cv::Size text_size(const std::string& s, double scale, int thickness = 1) {
  int baseline = 0;
  return cv::getTextSize(ascii(s), kFont, scale, thickness, &baseline);
}

// Text placed by an anchor: ax / ay are where the anchor sits in the text's
// box (0 left / top, 0.5 centre, 1 right / bottom).
inline void text(cv::Mat& img, const std::string& s, cv::Point anchor, double scale, double ax, double ay,
                 const cv::Scalar& colour = kText, int thickness = 1) {
  const cv::Size sz = text_size(s, scale, thickness);
  const int x = anchor.x - static_cast<int>(std::lround(ax * sz.width));
  const int y = anchor.y - static_cast<int>(std::lround(ay * sz.height)) + sz.height;  // putText takes the baseline
  cv::putText(img, ascii(s), {x, y}, kFont, scale, colour, thickness, cv::LINE_AA);
}

// Text turned 90 degrees counter-clockwise (a y-axis label), centred on `centre`.
inline void vertical_text(cv::Mat& img, const std::string& s, cv::Point centre, double scale) {
  const cv::Size sz = text_size(s, scale);
  cv::Mat strip(sz.height + 10, sz.width + 6, CV_8UC3, kWhite);
  text(strip, s, {strip.cols / 2, strip.rows / 2}, scale, 0.5, 0.5);
  cv::Mat turned;
  cv::rotate(strip, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
  const cv::Rect want(centre.x - turned.cols / 2, centre.y - turned.rows / 2, turned.cols, turned.rows);
  const cv::Rect fit = want & cv::Rect(0, 0, img.cols, img.rows);
  if (fit.area() > 0) turned(cv::Rect(fit.x - want.x, fit.y - want.y, fit.width, fit.height)).copyTo(img(fit));
}

inline std::string format_number(double v, int decimals) {
  char buf[64];
  if (decimals < 0) std::snprintf(buf, sizeof buf, "%.3g", v);
  else std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // no "-0.0"
  return s;
}

// A value axis: range, tick positions and the decimals their labels need.
struct Axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
  int decimals = 0;

  // Position along a pixel span [p0, p1] (p1 < p0 for a y axis).
  double map(double v, double p0, double p1) const { return p0 + (v - lo) / (hi - lo) * (p1 - p0); }
};

// 1, 2, 2.5 or 5 times a power of ten, giving at most max_ticks ticks.
inline double nice_step(double range, int max_ticks, bool integer) {
  const double raw = range / std::max(1, max_ticks - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    const double step = m * mag;
    if (integer && std::fabs(step - std::round(step)) > 1e-9) continue;
    if (step >= raw * (1 - 1e-9)) return std::max(step, integer ? 1.0 : 0.0);
  }
  return 10 * mag;
}

// expand: widen [lo, hi] to whole steps (value axes); otherwise keep the data
// range (an epoch axis starts at the first epoch).
inline Axis make_axis(double lo, double hi, int max_ticks, bool expand, bool integer) {
  if (!(hi > lo)) {
    const double d = integer ? 1.0 : (lo == 0 ? 1.0 : std::fabs(lo) * 0.1);
    lo -= d;
    hi += d;
  }
  Axis a;
  const double step = nice_step(hi - lo, max_ticks, integer);
  if (expand) {
    lo = std::floor(lo / step + 1e-9) * step;
    hi = std::ceil(hi / step - 1e-9) * step;
  }
  a.lo = lo;
  a.hi = hi;
  const double first = std::ceil(lo / step - 1e-9) * step;
  for (int k = 0;; ++k) {
    const double v = first + k * step;
    if (v > hi + 1e-9 * step) break;
    a.ticks.push_back(v);
  }
  while (a.decimals < 10 && std::fabs(step * std::pow(10.0, a.decimals) - std::round(step * std::pow(10.0, a.decimals))) > 1e-6)
    ++a.decimals;
  return a;
}

// The common frame: title, plot area with grid, axes, ticks and axis labels.
struct Frame {
  cv::Rect area;  // inside the axes
  Axis y;
};

inline int y_tick_width(const Axis& y) {
  int w = 0;
  for (double t : y.ticks) w = std::max(w, text_size(format_number(t, y.decimals), kTickScale).width);
  return w;
}

inline void check_size(const PlotOptions& o) {
  STPAIN_CHECK(o.width >= 200 && o.height >= 150, Error, "plot size ", o.width, "x", o.height,
               " is too small (at least 200x150)");
  STPAIN_CHECK(!o.y_min || !o.y_max || *o.y_min < *o.y_max, Error, "y_min ", o.y_min.value_or(0),
               " is not below y_max ", o.y_max.value_or(0));
}

// Margins from the labels: left for y ticks and label, bottom for x ticks
// (x_tick_lines of text) and label, top for the title.
inline cv::Rect plot_area(const PlotOptions& o, const Axis& y, int x_tick_lines) {
  const int line = text_size("0", kTickScale).height + 6;
  const int left = 12 + (o.y_label.empty() ? 0 : 24) + y_tick_width(y) + 8;
  const int bottom = 8 + x_tick_lines * line + (o.x_label.empty() ? 0 : 26) + 8;
  const int top = o.title.empty() ? 16 : 44;
  const int right = 22;
  return {left, top, std::max(10, o.width - left - right), std::max(10, o.height - top - bottom)};
}

inline void draw_titles(cv::Mat& img, const PlotOptions& o, const cv::Rect& area) {
  if (!o.title.empty()) text(img, o.title, {o.width / 2, 14}, kTitleScale, 0.5, 0.0, kText, 2);
  if (!o.x_label.empty()) text(img, o.x_label, {area.x + area.width / 2, o.height - 10}, kLabelScale, 0.5, 1.0);
  if (!o.y_label.empty()) vertical_text(img, o.y_label, {14, area.y + area.height / 2}, kLabelScale);
}

// Horizontal grid lines and labels of the value axis, then the axes box.
inline void draw_y_axis(cv::Mat& img, const cv::Rect& area, const Axis& y) {
  const double bottom = area.y + area.height - 1, top = area.y;
  for (double t : y.ticks) {
    const int py = static_cast<int>(std::lround(y.map(t, bottom, top)));
    cv::line(img, {area.x, py}, {area.x + area.width - 1, py}, kGrid, 1);
    cv::line(img, {area.x - 5, py}, {area.x, py}, kAxis, 1);
    text(img, format_number(t, y.decimals), {area.x - 8, py}, kTickScale, 1.0, 0.5);
  }
}

inline void draw_box(cv::Mat& img, const cv::Rect& area) {
  cv::rectangle(img, {area.x - 1, area.y - 1}, {area.x + area.width, area.y + area.height}, kAxis, 1);
}

// Fixed-point coordinates (4 fractional bits) for smooth anti-aliased lines.
constexpr int kShift = 4;
inline cv::Point fixed(double x, double y) {
  return {static_cast<int>(std::lround(x * (1 << kShift))), static_cast<int>(std::lround(y * (1 << kShift)))};
}

// A dashed polyline keeps its dash phase across vertices.
inline void dashed_line(cv::Mat& img, cv::Point2d a, cv::Point2d b, const cv::Scalar& colour, int thickness,
                        double& phase) {
  constexpr double on = 9, period = 15;
  const double len = std::hypot(b.x - a.x, b.y - a.y);
  double pos = 0;
  while (pos < len) {
    const double in_period = std::fmod(phase + pos, period);
    const double run = in_period < on ? on - in_period : period - in_period;
    const double end = std::min(len, pos + run);
    if (in_period < on) {
      const cv::Point2d p = a + (b - a) * (pos / len), q = a + (b - a) * (end / len);
      cv::line(img, fixed(p.x, p.y), fixed(q.x, q.y), colour, thickness, cv::LINE_AA, kShift);
    }
    pos = end;
  }
  phase = std::fmod(phase + len, period);
}

// Runs a renderer, prefixing its errors with the output path.
inline cv::Mat render_for(const std::string& path, const std::function<cv::Mat()>& render) {
  try {
    return render();
  } catch (const cv::Exception& e) {
    throw Error(path + ": " + e.what());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

// Words of `s` in lines no wider than `width` pixels (a word is never split).
inline std::vector<std::string> wrap(const std::string& s, int width, double scale) {
  std::vector<std::string> lines;
  std::string word, line;
  auto flush_word = [&] {
    if (word.empty()) return;
    const std::string joined = line.empty() ? word : line + " " + word;
    if (!line.empty() && text_size(joined, scale).width > width) {
      lines.push_back(line);
      line = word;
    } else {
      line = joined;
    }
    word.clear();
  };
  for (char c : s) {
    if (c == ' ') flush_word();
    else word += c;
  }
  flush_word();
  if (!line.empty() || lines.empty()) lines.push_back(line);
  return lines;
}

}  // namespace detail::plot

// Writes an image atomically in the format its extension names; errors name the path.
inline void write_image_atomically(const std::string& path, const cv::Mat& image) {
  const std::string ext = std::filesystem::path(path).extension().string();
  STPAIN_CHECK(!ext.empty(), Error, path, ": no file extension to choose the image format (e.g. .png)");
  STPAIN_CHECK(!image.empty(), Error, path, ": empty image");
  std::vector<uchar> bytes;
  bool encoded = false;
  try {
    encoded = cv::imencode(ext, image, bytes);
  } catch (const cv::Exception& e) {
    throw Error(path + ": cannot encode a " + ext + " image: " + e.what());
  }
  STPAIN_CHECK(encoded, Error, path, ": cannot encode a ", ext, " image");
  AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

// Training curves: every series over its x values (epochs by default), one
// shared value axis, legend where the curves leave room.
inline cv::Mat render_curves(const std::vector<Series>& series, const PlotOptions& options = {}) {
  using namespace detail::plot;
  check_size(options);
  STPAIN_CHECK(!series.empty(), Error, "plot_curves: no series");
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  bool integer_x = true;
  std::vector<std::vector<double>> xs;
  for (const Series& s : series) {
    STPAIN_CHECK(s.x.empty() || s.x.size() == s.y.size(), ShapeError, "plot_curves: series \"", s.name, "\" has ",
                 s.x.size(), " x values for ", s.y.size(), " y values");
    std::vector<double> x = s.x;
    if (x.empty())
      for (size_t i = 0; i < s.y.size(); ++i) x.push_back(static_cast<double>(i + 1));
    for (size_t i = 0; i < x.size(); ++i) {
      STPAIN_CHECK(std::isfinite(x[i]), NonFiniteError, "plot_curves: series \"", s.name, "\" has x = ", x[i],
                   " at ", i);
      if (!std::isfinite(s.y[i])) continue;
      x_lo = std::min(x_lo, x[i]);
      x_hi = std::max(x_hi, x[i]);
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
      integer_x = integer_x && x[i] == std::round(x[i]);
    }
    xs.push_back(std::move(x));
  }
  STPAIN_CHECK(std::isfinite(x_lo), Error, "plot_curves: no finite values in ", series.size(), " series");
  // A 3% margin keeps extreme values off the axes box; ticks from the fixed
  // ends where given, widened to whole steps elsewhere.
  const double margin = 0.03 * (y_hi - y_lo);
  Axis y = make_axis(options.y_min.value_or(y_lo - margin), options.y_max.value_or(y_hi + margin), 7, true, false);
  if (options.y_min) y.lo = *options.y_min;
  if (options.y_max) y.hi = *options.y_max;
  std::erase_if(y.ticks, [&](double t) { return t < y.lo - 1e-9 || t > y.hi + 1e-9; });
  constexpr int kInset = 6;  // keeps the first and last markers inside the axes
  cv::Mat img(options.height, options.width, CV_8UC3, kWhite);
  const cv::Rect area = plot_area(options, y, 1);
  // As many x ticks (up to 11) as their labels leave room for.
  Axis x;
  for (int max_ticks = 11; max_ticks >= 2; --max_ticks) {
    x = make_axis(x_lo, x_hi, max_ticks, false, integer_x);
    int widest = 0;
    for (double t : x.ticks) widest = std::max(widest, text_size(format_number(t, x.decimals), kTickScale).width);
    if (static_cast<int>(x.ticks.size()) * (widest + 14) <= area.width) break;
  }
  draw_y_axis(img, area, y);
  for (double t : x.ticks) {
    const int px = static_cast<int>(std::lround(x.map(t, area.x + kInset, area.x + area.width - 1 - kInset)));
    cv::line(img, {px, area.y}, {px, area.y + area.height - 1}, kGrid, 1);
    cv::line(img, {px, area.y + area.height}, {px, area.y + area.height + 4}, kAxis, 1);
    text(img, format_number(t, x.decimals), {px, area.y + area.height + 8}, kTickScale, 0.5, 0.0);
  }
  draw_box(img, area);
  draw_titles(img, options, area);

  // Curves in the plot area's own coordinates, so they are clipped to it.
  cv::Mat inside = img(area);
  std::vector<cv::Point2d> occupied;
  for (size_t si = 0; si < series.size(); ++si) {
    const Series& s = series[si];
    const cv::Scalar colour = s.colour.value_or(plot_palette(si));
    auto at = [&](size_t i) {
      return cv::Point2d(x.map(xs[si][i], kInset, area.width - 1 - kInset), y.map(s.y[i], area.height - 1, 0));
    };
    double phase = 0;
    size_t finite = 0;
    for (size_t i = 0; i < s.y.size(); ++i) finite += std::isfinite(s.y[i]);
    for (size_t i = 0; i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) {
        phase = 0;
        continue;
      }
      const cv::Point2d p = at(i);
      occupied.push_back(p);
      if (i + 1 < s.y.size() && std::isfinite(s.y[i + 1])) {
        const cv::Point2d q = at(i + 1);
        for (int k = 1; k < 8; ++k) occupied.push_back(p + (q - p) * (k / 8.0));
        if (s.dashed) dashed_line(inside, p, q, colour, 2, phase);
        else cv::line(inside, fixed(p.x, p.y), fixed(q.x, q.y), colour, 2, cv::LINE_AA, kShift);
      }
      if (finite <= 40) cv::circle(inside, fixed(p.x, p.y), 3 << kShift, colour, cv::FILLED, cv::LINE_AA, kShift);
    }
  }

  // Legend: named series, in the corner that covers the fewest curve points.
  std::vector<size_t> named;
  for (size_t si = 0; si < series.size(); ++si)
    if (!series[si].name.empty()) named.push_back(si);
  if (!named.empty()) {
    int text_w = 0;
    for (size_t si : named) text_w = std::max(text_w, text_size(series[si].name, kTickScale).width);
    const int row = 20, sample = 28;
    const cv::Size box(sample + 10 + text_w + 16, static_cast<int>(named.size()) * row + 10);
    const int m = 8, right_x = area.width - box.width - m, bottom_y = area.height - box.height - m;
    const int mid_x = (area.width - box.width) / 2, mid_y = (area.height - box.height) / 2;
    // Corners first, then edge middles, then the centre.
    const cv::Point corners[] = {{right_x, m},       {m, m},     {right_x, bottom_y}, {m, bottom_y},  {mid_x, m},
                                 {mid_x, bottom_y}, {right_x, mid_y}, {m, mid_y},          {mid_x, mid_y}};
    size_t best = 0, best_hits = SIZE_MAX;
    for (size_t c = 0; c < std::size(corners); ++c) {
      const cv::Rect r(corners[c], box);
      size_t hits = 0;
      for (const auto& p : occupied) hits += r.contains(cv::Point(static_cast<int>(p.x), static_cast<int>(p.y)));
      if (hits < best_hits) {
        best = c;
        best_hits = hits;
      }
    }
    const cv::Rect r(corners[best], box);
    cv::rectangle(inside, r, kWhite, cv::FILLED);
    cv::rectangle(inside, r, cv::Scalar(200, 200, 200), 1);
    for (size_t k = 0; k < named.size(); ++k) {
      const Series& s = series[named[k]];
      const cv::Scalar colour = s.colour.value_or(plot_palette(named[k]));
      const int cy = r.y + 5 + static_cast<int>(k) * row + row / 2;
      double phase = 0;
      if (s.dashed) dashed_line(inside, {r.x + 8.0, double(cy)}, {r.x + 8.0 + sample, double(cy)}, colour, 2, phase);
      else cv::line(inside, {r.x + 8, cy}, {r.x + 8 + sample, cy}, colour, 2, cv::LINE_AA);
      text(inside, s.name, {r.x + 8 + sample + 8, cy}, kTickScale, 0.0, 0.5);
    }
  }
  return img;
}

inline void plot_curves(const std::string& path, const std::vector<Series>& series, const PlotOptions& options = {}) {
  write_image_atomically(path, detail::plot::render_for(path, [&] { return render_curves(series, options); }));
}

// A C x C heatmap of row-normalised values (the share of each true class
// predicted as each class), each cell showing its count and that share, with
// a colour bar. Labels default to "Predicted label" / "True label" and class
// names to 0, 1, ...
inline cv::Mat render_confusion_matrix(const ConfusionMatrix& cm, std::vector<std::string> class_names = {},
                                       PlotOptions options = {}) {
  using namespace detail::plot;
  check_size(options);
  const size_t n = cm.size();
  STPAIN_CHECK(n > 0, Error, "plot_confusion_matrix: empty confusion matrix");
  for (size_t t = 0; t < n; ++t) {
    STPAIN_CHECK(cm[t].size() == n, ShapeError, "plot_confusion_matrix: row ", t, " has ", cm[t].size(),
                 " entries, expected ", n);
    for (int64_t v : cm[t]) STPAIN_CHECK(v >= 0, Error, "plot_confusion_matrix: negative count ", v, " in row ", t);
  }
  if (class_names.empty())
    for (size_t c = 0; c < n; ++c) class_names.push_back(std::to_string(c));
  STPAIN_CHECK(class_names.size() == n, ShapeError, "plot_confusion_matrix: ", class_names.size(),
               " class names for ", n, " classes");
  if (options.x_label.empty()) options.x_label = "Predicted label";
  if (options.y_label.empty()) options.y_label = "True label";

  cv::Mat img(options.height, options.width, CV_8UC3, kWhite);
  int name_w = 0;
  for (const auto& s : class_names) name_w = std::max(name_w, text_size(s, kLabelScale).width);
  const int line = text_size("0", kLabelScale).height;
  const int top = options.title.empty() ? 16 : 48;
  const int bottom = 10 + line + 12 + 26 + 6;
  const int left = 12 + 24 + name_w + 12;
  const int bar_w = 18, bar_gap = 24, bar_labels = text_size("100%", kTickScale).width + 12;
  const int right = bar_gap + bar_w + bar_labels + 10;
  const int cell = std::max(
      8, std::min((options.width - left - right) / static_cast<int>(n), (options.height - top - bottom) / static_cast<int>(n)));
  const int side = cell * static_cast<int>(n);
  // Centre the whole figure (labels, grid, colour bar), not the grid alone.
  const int x0 = std::max(0, (options.width - left - side - right) / 2) + left;
  const cv::Rect grid(x0, top, side, side);

  const double count_scale = std::clamp(cell / 160.0, 0.45, 1.0), share_scale = count_scale * 0.8;
  for (size_t t = 0; t < n; ++t) {
    int64_t row_total = 0;
    for (int64_t v : cm[t]) row_total += v;
    for (size_t p = 0; p < n; ++p) {
      const double share = row_total > 0 ? static_cast<double>(cm[t][p]) / static_cast<double>(row_total) : 0.0;
      const cv::Rect r(grid.x + static_cast<int>(p) * cell, grid.y + static_cast<int>(t) * cell, cell, cell);
      cv::rectangle(img, r, blues_colour(share), cv::FILLED);
      const cv::Scalar ink = share > 0.5 ? kWhite : kText;
      const cv::Point c(r.x + cell / 2, r.y + cell / 2);
      const int gap = std::max(3, cell / 25);
      text(img, std::to_string(cm[t][p]), {c.x, c.y - gap}, count_scale, 0.5, 1.0, ink, 2);
      text(img, format_number(100.0 * share, 1) + "%", {c.x, c.y + gap}, share_scale, 0.5, 0.0, ink, 1);
    }
    text(img, class_names[t], {grid.x - 10, grid.y + static_cast<int>(t) * cell + cell / 2}, kLabelScale, 1.0, 0.5);
  }
  for (size_t p = 0; p < n; ++p)
    text(img, class_names[p], {grid.x + static_cast<int>(p) * cell + cell / 2, grid.y + side + 10}, kLabelScale, 0.5,
         0.0);
  for (int k = 1; k < static_cast<int>(n); ++k) {  // white cell borders
    cv::line(img, {grid.x + k * cell, grid.y}, {grid.x + k * cell, grid.y + side - 1}, kWhite, 2);
    cv::line(img, {grid.x, grid.y + k * cell}, {grid.x + side - 1, grid.y + k * cell}, kWhite, 2);
  }
  draw_box(img, grid);
  if (!options.title.empty()) text(img, options.title, {options.width / 2, 14}, kTitleScale, 0.5, 0.0, kText, 2);
  text(img, options.x_label, {grid.x + side / 2, grid.y + side + 10 + line + 14}, kLabelScale, 0.5, 0.0);
  vertical_text(img, options.y_label, {x0 - left + 14, grid.y + side / 2}, kLabelScale);

  // Colour bar: 0% at the bottom to 100% at the top.
  const cv::Rect bar(grid.x + side + bar_gap, grid.y, bar_w, side);
  for (int row = 0; row < bar.height; ++row) {
    const double t = 1.0 - static_cast<double>(row) / std::max(1, bar.height - 1);
    cv::line(img, {bar.x, bar.y + row}, {bar.x + bar.width - 1, bar.y + row}, blues_colour(t), 1);
  }
  draw_box(img, bar);
  for (int k = 0; k <= 4; ++k) {
    const int py = bar.y + bar.height - 1 - static_cast<int>(std::lround(k / 4.0 * (bar.height - 1)));
    cv::line(img, {bar.x + bar.width, py}, {bar.x + bar.width + 4, py}, kAxis, 1);
    text(img, std::to_string(25 * k) + "%", {bar.x + bar.width + 7, py}, kTickScale, 0.0, 0.5);
  }
  return img;
}

inline void plot_confusion_matrix(const std::string& path, const ConfusionMatrix& cm,
                                  const std::vector<std::string>& class_names = {}, const PlotOptions& options = {}) {
  write_image_atomically(
      path, detail::plot::render_for(path, [&] { return render_confusion_matrix(cm, class_names, options); }));
}

// Bars from zero (e.g. attention weight per frame, or accuracy per model with
// error = std over folds), labels under the bars wrapped onto lines.
inline cv::Mat render_bars(const std::vector<Bar>& bars, const PlotOptions& options = {},
                           const BarOptions& style = {}) {
  using namespace detail::plot;
  check_size(options);
  STPAIN_CHECK(!bars.empty(), Error, "plot_bars: no bars");
  double lo = 0, hi = 0;
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    STPAIN_CHECK(std::isfinite(b.value) && std::isfinite(b.error) && b.error >= 0, Error, "plot_bars: bar ", i, " (\"",
                 b.label, "\") has value ", b.value, " and error ", b.error, "; need finite values and error >= 0");
    lo = std::min(lo, b.value - b.error);
    hi = std::max(hi, b.value + b.error);
  }
  const double headroom = style.value_labels ? 0.08 * (hi - lo) : 0.0;  // room for the value labels
  Axis y = make_axis(options.y_min.value_or(lo - (lo < 0 ? headroom : 0)),
                     options.y_max.value_or(hi + (hi > 0 ? headroom : 0)), 7, true, false);
  if (options.y_min) y.lo = *options.y_min;
  if (options.y_max) y.hi = *options.y_max;
  std::erase_if(y.ticks, [&](double t) { return t < y.lo - 1e-9 || t > y.hi + 1e-9; });

  // Wrap the labels to their slot (at a smaller font if a word is too wide),
  // then size the bottom margin to the lines they take.
  const int n = static_cast<int>(bars.size());
  const cv::Rect first_guess = plot_area(options, y, 1);
  const int slot_guess = first_guess.width / n;
  double label_scale = kTickScale;
  auto widest_word = [&](double scale) {
    int w = 0;
    for (const Bar& b : bars)
      for (const auto& word : wrap(b.label, 0, scale)) w = std::max(w, text_size(word, scale).width);
    return w;
  };
  while (label_scale > 0.3 && widest_word(label_scale) > slot_guess - 4) label_scale -= 0.05;
  // Too many bars for every label: label every k-th one.
  int every = 1;
  while (every < n && widest_word(label_scale) + 6 > slot_guess * every) ++every;
  std::vector<std::vector<std::string>> labels;
  size_t lines = 1;
  for (const Bar& b : bars) {
    labels.push_back(wrap(b.label, slot_guess * every - 6, label_scale));
    lines = std::max(lines, labels.back().size());
  }
  const cv::Rect area = plot_area(options, y, static_cast<int>(lines));
  const double slot = static_cast<double>(area.width) / n;

  cv::Mat img(options.height, options.width, CV_8UC3, kWhite);
  draw_y_axis(img, area, y);
  draw_box(img, area);
  draw_titles(img, options, area);
  const double bottom = area.y + area.height - 1, top = area.y;
  const double zero = y.map(std::clamp(0.0, y.lo, y.hi), bottom, top);
  cv::Mat inside = img(area);
  const int line_h = text_size("0", label_scale).height + 6;
  for (int i = 0; i < n; ++i) {
    const Bar& b = bars[static_cast<size_t>(i)];
    const double cx = area.x + (i + 0.5) * slot;
    const double half = std::max(0.5, 0.35 * slot);
    const double v = y.map(b.value, bottom, top);
    cv::rectangle(inside, fixed(cx - half - area.x, std::min(v, zero) - area.y),
                  fixed(cx + half - area.x, std::max(v, zero) - area.y), b.colour.value_or(plot_palette(0)), cv::FILLED,
                  cv::LINE_AA, kShift);
    if (b.error > 0) {
      const double e_lo = y.map(b.value - b.error, bottom, top), e_hi = y.map(b.value + b.error, bottom, top);
      // Axis-aligned, so drawn crisp (no anti-aliasing) on whole pixels.
      const int cap = static_cast<int>(std::clamp(half / 2, 2.0, 8.0));
      const int ex = static_cast<int>(std::lround(cx)), lo_px = static_cast<int>(std::lround(e_lo)),
                hi_px = static_cast<int>(std::lround(e_hi));
      const cv::Scalar ink(30, 30, 30);
      cv::line(img, {ex, lo_px}, {ex, hi_px}, ink, 1, cv::LINE_8);
      for (int e : {lo_px, hi_px}) cv::line(img, {ex - cap, e}, {ex + cap, e}, ink, 1, cv::LINE_8);
    }
    if (style.value_labels) {
      const std::string s = format_number(b.value, style.value_decimals);
      if (text_size(s, kTickScale).width <= slot - 2) {
        const double end = b.value >= 0 ? std::min(v, y.map(b.value + b.error, bottom, top))
                                         : std::max(v, y.map(b.value - b.error, bottom, top));
        const int py = static_cast<int>(std::lround(end)) + (b.value >= 0 ? -5 : 7);
        text(img, s, {static_cast<int>(std::lround(cx)), py}, kTickScale, 0.5, b.value >= 0 ? 1.0 : 0.0);
      }
    }
    if (i % every == 0)
      for (size_t l = 0; l < labels[static_cast<size_t>(i)].size(); ++l)
        text(img, labels[static_cast<size_t>(i)][l],
             {static_cast<int>(std::lround(cx)), area.y + area.height + 8 + static_cast<int>(l) * line_h}, label_scale,
             0.5, 0.0);
  }
  if (y.lo < 0 && y.hi > 0) {
    const int pz = static_cast<int>(std::lround(zero));
    cv::line(img, {area.x, pz}, {area.x + area.width - 1, pz}, kAxis, 1);
  }
  return img;
}

inline void plot_bars(const std::string& path, const std::vector<Bar>& bars, const PlotOptions& options = {},
                      const BarOptions& style = {}) {
  write_image_atomically(path, detail::plot::render_for(path, [&] { return render_bars(bars, options, style); }));
}

}  // namespace stpain
