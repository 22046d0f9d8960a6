#include "stpain/data/plot.hpp"

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

// Where the figures go: Bazel's undeclared outputs (kept in
// bazel-testlogs/tests/plot_test/test.outputs for a look), else a temp dir.
fs::path output_dir() {
  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  const char* tmp = std::getenv("TEST_TMPDIR");
  const fs::path dir = outputs ? fs::path(outputs)
                               : (tmp ? fs::path(tmp) : fs::temp_directory_path()) / ("plot_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

std::vector<cv::Point> pixels_of(const cv::Mat& img, const cv::Scalar& bgr) {
  std::vector<cv::Point> out;
  const cv::Vec3b want(static_cast<uchar>(bgr[0]), static_cast<uchar>(bgr[1]), static_cast<uchar>(bgr[2]));
  for (int r = 0; r < img.rows; ++r)
    for (int c = 0; c < img.cols; ++c)
      if (img.at<cv::Vec3b>(r, c) == want) out.push_back({c, r});
  return out;
}

bool same_image(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const cv::Scalar kRed(0, 0, 255), kBlue(255, 0, 0);

// 30 epochs of accuracy: training rises 0.5 -> 0.95, validation is noisier
// and measured on two epochs of three.
std::vector<Series> accuracy_series() {
  Series train{"train accuracy", {}, {}, kRed, false}, val{"validation accuracy", {}, {}, kBlue, true};
  for (int e = 0; e < 30; ++e) {
    train.y.push_back(0.5 + 0.45 * e / 29.0);
    val.y.push_back(e % 3 == 2 ? NAN : 0.48 + 0.35 * e / 29.0 + 0.03 * std::sin(e));
  }
  return {train, val};
}

}  // namespace

TEST_CASE("plot_curves: axes, legend and the curves where the data says") {
  const auto series = accuracy_series();
  const PlotOptions options{.title = "Accuracy per epoch", .x_label = "epoch", .y_label = "accuracy",
                            .y_min = 0.4, .y_max = 1.0};
  const cv::Mat img = render_curves(series, options);
  REQUIRE(img.cols == 800);
  REQUIRE(img.rows == 500);
  REQUIRE(img.type() == CV_8UC3);
  CHECK(img.at<cv::Vec3b>(2, 2) == cv::Vec3b(255, 255, 255));  // white background

  // The training curve: pure red pixels across most of the width, rising
  // (smaller row) from left to right. (Drawn without names here: the legend
  // has red in it too.)
  auto unnamed = series;
  for (auto& s : unnamed) s.name.clear();
  const auto red = pixels_of(render_curves(unnamed, options), kRed);
  REQUIRE(red.size() > 500);
  int left = img.cols, right = 0;
  for (const auto& p : red) {
    left = std::min(left, p.x);
    right = std::max(right, p.x);
  }
  CHECK(right - left > 550);
  auto mean_row_near = [&](int x) {
    double sum = 0;
    int n = 0;
    for (const auto& p : red)
      if (std::abs(p.x - x) <= 20) sum += p.y, ++n;
    return n ? sum / n : -1.0;
  };
  // Rises by 0.45 of a 0.6 axis: three quarters of the plot height (~400 px).
  const double rise = mean_row_near(left + 25) - mean_row_near(right - 25);
  CHECK(rise > 0.5 * img.rows);
  CHECK(rise < 0.75 * img.rows);
  CHECK(pixels_of(img, kRed).size() > red.size());  // the legend's sample line
  // The dashed validation curve is there too, with gaps.
  CHECK(pixels_of(img, kBlue).size() > 200);

  const fs::path path = output_dir() / "curves.png";
  plot_curves(path.string(), series, options);
  const cv::Mat back = cv::imread(path.string(), cv::IMREAD_COLOR);
  CHECK(same_image(back, img));  // PNG is lossless

  // Loss curves with the default palette and a data-driven axis.
  Series train_loss{"train loss", {}, {}, std::nullopt, false}, val_loss{"validation loss", {}, {}, std::nullopt, true};
  for (int e = 0; e < 150; ++e) {
    train_loss.y.push_back(0.7 * std::exp(-e / 30.0) + 0.05);
    val_loss.y.push_back(0.7 * std::exp(-e / 40.0) + 0.12 + 0.02 * std::sin(e / 3.0));
  }
  const cv::Mat loss = render_curves({train_loss, val_loss}, {.title = "Loss", .x_label = "epoch", .y_label = "loss"});
  CHECK(pixels_of(loss, plot_palette(0)).size() > 300);
  CHECK(pixels_of(loss, plot_palette(1)).size() > 100);
  plot_curves((output_dir() / "loss.png").string(), {train_loss, val_loss},
              {.title = "Loss", .x_label = "epoch", .y_label = "loss"});
}

TEST_CASE("plot_confusion_matrix: cells coloured by their row share") {
  const ConfusionMatrix cm = {{40, 10}, {5, 45}};  // rows: 80% / 20%, 10% / 90%
  const cv::Mat img = render_confusion_matrix(cm, {"no pain", "pain"}, {.title = "ConvNeXtXL + LSTM, fold 0"});
  REQUIRE(img.size() == cv::Size(800, 500));
  for (double share : {0.8, 0.2, 0.1, 0.9}) {
    INFO("share " << share);
    CHECK(pixels_of(img, blues_colour(share)).size() > 10000);  // a cell's worth, less its text
  }
  // Darker for larger shares.
  CHECK(cv::sum(blues_colour(0.9))[0] < cv::sum(blues_colour(0.1))[0]);
  const fs::path path = output_dir() / "confusion.png";
  plot_confusion_matrix(path.string(), cm, {"no pain", "pain"}, {.title = "ConvNeXtXL + LSTM, fold 0"});
  CHECK(same_image(cv::imread(path.string(), cv::IMREAD_COLOR), img));

  // 3 x 3, default class names, an empty row (no samples of class 2).
  const ConfusionMatrix three = {{12, 3, 0}, {2, 20, 4}, {0, 0, 0}};
  const cv::Mat img3 = render_confusion_matrix(three, {}, {.title = "Three classes"});
  CHECK(pixels_of(img3, blues_colour(20.0 / 26)).size() > 3000);
  CHECK(pixels_of(img3, blues_colour(0.0)).size() > 3 * 3000);  // the zero cells
  plot_confusion_matrix((output_dir() / "confusion3.png").string(), three, {}, {.title = "Three classes"});

  CHECK_THROWS_WITH(plot_confusion_matrix((output_dir() / "bad.png").string(), {{1, 2}, {3}}),
                    Catch::Contains("bad.png: plot_confusion_matrix: row 1 has 1 entries, expected 2"));
  CHECK_THROWS_WITH(render_confusion_matrix(cm, {"only one"}), Catch::Contains("1 class names for 2 classes"));
}

TEST_CASE("plot_bars: one bar per value, the tallest where the data says") {
  // Attention weights over 20 frames, peaking at frame 13.
  std::vector<Bar> weights;
  double total = 0;
  for (int f = 0; f < 20; ++f) total += std::exp(-std::pow(f - 12, 2) / 50.0);
  for (int f = 0; f < 20; ++f)
    weights.push_back({std::to_string(f + 1), std::exp(-std::pow(f - 12, 2) / 50.0) / total, 0.0, std::nullopt});
  const PlotOptions options{.title = "Attention over frames", .x_label = "frame", .y_label = "weight"};
  const cv::Mat img = render_bars(weights, options, {.value_labels = false});
  REQUIRE(img.size() == cv::Size(800, 500));

  // Columns holding the bar colour form 20 runs; the run reaching highest is bar 13.
  const cv::Vec3b bar_colour(static_cast<uchar>(plot_palette(0)[0]), static_cast<uchar>(plot_palette(0)[1]),
                             static_cast<uchar>(plot_palette(0)[2]));
  std::vector<int> top_of_column(static_cast<size_t>(img.cols), -1);
  for (int c = 0; c < img.cols; ++c)
    for (int r = 0; r < img.rows && top_of_column[static_cast<size_t>(c)] < 0; ++r)
      if (img.at<cv::Vec3b>(r, c) == bar_colour) top_of_column[static_cast<size_t>(c)] = r;
  std::vector<int> run_top;
  for (int c = 0; c < img.cols; ++c) {
    const int t = top_of_column[static_cast<size_t>(c)];
    if (t < 0) continue;
    if (c == 0 || top_of_column[static_cast<size_t>(c - 1)] < 0) run_top.push_back(t);
    else run_top.back() = std::min(run_top.back(), t);
  }
  REQUIRE(run_top.size() == 20);
  CHECK(std::min_element(run_top.begin(), run_top.end()) - run_top.begin() == 12);
  plot_bars((output_dir() / "attention.png").string(), weights, options, {.value_labels = false});

  // Model accuracies with std error bars and long names that wrap.
  const std::vector<Bar> models = {{"ConvNeXtXL + LSTM", 90.45, 2.1, std::nullopt},
                                   {"ConvNeXtXL + Bi-LSTM", 90.27, 1.5, std::nullopt},
                                   {"ConvNeXtXL + LSTM with attention", 86.67, 3.0, std::nullopt},
                                   {"ConvNeXtXL + stacked LSTM", 93.51, 1.2, plot_palette(3)}};
  const PlotOptions acc{.title = "Accuracy (mean +/- std over 5 folds)", .y_label = "accuracy (%)", .y_min = 0.0,
                        .y_max = 100.0};
  const cv::Mat bars = render_bars(models, acc, {.value_decimals = 2});
  CHECK(pixels_of(bars, plot_palette(0)).size() > 3 * 10000);
  CHECK(pixels_of(bars, plot_palette(3)).size() > 10000);
  CHECK(pixels_of(bars, cv::Scalar(30, 30, 30)).size() > 20);  // error bars
  plot_bars((output_dir() / "accuracies.png").string(), models, acc, {.value_decimals = 2});

  // Negative values hang below a zero line.
  const cv::Mat signed_bars = render_bars({{"a", -1.0, 0.2, std::nullopt}, {"b", 2.0, 0.0, std::nullopt}});
  CHECK(pixels_of(signed_bars, plot_palette(0)).size() > 1000);
  plot_bars((output_dir() / "signed.png").string(), {{"a", -1.0, 0.2, std::nullopt}, {"b", 2.0, 0.0, std::nullopt}},
            {.title = "Signed values"});

  CHECK_THROWS_WITH(render_bars({{"x", NAN, 0.0, std::nullopt}}), Catch::Contains("bar 0 (\"x\") has value nan"));
  CHECK_THROWS_WITH(render_bars({}), Catch::Contains("no bars"));
}

TEST_CASE("plot errors name the output path and leave an existing file alone") {
  const auto series = accuracy_series();
  const std::string missing_dir = (output_dir() / "no" / "such" / "dir" / "curves.png").string();
  CHECK_THROWS_WITH(plot_curves(missing_dir, series), Catch::Contains(missing_dir + ": cannot create temporary file"));
  const std::string odd = (output_dir() / "curves.xyz").string();
  CHECK_THROWS_WITH(plot_curves(odd, series), Catch::Contains(odd + ": cannot encode a .xyz image"));
  CHECK_THROWS_WITH(plot_curves((output_dir() / "noext").string(), series), Catch::Contains("noext: no file extension"));

  const fs::path kept = output_dir() / "kept.png";
  plot_curves(kept.string(), series);
  const std::string before = read_text(kept);
  CHECK_THROWS_WITH(plot_curves(kept.string(), {}), Catch::Contains(kept.string() + ": plot_curves: no series"));
  CHECK_THROWS_WITH(plot_curves(kept.string(), {Series{"all gaps", {NAN, NAN}, {}, std::nullopt, false}}),
                    Catch::Contains("no finite values"));
  CHECK_THROWS_WITH(plot_curves(kept.string(), {Series{"short x", {1, 2, 3}, {1, 2}, std::nullopt, false}}),
                    Catch::Contains("series \"short x\" has 2 x values for 3 y values"));
  CHECK_THROWS_WITH(plot_curves(kept.string(), series, {.width = 50}), Catch::Contains("50x500 is too small"));
  CHECK(read_text(kept) == before);
  for (const auto& e : fs::directory_iterator(output_dir()))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);  // no temporaries left behind
}
