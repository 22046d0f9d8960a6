// Frame features with a ConvNeXt backbone: pooled + LayerNorm features per
// frame (the seed's Keras pooling="avg" features) and, when the checkpoint has
// a classifier, its logits.
//   bazel run --config=opt //examples:extract_features -- --help
// Inputs: one --image, a --frames folder (all images, sorted), or a --pemf
// root (every clip of the PEMF layout; one feature tensor per clip, resumable:
// finished clips are kept in <out>.parts/ and skipped on the next run).
#include <cstdio>
#include <filesystem>

#include "examples/cli.hpp"
#include "stpain/core/progress.hpp"
#include "stpain/data/image.hpp"
#include "stpain/data/pemf.hpp"
#include "stpain/io/clip_features.hpp"
#include "stpain/models/convnext_weights.hpp"

using namespace stpain;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string arch, weights, image, frames, pemf, out, folders = "all", crop_pct;
  int64_t batch = 8, threads = 2, size = 224, clip_length = 20, seed = 0;
  bool no_head = false;
};

// The backbone (no classifier) and, when the checkpoint has one, its classifier.
struct Backbone {
  std::unique_ptr<ConvNeXt<cpu>> net;
  std::unique_ptr<Linear<cpu>> classifier;
  std::string description;

  // Features [N, dim] and logits [N, classes] (empty without a classifier) of frames [N, 3, S, S].
  std::pair<Tensor<float>, Tensor<float>> run(const Tensor<float>& frames, int64_t batch) {
    const int64_t n = frames.size(0), dim = net->config().feature_dim();
    Tensor<float> features = Tensor<float>::empty({n, dim}), logits;
    if (classifier) logits = Tensor<float>::empty({n, classifier->options().out_features});
    for (int64_t s = 0; s < n; s += batch) {
      const int64_t e = std::min(n, s + batch);
      const Tensor<float> f = net->forward_features(frames.slice(s, e));
      std::copy(f.begin(), f.end(), features.data() + s * dim);
      if (classifier) {
        const Tensor<float> l = classifier->forward(f);
        std::copy(l.begin(), l.end(), logits.data() + s * l.size(1));
      }
    }
    return {features, logits};
  }
};

Backbone make_backbone(const Options& o) {
  Backbone b;
  ConvNeXtConfig config;
  if (!o.weights.empty()) {
    const safetensors::File file(o.weights);
    config = infer_convnext_config(file);
    STPAIN_CHECK(o.arch.empty() || o.arch == config.name, Error, "--arch ", o.arch, " but ", o.weights, " holds a ConvNeXt ",
                 config.name, " (depths and dims read from the file)");
    const int64_t classes = o.no_head ? 0 : config.num_classes;
    config.num_classes = 0;
    b.net = std::make_unique<ConvNeXt<cpu>>(config);
    const auto report = load_convnext_weights(*b.net, file, {.strict = true, .no_head = true});
    if (classes > 0) {
      b.classifier = std::make_unique<Linear<cpu>>(config.feature_dim(), classes);
      const ConvNeXtNaming naming = report.naming;
      load_state_dict(*b.classifier, file, {.strict = false, .rename = [naming](const std::string& n) {
                                              const std::string t = convnext_name_to_timm(n, naming);
                                              return t.rfind("head.fc.", 0) == 0 ? t.substr(8) : std::string();
                                            }});
    }
    b.description = "ConvNeXt " + config.name + " from " + o.weights + " (" + naming_name(report.naming) + " naming, " +
                    std::to_string(report.loaded.size()) + " tensors" + (b.classifier ? ", with classifier" : "") + ")";
  } else {
    config = ConvNeXtConfig::variant(o.arch.empty() ? "tiny" : o.arch, 0);
    manual_seed(static_cast<uint64_t>(o.seed));
    b.net = std::make_unique<ConvNeXt<cpu>>(config);
    std::fprintf(stderr,
                 "extract_features: WARNING: no --weights given: ConvNeXt %s with RANDOM weights (seed %lld).\n"
                 "  The features are not meaningful; see docs/convnext.md for the real ImageNet-22k weights.\n",
                 config.name.c_str(), static_cast<long long>(o.seed));
    b.description = "ConvNeXt " + config.name + " with random weights (seed " + std::to_string(o.seed) + ")";
  }
  b.net->eval();
  return b;
}

