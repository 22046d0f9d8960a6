#pragma once
// ConvNeXt frame features for a dataset, as examples/extract_features makes
// them: the backbone (a checkpoint, or random weights with a loud warning),
// the features of a batch of frames, and every PEMF clip's features with a
// per-clip cache so an interrupted run resumes where it stopped.
//
// Augmented copies (ClipExtractionOptions::augmented_copies = N): for every
// clip, N more feature tensors from N independent draws of the authors'
// augmentation (frame_augment.hpp), one draw per clip and copy, applied to
// all its frames. Each draw is seeded from (augment_seed, clip id, copy), so
// a rerun gives the same features and a clip's copies do not depend on which
// other clips are in the index. They land in ClipFeatures::augmented_features
// [clips, N, frames, dim] (features only: no logits). Sequence heads can then
// train on augmented clips without running the backbone every epoch.
//
// The cache holds one file per clip (clip_<i>.safetensors) and one per
// augmented copy (clip_<i>_augmented_<k>.safetensors), each tagged with how
// it was made; a file made another way, for another clip or left half-written
// is recomputed. Raising N reuses the copies already made.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stpain/core/progress.hpp"
#include "stpain/core/random.hpp"
#include "stpain/data/frame_augment.hpp"
#include "stpain/data/image.hpp"
#include "stpain/data/pemf.hpp"
#include "stpain/io/clip_features.hpp"
#include "stpain/models/convnext_weights.hpp"

namespace stpain {

struct BackboneOptions {
  std::string arch;      // atto..xlarge; read from `weights` when given (must then agree); default tiny
  std::string weights;   // checkpoint .safetensors (timm, official or torchvision naming); empty: random
  bool no_head = false;  // leave the checkpoint's classifier out (no logits)
  uint64_t seed = 0;     // random weights' seed, without a checkpoint
};

// Features of N frames and, with a classifier, its logits.
struct FrameFeatures {
  Tensor<float> features;  // [N, dim]: global average pool + LayerNorm
  Tensor<float> logits;    // [N, classes] or empty
};

// A ConvNeXt without its classifier, plus the checkpoint's classifier when it
// has one (kept apart so features and logits come from one forward pass).
struct Backbone {
  std::unique_ptr<ConvNeXt<cpu>> net;
  std::unique_ptr<Linear<cpu>> classifier;
  std::string description;  // "ConvNeXt atto with random weights (seed 0)"; also the cache's tag
  BackboneOptions options;  // how it was made (rebuilt from these by prediction)
  // When set, computes net's pooled features in its place: a copy of net on
  // another device (extract_features --device cuda).
  std::function<Tensor<float>(const Tensor<float>&)> features_on_device;

  int64_t feature_dim() const { return net->config().feature_dim(); }
  bool has_classifier() const { return classifier != nullptr; }
  int64_t classes() const { return classifier ? classifier->options().out_features : 0; }

