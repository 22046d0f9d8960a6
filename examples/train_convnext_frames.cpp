// Trains a ConvNeXt from scratch to tell pain frames from no-pain frames of a
// PEMF-layout set: a backbone for extract_features when no pre-trained
// weights are at hand (the demo trains one on a separate set of generated
// subjects, so the evaluation subjects are never seen by the backbone).
//   bazel run --config=opt //examples:train_convnext_frames -- --pemf DIR --out backbone.safetensors
// The checkpoint is in timm naming with a 2-class head; extract_features
// reads it with --weights (add --no-head for features only).
#include <cstdio>
#include <optional>

#include "examples/cli.hpp"
#include "examples/device.hpp"
#include "stpain/core/progress.hpp"
#include "stpain/data/face_crop.hpp"
#include "stpain/data/feature_extraction.hpp"
#include "stpain/data/pemf.hpp"
#include "stpain/models/from_card.hpp"
#include "stpain/train/splits.hpp"
#include "stpain/train/trainer.hpp"

using namespace stpain;

int main(int argc, char** argv) {
  std::string pemf, out, arch = "atto", folders = "all", device_name = "cpu";
  int64_t size = 96, every = 4, epochs = 8, batch = 32, seed = 11, threads = 2;
  double lr = 2e-3, drop_path = 0.05;
  bool face_crop = false;
  examples::Cli cli("train_convnext_frames", "trains a ConvNeXt on single frames (pain vs no pain) as a feature backbone");
  cli.path_option("--pemf", pemf, "PEMF-layout root to train on (required)")
      .path_option("--out", out, "checkpoint to write (.safetensors, timm naming; required)")
      .option("--arch", arch, "atto..xlarge")
      .option("--size", size, "input resolution")
      .option("--every", every, "use every N-th frame of each clip")
      .option("--folders", folders, "PEMF frame folders: all, colour or bw")
      .flag("--face-crop", face_crop, "cut each clip to its face (dlib, one box per clip) before resizing")
      .option("--epochs", epochs, "epochs")
      .option("--batch", batch, "frames per batch")
      .option("--lr", lr, "initial learning rate (AdamW-free Adam, decayed 0.96 per 1000 steps)")
      .option("--drop-path", drop_path, "stochastic depth rate")
      .option("--seed", seed, "seed")
      .option("--threads", threads, "CPU threads")
      .option("--device", device_name, "cpu, or cuda (a build with --config=cuda and a GPU)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    STPAIN_CHECK(!pemf.empty() && !out.empty(), Error, "--pemf and --out are required");
    set_num_threads(static_cast<int>(threads));
    const examples::Device device = examples::parse_device(device_name);
    examples::require_device(device);
    PemfOptions po;
    if (folders == "colour") po.frame_folders = FrameFolders::colour_only;
    else if (folders == "bw") po.frame_folders = FrameFolders::bw_only;
    const PemfIndex index = index_pemf(pemf, po);
    std::printf("%s: %s\n", pemf.c_str(), index.summary().c_str());
    FramePreprocess pre;
    pre.size = static_cast<int>(size);
    std::optional<LandmarkDetector> detector;
    if (face_crop) detector.emplace();

    // Frames and their clip's label; clips are split by subject into train / validation.
    std::vector<int64_t> clip_labels, clip_subjects;
    for (const auto& c : index.clips) {
      clip_labels.push_back(c.label);
      clip_subjects.push_back(c.subject_index);
    }
    const int64_t folds = std::min<int64_t>(5, static_cast<int64_t>(index.subjects.size()));  // ~20% for validation
    const Fold split = make_folds(Protocol::subject, clip_labels, clip_subjects, {.folds = folds, .seed = static_cast<uint64_t>(seed)})[0];
    auto frames_of = [&](const std::vector<int64_t>& clips, const char* what) {
      const int64_t per_clip = (index.clips[0].frames.size() + every - 1) / every;
      LabelledSet s{Tensor<float>::empty({static_cast<int64_t>(clips.size()) * per_clip, 3, size, size}), {}};
      Progress progress(std::string("loading ") + what + " clips", static_cast<int64_t>(clips.size()), stdout);
      int64_t row = 0;
      for (int64_t c : clips) {
        const PemfClip& clip = index.clips[static_cast<size_t>(c)];
        // The whole clip is read so the face box is the one extract_features finds.
        std::vector<cv::Mat> images = extraction_detail::read_clip_images(clip), kept;
        if (detector) images = crop_to_face(*detector, images, clip.id);
        for (size_t f = 0; f < images.size(); f += static_cast<size_t>(every)) kept.push_back(images[f]);
        const Tensor<float> x = preprocess_frames(kept, pre);
        std::copy(x.begin(), x.end(), s.x.data() + row * 3 * size * size);
        row += x.size(0);
        for (int64_t i = 0; i < x.size(0); ++i) s.y.push_back(clip.label);
        progress.step();
      }
      progress.finish();
      s.x = s.x.slice(0, row);
      return s;
    };
    std::vector<int64_t> train_clips = split.train;
    train_clips.insert(train_clips.end(), split.test.begin(), split.test.end());  // no test part here: train on it
    const LabelledSet train = frames_of(train_clips, "training"), val = frames_of(split.validation, "validation");

    // The card rebuilds the network on the GPU with --device cuda.
    char rate[32];
    std::snprintf(rate, sizeof rate, "%g", drop_path);
    const ModelCard card = ModelCard()
                               .set("stpain.model", "convnext")
                               .set("convnext.arch", arch)
                               .set("convnext.classes", 2)
                               .set("convnext.drop_path", rate);
    manual_seed(static_cast<uint64_t>(seed));
    FitResult r;
    Progress progress("epochs", epochs, stdout);
    with_model_from_card(card, [&](auto& net) {
      FitOptions fo{.epochs = epochs, .batch = batch, .lr = lr, .keras_adam = false, .checkpoint = out,
                    .checkpoint_metadata = card.entries(),
                    .on_epoch = [&](int64_t e, const std::string& line) { progress.update(e, line); }};
      fo.checkpoint_metadata.insert({{"trained_by", "examples/train_convnext_frames"},
                                     {"image_size", std::to_string(size)},
                                     {"face_crop", face_crop ? FaceCropOptions().describe() : ""},
                                     {"pemf_root", pemf}});
      r = examples::fit_on(device, net, card, train, val, {}, fo).fit;
    });
    progress.finish();
    std::printf("%s: ConvNeXt %s, best validation frame accuracy %.3f at epoch %lld (%lld training frames)\n", out.c_str(),
                arch.c_str(), r.best_val_accuracy, static_cast<long long>(r.best_epoch), static_cast<long long>(train.size()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_convnext_frames: %s\n", e.what());
    return 1;
  }
  return 0;
}