FramePreprocess preprocessing(const Options& o) {
  FramePreprocess p;
  p.size = static_cast<int>(o.size);
  if (!o.crop_pct.empty()) p.crop_pct = std::stod(o.crop_pct);
  return p;
}

std::map<std::string, std::string> provenance(const Options& o, const Backbone& b) {
  return {{"backbone", b.description},
          {"preprocess", "BGR->RGB, bilinear " + std::to_string(o.size) + "x" + std::to_string(o.size) +
                             (o.crop_pct.empty() ? "" : ", crop_pct " + o.crop_pct) + ", /255, ImageNet mean/std"},
          {"generator", "examples/extract_features"}};
}

void extract_images(const Options& o, Backbone& b) {
  std::vector<fs::path> paths;
  if (!o.image.empty()) {
    paths.push_back(o.image);
  } else {
    STPAIN_CHECK(fs::is_directory(o.frames), Error, o.frames, ": not a folder");
    for (const auto& e : fs::directory_iterator(o.frames)) {
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
      if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) paths.push_back(e.path());
    }
    std::sort(paths.begin(), paths.end());
    STPAIN_CHECK(!paths.empty(), Error, o.frames, ": no .png/.jpg/.jpeg images");
  }
  const auto [features, logits] = b.run(load_frames(paths, preprocessing(o)), o.batch);
  std::vector<safetensors::Entry> entries = {safetensors::entry("features", features)};
  if (logits.defined()) entries.push_back(safetensors::entry("logits", logits));
  auto meta = provenance(o, b);
  std::vector<std::string> names;
  for (const auto& p : paths) names.push_back(p.string());
  meta["frames"] = detail::json_strings(names);
  safetensors::save(o.out, std::move(entries), meta);
  std::printf("%s: features %s%s from %zu image%s\n", o.out.c_str(), features.shape().str().c_str(),
              logits.defined() ? (", logits " + logits.shape().str()).c_str() : "", paths.size(), paths.size() > 1 ? "s" : "");
}

// One finished clip, cached so an interrupted run resumes where it stopped.
std::string part_path(const Options& o, size_t index) {
  return o.out + ".parts/clip_" + std::to_string(index) + ".safetensors";
}

