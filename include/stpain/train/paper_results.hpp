#pragma once
// The paper's published numbers (Tables 1-3, in %), kept as data so reports
// can put our results beside them. The paper gives means only (no std), on
// PEMF with its clip-level 80/10/10 protocol averaged over 5 folds; its
// precision / recall / F1 are weighted averages (recall equals accuracy).
#include <array>
#include <optional>
#include <span>
#include <string_view>

namespace stpain {

struct PaperResult {
  int table;               // 1: per-frame CNNs, 2: ConvNeXtXL + LSTM heads, 3: landmarks
  std::string_view model;  // as the paper names it; reports match on this name
  double accuracy;         // %
  std::optional<double> precision, recall, f1;  // %, weighted; Table 1 gives accuracy only
};

inline constexpr std::string_view kPaperDataset = "PEMF, clip-level 80/10/10 split, mean of 5 folds";

inline constexpr std::array<PaperResult, 12> kPaperResults = {{
    {1, "MobileNetV1", 66.11, std::nullopt, std::nullopt, std::nullopt},
    {1, "InceptionV3", 68.9, std::nullopt, std::nullopt, std::nullopt},
    {1, "ResNet101", 78.92, std::nullopt, std::nullopt, std::nullopt},
    {1, "Xception", 85.59, std::nullopt, std::nullopt, std::nullopt},
    {1, "VGG16", 87.39, std::nullopt, std::nullopt, std::nullopt},
    {1, "ConvNeXtXL", 89.01, std::nullopt, std::nullopt, std::nullopt},
    {2, "ConvNeXtXL + LSTM", 90.45, 91.02, 90.45, 90.54},
    {2, "ConvNeXtXL + Bi-LSTM", 90.27, 90.21, 90.27, 90.13},
    {2, "ConvNeXtXL + LSTM with attention", 86.67, 87.23, 86.67, 86.70},
    {2, "ConvNeXtXL + stacked LSTM", 93.51, 93.97, 93.51, 93.61},
    {3, "STGCN", 78.93, 78.00, 78.80, 78.40},
    {3, "STGCN + LSTM", 82.14, 81.60, 82.00, 81.80},
}};

// The paper's row for a model name, or nullptr.
inline const PaperResult* find_paper_result(std::string_view model,
                                            std::span<const PaperResult> table = kPaperResults) {
  for (const PaperResult& r : table)
    if (r.model == model) return &r;
  return nullptr;
}

}  // namespace stpain
