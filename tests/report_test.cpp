#include "stpain/train/report.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace stpain;
namespace fs = std::filesystem;

namespace {

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

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

const std::vector<int64_t> kTruth = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};

// A fold whose predictions get `errors` clips wrong: the first errors / 2
// pain clips and the rest from the end of the no-pain clips.
FoldResult fold_with_errors(int64_t fold, int errors) {
  std::vector<int64_t> pred = kTruth;
  for (int e = 0; e < errors; ++e) {
    const size_t i = e % 2 == 0 ? 5 + static_cast<size_t>(e / 2) : 4 - static_cast<size_t>(e / 2);
    pred[i] = 1 - pred[i];
  }
  std::vector<double> scores;
  for (size_t i = 0; i < pred.size(); ++i) scores.push_back(pred[i] == 1 ? 0.6 + 0.01 * i : 0.4 - 0.01 * i);
  return evaluate_fold(fold, kTruth, pred, scores);
}

// Two models, 3 folds each; model A's accuracies are 0.8, 0.9 and 1.0.
Results sample_results() {
  Results r;
  r.title = "Table 2";
  r.protocol = "subject-independent 3-fold";
  r.dataset = "generated clips";
  r.synthetic = true;
  r.metadata["seed"] = 42;
  r.add("ConvNeXtXL + LSTM", fold_with_errors(0, 2));
  r.add("ConvNeXtXL + LSTM", fold_with_errors(1, 1));
  r.add("ConvNeXtXL + LSTM", fold_with_errors(2, 0));
  r.model("ConvNeXtXL + LSTM").folds[0].extra["best_epoch"] = 17;
  for (int k = 0; k < 3; ++k) r.add("Linear probe, mean-pooled", fold_with_errors(k, 3));
  return r;
}

}  // namespace

TEST_CASE("evaluate_fold fills the report and ROC-AUC") {
  const FoldResult f = fold_with_errors(4, 2);
  CHECK(f.fold == 4);
  CHECK(f.report.accuracy == Approx(0.8));
  CHECK(f.report.class_names == std::vector<std::string>{"no pain", "pain"});
  CHECK(f.report.confusion == ConfusionMatrix{{4, 1}, {1, 4}});
  REQUIRE(f.report.roc_auc);
  CHECK(*f.report.roc_auc == Approx(0.8));

  // float scores, and a fold with one class has no ROC-AUC (not an error).
  const std::vector<float> fs = {0.9f, 0.8f, 0.1f};
  const FoldResult g = evaluate_fold(0, std::vector<int64_t>{1, 1, 1}, std::vector<int64_t>{1, 1, 0}, fs);
  CHECK_FALSE(g.report.roc_auc);
  CHECK_THROWS_WITH(evaluate_fold(0, std::vector<int64_t>{1, 1}, std::vector<int64_t>{1, 1}, std::vector<double>{0.5}),
                    Catch::Contains("y_true has 2 entries but scores has 1"));
}

TEST_CASE("summarize: mean and sample std over folds") {
  const Results r = sample_results();
  const ResultsSummary s = summarize(r.models[0]);
  CHECK(s.folds == 3);
  CHECK(s.accuracy.mean == Approx(0.9));
  CHECK(s.accuracy.std == Approx(0.1));
  // Weighted precision per fold: 0.8, (5/6 + 1) / 2, 1.
  const double p1 = (5.0 / 6.0 + 1.0) / 2.0;
  CHECK(s.precision.mean == Approx((0.8 + p1 + 1.0) / 3));
  CHECK(s.recall.mean == Approx(0.9));  // weighted recall is accuracy
  REQUIRE(s.roc_auc);
  // ROC-AUC per fold: 0.8 (the wrong clips score below every right one), 0.8, 1.
  CHECK(s.roc_auc->mean == Approx((0.8 + 0.8 + 1.0) / 3));

  const ResultsSummary same = summarize(r.models[1]);
  CHECK(same.accuracy.mean == Approx(0.7));
  CHECK(same.accuracy.std == Approx(0.0).margin(1e-12));

  ModelResults one{"one fold", "", {fold_with_errors(0, 1)}};
  CHECK(std::isnan(summarize(one).accuracy.std));
  CHECK_THROWS_WITH(summarize(ModelResults{"empty", "", {}}), Catch::Contains("model \"empty\" has no folds"));
}