void extract_pemf(const Options& o, Backbone& b) {
  PemfOptions po;
  po.clip_length = o.clip_length;
  if (o.folders == "colour") po.frame_folders = FrameFolders::colour_only;
  else if (o.folders == "bw") po.frame_folders = FrameFolders::bw_only;
  else STPAIN_CHECK(o.folders == "all", Error, "--folders must be all, colour or bw, not \"", o.folders, "\"");
  const PemfIndex index = index_pemf(o.pemf, po);
  std::printf("%s: %s\n", o.pemf.c_str(), index.summary().c_str());
  for (const auto& s : index.skipped) std::printf("  skipped %s: %s (%s)\n", s.id.c_str(), s.reason.c_str(), s.path.c_str());
  fs::create_directories(o.out + ".parts");
  const FramePreprocess pre = preprocessing(o);
  // A cached clip is reused only if it was made the same way.
  const std::string key = b.description + " | " + provenance(o, b)["preprocess"] + " | " + std::to_string(o.clip_length);

  std::vector<size_t> done;
  std::vector<std::string> failed;
  int64_t reused = 0, frames_done = 0;
  Progress progress("clips", static_cast<int64_t>(index.clips.size()), stdout);
  for (size_t i = 0; i < index.clips.size(); ++i) {
    const PemfClip& clip = index.clips[i];
    const std::string part = part_path(o, i);
    bool cached = false;
    if (fs::exists(part)) {
      try {
        const safetensors::File f(part);
        cached = f.metadata().count("key") && f.metadata().at("key") == key && f.metadata().at("clip") == clip.id;
      } catch (const FormatError&) {
      }
    }
    if (!cached) {
      try {
        const auto [features, logits] = b.run(load_clip_frames(clip, pre), o.batch);
        std::vector<safetensors::Entry> entries = {safetensors::entry("features", features)};
        if (logits.defined()) entries.push_back(safetensors::entry("logits", logits));
        safetensors::save(part, std::move(entries), {{"key", key}, {"clip", clip.id}});
        frames_done += features.size(0);
      } catch (const FormatError& e) {  // unreadable frame: report, leave the clip out
        failed.push_back(clip.id + ": " + e.what());
        std::printf("\n  left out %s: %s\n", clip.id.c_str(), e.what());
        progress.update(static_cast<int64_t>(i + 1));
        continue;
      }
    } else {
      ++reused;
    }
    done.push_back(i);
    char extra[96];
    std::snprintf(extra, sizeof extra, "%.1f frames/s%s", static_cast<double>(frames_done) / std::max(progress.seconds(), 1e-9),
                  reused ? (", " + std::to_string(reused) + " cached").c_str() : "");
    progress.update(static_cast<int64_t>(i + 1), extra);
  }
  progress.finish();
  STPAIN_CHECK(!done.empty(), Error, "no clip could be read");

  ClipFeatures out;
  const int64_t dim = b.net->config().feature_dim(), frames = o.clip_length;
  out.features = Tensor<float>::empty({static_cast<int64_t>(done.size()), frames, dim});
  if (b.classifier) out.logits = Tensor<float>::empty({static_cast<int64_t>(done.size()), frames, b.classifier->options().out_features});
  for (size_t k = 0; k < done.size(); ++k) {
    const PemfClip& clip = index.clips[done[k]];
    const safetensors::File f(part_path(o, done[k]));
    const Tensor<float> feat = f.load("features");
    std::copy(feat.begin(), feat.end(), out.features.data() + static_cast<int64_t>(k) * frames * dim);
    if (b.classifier) {
      const Tensor<float> l = f.load("logits");
      std::copy(l.begin(), l.end(), out.logits.data() + static_cast<int64_t>(k) * l.numel());
    }
    out.labels.push_back(clip.label);
    out.subjects.push_back(clip.subject_index);
    out.clip_ids.push_back(clip.id);
    out.conditions.push_back(clip.condition_name());
  }
  out.subject_names = index.subjects;
  out.provenance = provenance(o, b);
  out.provenance["pemf_root"] = o.pemf;
  if (!failed.empty()) out.provenance["left_out"] = detail::json_strings(failed);
  save_clip_features(o.out, out);
  std::printf("%s: %zu clips x %lld frames x %lld features (%lld no pain, %lld pain)%s\n", o.out.c_str(), done.size(),
              static_cast<long long>(frames), static_cast<long long>(dim),
              static_cast<long long>(std::count(out.labels.begin(), out.labels.end(), 0)),
              static_cast<long long>(std::count(out.labels.begin(), out.labels.end(), 1)),
              failed.empty() ? "" : (", " + std::to_string(failed.size()) + " left out (listed above)").c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli("extract_features", "ConvNeXt frame features (pooled + LayerNorm) and logits to safetensors");
  cli.option("--arch", o.arch, "atto..xlarge (read from --weights when given; default tiny)")
      .path_option("--weights", o.weights, "checkpoint .safetensors (timm, official or torchvision naming)")
      .flag("--no-head", o.no_head, "skip the checkpoint's classifier (no logits)")
      .path_option("--image", o.image, "one image")
      .path_option("--frames", o.frames, "a folder of frames (all images, sorted by name)")
      .path_option("--pemf", o.pemf, "a PEMF root: every clip, one feature tensor each")
      .option("--folders", o.folders, "PEMF frame folders: all, colour or bw")
      .option("--clip-length", o.clip_length, "PEMF frames per clip (first N by name)")
      .path_option("--out", o.out, "output .safetensors")
      .option("--batch", o.batch, "frames per forward pass")
      .option("--threads", o.threads, "CPU threads")
      .option("--size", o.size, "input resolution")
      .option("--crop-pct", o.crop_pct, "timm centre crop fraction instead of the authors' resize (e.g. 0.875)")
      .option("--seed", o.seed, "seed for random weights when no --weights is given");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    const int inputs = !o.image.empty() + !o.frames.empty() + !o.pemf.empty();
    STPAIN_CHECK(inputs == 1, Error, "give exactly one of --image, --frames or --pemf");
    STPAIN_CHECK(!o.out.empty(), Error, "--out is required");
    STPAIN_CHECK(o.batch > 0 && o.threads > 0, Error, "--batch and --threads must be positive");
    set_num_threads(static_cast<int>(o.threads));
    Backbone backbone = make_backbone(o);
    std::printf("backbone: %s\n", backbone.description.c_str());
    if (o.pemf.empty())
      extract_images(o, backbone);
    else
      extract_pemf(o, backbone);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "extract_features: %s\n", e.what());
    return 1;
  }
  return 0;
}