  // Frames [N, 3, S, S] (preprocessed), `batch` frames per forward pass.
  FrameFeatures extract(const Tensor<float>& frames, int64_t batch = 8) {
    STPAIN_CHECK(batch > 0, Error, "Backbone::extract: batch must be positive, got ", batch);
    const int64_t n = frames.size(0), dim = feature_dim();
    FrameFeatures out{Tensor<float>::empty({n, dim}), {}};
    if (classifier) out.logits = Tensor<float>::empty({n, classes()});
    for (int64_t s = 0; s < n; s += batch) {
      const int64_t e = std::min(n, s + batch);
      const Tensor<float> f = features_on_device ? features_on_device(frames.slice(s, e)) : net->forward_features(frames.slice(s, e));
      std::copy(f.begin(), f.end(), out.features.data() + s * dim);
      if (classifier) {
        const Tensor<float> l = classifier->forward(f);
        std::copy(l.begin(), l.end(), out.logits.data() + s * l.size(1));
      }
    }
    return out;
  }
};

// The backbone, in eval mode. Without a checkpoint the weights are random
// and a warning says so on `warnings` (nullptr: silent): such features are
// for tests and plumbing, not for results.
inline Backbone make_backbone(const BackboneOptions& o, std::FILE* warnings = stderr) {
  Backbone b;
  b.options = o;
  ConvNeXtConfig config;
  if (!o.weights.empty()) {
    const safetensors::File file(o.weights);
    config = infer_convnext_config(file);
    STPAIN_CHECK(o.arch.empty() || o.arch == config.name, Error, "arch ", o.arch, " asked for, but ", o.weights,
                 " holds a ConvNeXt ", config.name, " (depths and dims read from the file)");
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
    b.description = "ConvNeXt " + config.name + " from " + o.weights + " (" + naming_name(report.naming) +
                    " naming, " + std::to_string(report.loaded.size()) + " tensors" +
                    (b.classifier ? ", with classifier" : "") + ")";
  } else {
    config = ConvNeXtConfig::variant(o.arch.empty() ? "tiny" : o.arch, 0);
    manual_seed(o.seed);  // the layers draw their initial weights from the default generator
    b.net = std::make_unique<ConvNeXt<cpu>>(config);
    if (warnings)
      std::fprintf(warnings,
                   "WARNING: no checkpoint given: ConvNeXt %s with RANDOM weights (seed %llu).\n"
                   "  Random convolutions still respond to a face's movement (the synthetic demo uses\n"
                   "  them), but they are no substitute for real weights: see docs/convnext.md.\n",
                   config.name.c_str(), static_cast<unsigned long long>(o.seed));
    b.description = "ConvNeXt " + config.name + " with random weights (seed " + std::to_string(o.seed) + ")";
  }
  b.net->eval();
  return b;
}

// "BGR->RGB, bilinear 224x224, /255, ImageNet mean/std", with the options
// that differ from the authors' named: for provenance and cache tags.
inline std::string describe_preprocess(const FramePreprocess& p) {
  std::string s = detail::concat("BGR->RGB, bilinear ", p.size, "x", p.size);
  if (p.crop_pct) s += detail::concat(", crop_pct ", *p.crop_pct);
  if (p.grayscale) s += ", grayscale";
  s += ", /255, ";
  const FramePreprocess imagenet;
  if (p.mean == imagenet.mean && p.std == imagenet.std)
    s += "ImageNet mean/std";
  else
    s += detail::concat("mean (", p.mean[0], ", ", p.mean[1], ", ", p.mean[2], ") std (", p.std[0], ", ", p.std[1],
                        ", ", p.std[2], ")");
  return s;
}

// The seed of a clip's augmented copy: splitmix64 over the base seed, an
// FNV-1a hash of the clip id and the copy number.
inline uint64_t clip_augment_seed(uint64_t seed, const std::string& clip_id, int64_t copy) {
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : clip_id) h = (h ^ c) * 0x100000001b3ull;
  return mix(mix(mix(seed) ^ h) ^ static_cast<uint64_t>(copy));
}

struct ClipExtractionOptions {
  FramePreprocess preprocess;
  int64_t batch = 8;               // frames per forward pass
  std::string cache_dir;           // per-clip results (resume); empty: no cache
  int64_t augmented_copies = 0;    // N augmented feature tensors per clip
  FrameAugmentOptions augment;     // what an augmented copy draws from
  uint64_t augment_seed = 0;       // base seed of the copies' draws
  std::FILE* log = stdout;         // progress line and left-out clips; nullptr: quiet
  // Cuts a clip's frames before preprocessing (to the face: face_crop.hpp);
  // unset: whole frames. An Error it throws leaves the clip out, reported.
  std::function<std::vector<cv::Mat>(const std::vector<cv::Mat>&, const PemfClip&)> crop;
  std::string crop_description;    // how `crop` cuts: part of the cache key and the provenance
};

struct ClipExtraction {
  ClipFeatures features;              // the clips that could be read, in index order
  std::vector<std::string> left_out;  // "<clip id>: <why>" for clips with an unreadable frame or no face to crop to
  int64_t cached_clips = 0;           // clips entirely reused from the cache
  int64_t computed_frames = 0;        // frames run through the backbone (augmented ones included)
};

namespace extraction_detail {

// A clip's frames as 8-bit BGR, read in parallel; an unreadable one throws
// FormatError as load_clip_frames words it (path first, then the clip).
inline std::vector<cv::Mat> read_clip_images(const PemfClip& clip) {
  STPAIN_CHECK(!clip.frames.empty(), Error, "PEMF clip ", clip.id, ": no frames");
  const int64_t n = static_cast<int64_t>(clip.frames.size());
  std::vector<cv::Mat> images(clip.frames.size());
  detail::for_each_frame(n, [&](int64_t i) {
    try {
      images[static_cast<size_t>(i)] = read_image(clip.frames[static_cast<size_t>(i)]);
    } catch (const FormatError& e) {
      throw FormatError(detail::concat(e.what(), " (frame ", i + 1, " of ", n, ", PEMF clip ", clip.id, ")"));
    }
  });
  return images;
}

// A cached tensor, when `path` holds one made with `tag` for `clip` and of
// the expected shape; an empty tensor otherwise (missing, stale or damaged).
inline Tensor<float> load_cached(const std::string& path, const std::string& tag, const std::string& clip,
                                 const std::string& name, const Shape& shape) {
  std::error_code ec;
  if (path.empty() || !std::filesystem::exists(path, ec)) return {};
  try {
    const safetensors::File f(path);
    const auto& meta = f.metadata();
    const auto key = meta.find("key"), id = meta.find("clip");
    if (key == meta.end() || key->second != tag || id == meta.end() || id->second != clip || !f.contains(name))
      return {};
    Tensor<float> t = f.load(name);
    return t.shape() == shape ? t : Tensor<float>{};
  } catch (const FormatError&) {
    return {};
  }
}

}  // namespace extraction_detail