TEST_CASE("the Table 2 text: Model | Accuracy | Precision | Recall | F1 in %, mean ± std") {
  const Results r = sample_results();
  const std::string t = format_table(r);
  INFO(t);
  const auto lines = split(t, '\n');
  REQUIRE(lines.size() >= 7);
  CHECK(lines[0] ==
        "Table 2 | protocol: subject-independent 3-fold | data: generated clips [SYNTHETIC DATA]");
  CHECK(lines[1].rfind("SYNTHETIC DATA: ", 0) == 0);
  CHECK(lines[2] == "Model                     |  Accuracy (%) | Precision (%) |    Recall (%) |        F1 (%)");
  CHECK(lines[3] == "--------------------------+---------------+---------------+---------------+--------------");
  CHECK(lines[4].rfind("ConvNeXtXL + LSTM         | 90.00 ± 10.00 |", 0) == 0);
  CHECK(lines[5].rfind("Linear probe, mean-pooled |  70.00 ± 0.00 |", 0) == 0);
  CHECK(lines[6] ==
        "(mean ± sample std (ddof 1) over 3 folds; precision, recall and F1 are support-weighted averages)");

  const std::string with_auc = format_table(r, {.roc_auc = true});
  CHECK_THAT(with_auc, Catch::Contains("ROC-AUC (%)") && Catch::Contains("90.00 ± 10.00"));

  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  print_table(r, {}, f);
  std::rewind(f);
  char buf[4096] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  CHECK(std::string(buf, n) == t);

  Results real = r;
  real.synthetic = false;
  CHECK_THAT(format_table(real), !Catch::Contains("SYNTHETIC"));
}

TEST_CASE("comparison with the paper's numbers") {
  Results r = sample_results();
  const std::string c = format_comparison(r);
  INFO(c);
  CHECK_THAT(c, Catch::Contains("vs the paper (PEMF, clip-level 80/10/10 split, mean of 5 folds)"));
  CHECK_THAT(c, Catch::Contains("SYNTHETIC DATA"));
  // ours 90.00 vs the paper's 90.45 accuracy and 91.02 precision for ConvNeXtXL + LSTM.
  CHECK_THAT(c, Catch::Contains("ConvNeXtXL + LSTM         | Accuracy  | 90.00 ± 10.00 |     90.45 |      -0.45\n"));
  CHECK_THAT(c, Catch::Contains("| Precision | 90.56 ± 10.05 |     91.02 |      -0.46\n"));
  // A model the paper does not have.
  CHECK_THAT(c, Catch::Contains("Linear probe, mean-pooled | Accuracy  |  70.00 ± 0.00 |       n/a |        n/a\n"));

  // reference renames a row to the paper's model; Table 1 has accuracy only.
  r.model("Linear probe, mean-pooled").reference = "ConvNeXtXL";
  const std::string c1 = format_comparison(r);
  CHECK_THAT(c1, Catch::Contains("Linear probe, mean-pooled | Accuracy  |  70.00 ± 0.00 |     89.01 |     -19.01\n"));
  CHECK_THAT(c1, Catch::Contains("| F1        |"));

  REQUIRE(find_paper_result("ConvNeXtXL + stacked LSTM"));
  CHECK(find_paper_result("ConvNeXtXL + stacked LSTM")->f1 == Approx(93.61));
  CHECK(find_paper_result("STGCN + LSTM")->table == 3);
  CHECK(find_paper_result("nope") == nullptr);
}

TEST_CASE("Markdown rendering") {
  Results r = sample_results();
  r.add("a|b", fold_with_errors(0, 1));
  const std::string md = to_markdown(r);
  INFO(md);
  CHECK(md.rfind("### Table 2 | protocol: subject-independent 3-fold", 0) == 0);
  CHECK_THAT(md, Catch::Contains("> **SYNTHETIC DATA"));
  CHECK_THAT(md, Catch::Contains("| Model | Accuracy (%) | Precision (%) | Recall (%) | F1 (%) |\n|---|---:|---:|---:|---:|\n"
                                 "| ConvNeXtXL + LSTM | 90.00 ± 10.00 |"));
  CHECK_THAT(md, Catch::Contains("| a\\|b | 90.00 |"));  // pipes escaped, one fold: no std
  CHECK_THAT(md, Catch::Contains("#### Per fold"));
  CHECK_THAT(md, Catch::Contains("| ConvNeXtXL + LSTM | 1 | 10 | 90.00 | 91.67 | 90.00 | 89.90 | 80.00 |"));
  CHECK_THAT(md, Catch::Contains("#### Compared with the paper"));
  CHECK_THAT(md, Catch::Contains("| ConvNeXtXL + LSTM | Accuracy | 90.00 ± 10.00 | 90.45 | -0.45 |"));
  const std::string bare = to_markdown(r, {.per_fold = false, .comparison = false});
  CHECK_THAT(bare, !Catch::Contains("Per fold") && !Catch::Contains("Compared with the paper"));
}

