// Frame features with a ConvNeXt backbone: pooled + LayerNorm features per
// frame (the seed's Keras pooling="avg" features) and, when the checkpoint has
// a classifier, its logits.
//   bazel run --config=opt //examples:extract_features -- --help
// Inputs: one --image, a --frames folder (all images, sorted), or a --pemf
// root (every clip of the PEMF layout; one feature tensor per clip, resumable:
// finished clips are kept in <out>.parts/ and skipped on the next run).
// --augment N adds, per PEMF clip, N feature tensors of augmented copies (the
// authors' training augmentation, one draw per clip and copy) as
// "augmented_features" [clips, N, frames, dim]. The work itself is in
// stpain/data/feature_extraction.hpp.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "examples/cli.hpp"
#include "examples/device.hpp"
#include "stpain/data/face_crop.hpp"
#include "stpain/data/feature_extraction.hpp"

using namespace stpain;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string arch, weights, image, frames, pemf, out, folders = "all", crop_pct, device = "cpu";
  int64_t batch = 8, threads = 2, size = 224, clip_length = 20, seed = 0, augment = 0, augment_seed = 0;
  bool no_head = false, face_crop = false;
};

FramePreprocess preprocessing(const Options& o) {
  FramePreprocess p;
  p.size = static_cast<int>(o.size);
  if (!o.crop_pct.empty()) p.crop_pct = std::stod(o.crop_pct);
  return p;
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
  const FramePreprocess pre = preprocessing(o);
  std::vector<cv::Mat> images;
  for (const auto& p : paths) images.push_back(read_image(p));
  FaceCropOptions crop;
  if (o.face_crop) {
    LandmarkDetector detector;
    images = crop_to_face(detector, images, o.image.empty() ? o.frames : o.image, crop);
  }
  const FrameFeatures f = b.extract(preprocess_frames(images, pre), o.batch);
  std::vector<safetensors::Entry> entries = {safetensors::entry("features", f.features)};
  if (f.logits.defined()) entries.push_back(safetensors::entry("logits", f.logits));
  std::map<std::string, std::string> meta = {{"backbone", b.description},
                                             {"preprocess", describe_preprocess(pre)},
                                             {"face_crop", o.face_crop ? crop.describe() : ""},
                                             {"generator", "examples/extract_features"}};
  std::vector<std::string> names;
  for (const auto& p : paths) names.push_back(p.string());
  meta["frames"] = detail::json_strings(names);
  safetensors::save(o.out, std::move(entries), meta);
  std::printf("%s: features %s%s from %zu image%s\n", o.out.c_str(), f.features.shape().str().c_str(),
              f.logits.defined() ? (", logits " + f.logits.shape().str()).c_str() : "", paths.size(),
              paths.size() > 1 ? "s" : "");
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

  ClipExtractionOptions eo;
  eo.preprocess = preprocessing(o);
  eo.batch = o.batch;
  eo.cache_dir = o.out + ".parts";
  eo.augmented_copies = o.augment;
  eo.augment_seed = static_cast<uint64_t>(o.augment_seed);
  std::optional<LandmarkDetector> detector;
  const FaceCropOptions crop;
  if (o.face_crop) {
    detector.emplace();
    eo.crop = [&](const std::vector<cv::Mat>& images, const PemfClip& clip) {
      return crop_to_face(*detector, images, clip.id, crop);
    };
    eo.crop_description = crop.describe();
  }
  ClipExtraction r = extract_clip_features(index, b, eo);
  ClipFeatures& out = r.features;
  out.provenance["generator"] = "examples/extract_features";
  out.provenance["pemf_root"] = o.pemf;
  save_clip_features(o.out, out);
  std::printf("%s: %lld clips x %lld frames x %lld features (%lld no pain, %lld pain)%s%s\n", o.out.c_str(),
              static_cast<long long>(out.clips()), static_cast<long long>(out.frames()),
              static_cast<long long>(out.dim()), static_cast<long long>(std::count(out.labels.begin(), out.labels.end(), 0)),
              static_cast<long long>(std::count(out.labels.begin(), out.labels.end(), 1)),
              o.augment ? (", " + std::to_string(o.augment) + " augmented copies each").c_str() : "",
              r.left_out.empty() ? "" : (", " + std::to_string(r.left_out.size()) + " left out (listed above)").c_str());
}

// A backbone trained by train_convnext_frames records whether it saw face
// crops; features taken the other way would silently not match its training.
void warn_on_crop_mismatch(const Options& o) {
  if (o.weights.empty()) return;
  const auto& meta = safetensors::File(o.weights).metadata();
  const auto it = meta.find("face_crop");
  if (it == meta.end()) return;  // not one of ours: nothing recorded
  const bool trained_on_crops = !it->second.empty();
  if (trained_on_crops != o.face_crop)
    std::fprintf(stderr, "extract_features: warning: %s was trained %s face crops but --face-crop is %s\n",
                 o.weights.c_str(), trained_on_crops ? "on" : "without", o.face_crop ? "given" : "not given");
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
      .option("--augment", o.augment, "PEMF: N augmented copies per clip (authors' training augmentation)")
      .option("--augment-seed", o.augment_seed, "base seed of the augmented copies' draws")
      .path_option("--out", o.out, "output .safetensors")
      .option("--batch", o.batch, "frames per forward pass")
      .option("--threads", o.threads, "CPU threads")
      .option("--size", o.size, "input resolution")
      .option("--crop-pct", o.crop_pct, "timm centre crop fraction instead of the authors' resize (e.g. 0.875)")
      .flag("--face-crop", o.face_crop, "cut each clip to its face (dlib, one box per clip) before resizing")
      .option("--seed", o.seed, "seed for random weights when no --weights is given")
      .option("--device", o.device, "cpu, or cuda (a build with --config=cuda and a GPU)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    const int inputs = !o.image.empty() + !o.frames.empty() + !o.pemf.empty();
    STPAIN_CHECK(inputs == 1, Error, "give exactly one of --image, --frames or --pemf");
    STPAIN_CHECK(!o.out.empty(), Error, "--out is required");
    STPAIN_CHECK(o.batch > 0 && o.threads > 0, Error, "--batch and --threads must be positive");
    STPAIN_CHECK(o.augment >= 0, Error, "--augment must be 0 or more");
    STPAIN_CHECK(o.augment == 0 || !o.pemf.empty(), Error, "--augment needs --pemf (augmentation is per clip)");
    set_num_threads(static_cast<int>(o.threads));
    const examples::Device device = examples::parse_device(o.device);
    examples::require_device(device);
    Backbone backbone = make_backbone({.arch = o.arch, .weights = o.weights, .no_head = o.no_head,
                                       .seed = static_cast<uint64_t>(o.seed)});
    std::printf("backbone: %s\n", backbone.description.c_str());
    backbone.features_on_device = examples::convnext_features_on(device, *backbone.net);
    warn_on_crop_mismatch(o);
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