// Features of every clip of `index` (see the top of this file). Clips with an
// unreadable frame are reported on options.log, listed in left_out and in the
// provenance, and left out of the result; throws Error when no clip is left.
// The result's provenance names the backbone, the preprocessing and, with
// augmented copies, the augmentation; callers add their own entries.
inline ClipExtraction extract_clip_features(const PemfIndex& index, Backbone& backbone,
                                            const ClipExtractionOptions& options = {}) {
  namespace fs = std::filesystem;
  options.preprocess.validate();
  options.augment.validate();
  STPAIN_CHECK(options.batch > 0, Error, "extract_clip_features: batch must be positive, got ", options.batch);
  STPAIN_CHECK(options.augmented_copies >= 0, Error, "extract_clip_features: augmented_copies must be >= 0, got ",
               options.augmented_copies);
  STPAIN_CHECK(!index.clips.empty(), Error, "extract_clip_features: the index has no clips");
  if (!options.cache_dir.empty()) fs::create_directories(options.cache_dir);
  const int64_t copies = options.augmented_copies, dim = backbone.feature_dim();
  const std::string preprocess =
      describe_preprocess(options.preprocess) + (options.crop ? ", " + options.crop_description : std::string());
  const std::string augmentation = detail::concat(options.augment.describe(), ", seed ", options.augment_seed);
  auto cache_path = [&](size_t clip, int64_t copy) {  // copy -1: the plain features
    if (options.cache_dir.empty()) return std::string();
    const std::string name = "clip_" + std::to_string(clip) +
                             (copy < 0 ? std::string() : "_augmented_" + std::to_string(copy)) + ".safetensors";
    return (fs::path(options.cache_dir) / name).string();
  };

  struct Done {
    size_t clip;
    FrameFeatures plain;
    std::vector<Tensor<float>> augmented;
  };
  std::vector<Done> done;
  ClipExtraction result;
  Progress progress("clips", static_cast<int64_t>(index.clips.size()), options.log ? options.log : stdout);
  for (size_t i = 0; i < index.clips.size(); ++i) {
    const PemfClip& clip = index.clips[i];
    const int64_t frames = static_cast<int64_t>(clip.frames.size());
    // A cached clip is reused only if it was made the same way.
    const std::string tag = backbone.description + " | " + preprocess + " | " + std::to_string(frames);
    auto copy_tag = [&](int64_t k) { return tag + " | augmented " + augmentation + " | copy " + std::to_string(k); };

    Done d{i, {}, std::vector<Tensor<float>>(static_cast<size_t>(copies))};
    d.plain.features = extraction_detail::load_cached(cache_path(i, -1), tag, clip.id, "features", {frames, dim});
    if (d.plain.features.defined() && backbone.has_classifier()) {
      d.plain.logits = extraction_detail::load_cached(cache_path(i, -1), tag, clip.id, "logits",
                                                      {frames, backbone.classes()});
      if (!d.plain.logits.defined()) d.plain.features = {};
    }
    bool all_cached = d.plain.features.defined();
    for (int64_t k = 0; k < copies; ++k) {
      d.augmented[static_cast<size_t>(k)] =
          extraction_detail::load_cached(cache_path(i, k), copy_tag(k), clip.id, "features", {frames, dim});
      all_cached = all_cached && d.augmented[static_cast<size_t>(k)].defined();
    }

    if (!all_cached) {
      std::vector<cv::Mat> images;
      try {
        images = extraction_detail::read_clip_images(clip);
        if (options.crop) images = options.crop(images, clip);
      } catch (const Error& e) {  // unreadable frame, no face to crop to: report, leave the clip out
        result.left_out.push_back(clip.id + ": " + e.what());
        if (options.log) {
          std::fprintf(options.log, "\n  left out %s: %s\n", clip.id.c_str(), e.what());
          progress.update(static_cast<int64_t>(i + 1));
        }
        continue;
      }
      if (!d.plain.features.defined()) {
        d.plain = backbone.extract(preprocess_frames(images, options.preprocess), options.batch);
        result.computed_frames += frames;
        if (const std::string path = cache_path(i, -1); !path.empty()) {
          std::vector<safetensors::Entry> entries = {safetensors::entry("features", d.plain.features)};
          if (d.plain.logits.defined()) entries.push_back(safetensors::entry("logits", d.plain.logits));
          safetensors::save(path, std::move(entries), {{"key", tag}, {"clip", clip.id}});
        }
      }
      for (int64_t k = 0; k < copies; ++k) {
        Tensor<float>& aug = d.augmented[static_cast<size_t>(k)];
        if (aug.defined()) continue;
        Generator g(clip_augment_seed(options.augment_seed, clip.id, k));
        const std::vector<cv::Mat> augmented = augment_clip(images, draw_frame_augment(g, options.augment));
        aug = backbone.extract(preprocess_frames(augmented, options.preprocess), options.batch).features;
        result.computed_frames += frames;
        if (const std::string path = cache_path(i, k); !path.empty())
          safetensors::save(path, {safetensors::entry("features", aug)}, {{"key", copy_tag(k)}, {"clip", clip.id}});
      }
    } else {
      ++result.cached_clips;
    }
    done.push_back(std::move(d));
    if (options.log) {
      char extra[96];
      std::snprintf(extra, sizeof extra, "%.1f frames/s%s",
                    static_cast<double>(result.computed_frames) / std::max(progress.seconds(), 1e-9),
                    result.cached_clips ? (", " + std::to_string(result.cached_clips) + " cached").c_str() : "");
      progress.update(static_cast<int64_t>(i + 1), extra);
    }
  }
  if (options.log) progress.finish();
  STPAIN_CHECK(!done.empty(), Error, "no clip could be read");

  // All clips must have the same length to stack; the PEMF index guarantees it.
  const int64_t n = static_cast<int64_t>(done.size()), frames = done[0].plain.features.size(0);
  ClipFeatures& out = result.features;
  out.features = Tensor<float>::empty({n, frames, dim});
  if (backbone.has_classifier()) out.logits = Tensor<float>::empty({n, frames, backbone.classes()});
  if (copies > 0) out.augmented_features = Tensor<float>::empty({n, copies, frames, dim});
  for (int64_t k = 0; k < n; ++k) {
    const Done& d = done[static_cast<size_t>(k)];
    const PemfClip& clip = index.clips[d.clip];
    STPAIN_CHECK(d.plain.features.size(0) == frames, ShapeError, "PEMF clip ", clip.id, " has ",
                 d.plain.features.size(0), " frames, the first clip ", frames);
    std::copy(d.plain.features.begin(), d.plain.features.end(), out.features.data() + k * frames * dim);
    if (out.logits.defined())
      std::copy(d.plain.logits.begin(), d.plain.logits.end(), out.logits.data() + k * d.plain.logits.numel());
    for (int64_t c = 0; c < copies; ++c) {
      const Tensor<float>& a = d.augmented[static_cast<size_t>(c)];
      std::copy(a.begin(), a.end(), out.augmented_features.data() + (k * copies + c) * frames * dim);
    }
    out.labels.push_back(clip.label);
    out.subjects.push_back(clip.subject_index);
    out.clip_ids.push_back(clip.id);
    out.conditions.push_back(clip.condition_name());
  }
  out.subject_names = index.subjects;
  // What a prediction needs to rebuild the backbone and the preprocessing.
  out.provenance = {{"backbone", backbone.description},
                    {"backbone_arch", backbone.net->config().name},
                    {"backbone_weights", backbone.options.weights},
                    {"backbone_seed", std::to_string(backbone.options.seed)},
                    {"preprocess", preprocess},
                    {"image_size", std::to_string(options.preprocess.size)},
                    {"crop_pct", options.preprocess.crop_pct ? std::to_string(*options.preprocess.crop_pct) : ""},
                    {"face_crop", options.crop ? options.crop_description : ""}};
  if (copies > 0) out.provenance["augmentation"] = detail::concat(copies, " copies per clip: ", augmentation);
  if (!result.left_out.empty()) out.provenance["left_out"] = detail::json_strings(result.left_out);
  return result;
}

}  // namespace stpain