TEST_CASE("JSON: every fold and number, read back") {
  TempDir dir("report_json");
  const Results r = sample_results();
  const std::string path = (dir.path / "results.json").string();
  write_results_json(r, path);

  const json::Value v = json::parse(read_text(path));
  CHECK(v.at("synthetic").as_bool());
  CHECK(v.at("metadata").at("seed").as_number() == 42);
  const json::Value& m = v.at("models").as_array()[0];
  CHECK(m.at("model").as_string() == "ConvNeXtXL + LSTM");
  CHECK(m.at("summary").at("accuracy").at("mean").as_number() == Approx(0.9));
  CHECK(m.at("summary").at("accuracy").at("std").as_number() == Approx(0.1));
  CHECK(m.at("summary").at("roc_auc").at("mean").as_number() == Approx(2.6 / 3));
  const json::Value& f0 = m.at("folds").as_array()[0];
  CHECK(f0.at("extra").at("best_epoch").as_number() == 17);
  const json::Array& cm = f0.at("report").at("confusion_matrix").as_array();
  CHECK(cm[0].as_array()[0].as_number() == 4);
  CHECK(cm[0].as_array()[1].as_number() == 1);
  CHECK(f0.at("report").at("weighted avg").at("f1-score").as_number() == Approx(0.8));

  const Results back = read_results_json(path);
  REQUIRE(back.models.size() == 2);
  CHECK(back.title == r.title);
  CHECK(back.synthetic);
  for (size_t i = 0; i < 2; ++i)
    for (size_t k = 0; k < 3; ++k) {
      const ClassificationReport &a = r.models[i].folds[k].report, &b = back.models[i].folds[k].report;
      CHECK(a.confusion == b.confusion);
      CHECK(a.accuracy == b.accuracy);  // exact: same arithmetic on the same counts
      CHECK(a.weighted_avg.f1 == b.weighted_avg.f1);
      CHECK(a.roc_auc == b.roc_auc);
    }
  CHECK(format_table(back) == format_table(r));

  std::ofstream(dir.path / "bad.json") << "{\"title\": 1}";
  CHECK_THROWS_WITH(read_results_json((dir.path / "bad.json").string()),
                    Catch::Contains("bad.json: not a results file"));
  CHECK_THROWS_WITH(read_results_json((dir.path / "missing.json").string()),
                    Catch::Contains("missing.json: cannot open"));
}

TEST_CASE("CSV: one row per model per fold, then mean and std") {
  TempDir dir("report_csv");
  const Results r = sample_results();
  const std::string path = (dir.path / "results.csv").string();
  write_results_csv(r, path);
  const auto lines = split(read_text(path), '\n');
  REQUIRE(lines.size() == 1 + 2 * (3 + 2) + 1);  // header, rows, trailing newline
  CHECK(lines[0] ==
        "model,fold,test_clips,accuracy,precision,recall,f1,roc_auc,macro_precision,macro_recall,macro_f1,data");
  const auto row1 = split(lines[2], ',');
  REQUIRE(row1.size() == 12);
  CHECK(row1[0] == "ConvNeXtXL + LSTM");
  CHECK(row1[1] == "1");
  CHECK(row1[2] == "10");
  CHECK(std::stod(row1[3]) == r.models[0].folds[1].report.accuracy);  // full precision
  CHECK(std::stod(row1[4]) == r.models[0].folds[1].report.weighted_avg.precision);
  CHECK(std::stod(row1[7]) == Approx(0.8));  // ROC-AUC
  CHECK(row1[11] == "synthetic");
  const auto mean = split(lines[4], ','), sd = split(lines[5], ',');
  CHECK(mean[1] == "mean");
  CHECK(std::stod(mean[3]) == Approx(0.9));
  CHECK(sd[1] == "std");
  CHECK(std::stod(sd[3]) == Approx(0.1));
  // A name with a comma is quoted.
  CHECK(lines[6].rfind("\"Linear probe, mean-pooled\",0,10,0.69999999999999996,", 0) == 0);
}

TEST_CASE("atomic writes: an error leaves the previous file as it was") {
  TempDir dir("report_atomic");
  const std::string path = (dir.path / "results.json").string();
  write_results_json(sample_results(), path);
  const std::string before = read_text(path);

  Results broken = sample_results();
  broken.models.push_back({"no folds yet", "", {}});
  CHECK_THROWS_WITH(write_results_json(broken, path), Catch::Contains("model \"no folds yet\" has no folds"));
  CHECK_THROWS_WITH(write_results_csv(broken, path + ".csv"), Catch::Contains("has no folds"));
  CHECK(read_text(path) == before);

  // The rename itself fails (the target is a non-empty directory): the
  // directory stays and no temporary file is left behind.
  const fs::path blocked = dir.path / "blocked.json";
  fs::create_directories(blocked / "inside");
  CHECK_THROWS_WITH(write_results_json(sample_results(), blocked.string()),
                    Catch::Contains(blocked.string() + ": rename"));
  CHECK(fs::is_directory(blocked / "inside"));
  CHECK_THROWS_WITH(write_results_csv(sample_results(), (dir.path / "no" / "such" / "dir.csv").string()),
                    Catch::Contains("dir.csv: cannot create temporary file"));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
  CHECK(files == 1);  // results.json only
  CHECK(read_text(path) == before);
}

TEST_CASE("validate_results names what is wrong") {
  Results r = sample_results();
  r.models.push_back(r.models[0]);
  CHECK_THROWS_WITH(validate_results(r), Catch::Contains("model \"ConvNeXtXL + LSTM\" appears twice"));
  Results f = sample_results();
  f.models[0].folds[1].fold = 0;
  CHECK_THROWS_WITH(validate_results(f), Catch::Contains("has fold 0 twice"));
  Results c = sample_results();
  c.models[1].folds[2].report.class_names.push_back("extra");
  CHECK_THROWS_WITH(validate_results(c), Catch::Contains("fold 2: 3 class names but a 2-row confusion matrix"));
  CHECK_THROWS_WITH(validate_results(Results{}), Catch::Contains("no models"));
}
