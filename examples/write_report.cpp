// Writes the demo's report: the paper's Tables 1-3 beside ours (and the
// fusion beyond the paper), with figures: confusion matrices, training curves,
// a landmark overlay and the attention head's weights over the frames.
//   bazel run //examples:write_report -- --out out/demo
// Reads what tools/demo.sh's steps left in that folder (results.json of each
// experiment, features, checkpoints, overlays); missing parts are skipped.
#include <cstdio>
#include <filesystem>

#include "examples/cli.hpp"
#include "stpain/data/plot.hpp"
#include "stpain/io/clip_features.hpp"
#include "stpain/models/model_card.hpp"
#include "stpain/models/sequence_heads.hpp"
#include "examples/experiment.hpp"
#include "stpain/train/report.hpp"

using namespace stpain;
namespace fs = std::filesystem;

namespace {

std::string image(const std::string& caption, const std::string& relative) {
  return "![" + caption + "](" + relative + ")\n\n";
}

// The fold-0 confusion matrix and accuracy curve of a model, when written.
std::string model_figures(const fs::path& dir, const std::string& experiment, const std::string& stem) {
  std::string md;
  const std::string confusion = experiment + "/confusion/" + stem + "_fold0.png";
  const std::string curve = experiment + "/curves/" + stem + "_fold0_accuracy.png";
  if (fs::exists(dir / confusion)) md += image(stem + ", fold 0, test confusion matrix", confusion);
  if (fs::exists(dir / curve)) md += image(stem + ", fold 0, accuracy per epoch", curve);
  return md;
}

// Mean attention each frame receives in the attention head, on the first pain clip.
std::string attention_figure(const fs::path& dir) {
  const fs::path ckpt = dir / "convnext_lstm/checkpoints";
  if (!fs::exists(dir / "features.safetensors") || !fs::exists(ckpt)) return "";
  fs::path head_file;
  for (const auto& e : fs::directory_iterator(ckpt))
    if (e.path().filename().string().find("attention_fold0") != std::string::npos) head_file = e.path();
  if (head_file.empty()) return "";
  const ClipFeatures f = load_clip_features((dir / "features.safetensors").string());
  int64_t clip = 0;
  while (clip < f.clips() && f.labels[static_cast<size_t>(clip)] != 1) ++clip;
  AttentionLstmHead<cpu> head({.input_size = f.dim()});
  load_state_dict(head, head_file.string());
  head.eval();
  head.forward(f.features.slice(clip, clip + 1));
  const Tensor<float>& w = head.attention_weights();  // [1, T, T]
  std::vector<Bar> bars;
  for (int64_t t = 0; t < w.size(2); ++t) {
    double received = 0;
    for (int64_t q = 0; q < w.size(1); ++q) received += w(0, q, t);
    bars.push_back({std::to_string(t), received / static_cast<double>(w.size(1))});
  }
  plot_bars((dir / "attention.png").string(), bars,
            {.title = "attention over frames: " + f.clip_ids[static_cast<size_t>(clip)], .x_label = "frame",
             .y_label = "mean attention received"});
  return image("attention head: mean attention each frame receives (a pain clip)", "attention.png");
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = "out/demo";
  examples::Cli cli("write_report", "the demo's Markdown report: the paper's tables beside ours, with figures");
  cli.path_option("--out", out, "the demo's output folder (the report is written there as report.md)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    const fs::path dir(out);
    std::string md = "# stpain: the paper's experiments on a PEMF-like dataset\n\n";
    bool synthetic = false;
    std::vector<std::pair<std::string, Results>> experiments;
    for (const char* e : {"convnext_lstm", "stgcn", "fusion"})
      if (fs::exists(dir / e / "results.json")) {
        experiments.emplace_back(e, read_results_json((dir / e / "results.json").string()));
        synthetic |= experiments.back().second.synthetic;
      }
    STPAIN_CHECK(!experiments.empty(), Error, out, ": no results.json of any experiment (run tools/demo.sh first)");
    if (synthetic)
      md += "> **SYNTHETIC DATA.** Every number below comes from clips generated from one real face photo "
            "(examples/make_synthetic_pemf), not from PEMF. They show that the pipelines run end to end and how "
            "well each learns the planted pain expressions (chance is the share of pain clips, 75%, or a ROC-AUC of "
            "50%); they say nothing about real pain and are not comparable with the paper's "
            "results, which are listed beside them for reference only.\n\n";
    md += "Protocols: ours are subject-independent (no subject in two parts of a fold, model selection on "
          "validation only); the paper's are clip-level splits (one subject's clips can be in train and test).\n\n";
    const char* titles[][2] = {{"convnext_lstm", "Tables 1 and 2: ConvNeXt frame features, per-frame baseline and LSTM heads"},
                               {"stgcn", "Table 3: landmarks, STGCN and STGCN-LSTM"},
                               {"fusion", "Beyond the paper: both pipelines fused"}};
    for (const auto& [name, results] : experiments) {
      for (const auto& t : titles)
        if (name == t[0]) md += "## " + std::string(t[1]) + "\n\n";
      if (name == "convnext_lstm" && fs::exists(dir / "features.safetensors")) {  // which backbone saw which frames
        auto p = load_clip_features((dir / "features.safetensors").string()).provenance;
        md += "Frame features: " + p["backbone"] + "; " + p["preprocess"] + ".\n\n";
      }
      md += to_markdown(results, {.roc_auc = true, .per_fold = false, .comparison = true, .heading_level = 3});
      md += "\n";
      for (const auto& m : results.models) md += model_figures(dir, name, examples::file_stem(m.model));
    }
    md += "## Landmarks and attention\n\n";
    if (fs::exists(dir / "overlay")) {
      std::vector<fs::path> overlays;
      for (const auto& e : fs::directory_iterator(dir / "overlay"))
        if (e.path().extension() == ".png") overlays.push_back(e.path());
      std::sort(overlays.begin(), overlays.end());
      if (!overlays.empty())
        md += image("dlib's 68 landmarks and the authors' mesh on a generated pain clip",
                    "overlay/" + overlays[overlays.size() / 2].filename().string());
    }
    md += attention_figure(dir);
    write_file_atomically((dir / "report.md").string(), md);
    std::printf("%s/report.md written (%zu experiments)\n", out.c_str(), experiments.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_report: %s\n", e.what());
    return 1;
  }
  return 0;
}
