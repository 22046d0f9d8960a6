#pragma once
// --device cpu|cuda for the programs. With --config=cuda the programs link
// gpu/cuda_training (STPAIN_WITH_CUDA) and train / extract features on the
// GPU through it; their data stay on the host. Without it, or without a
// visible GPU, --device cuda stops the program with a message saying so.
#include <cstdio>
#include <functional>
#include <string>

#include "stpain/models/convnext.hpp"
#include "stpain/train/fit_card_model.hpp"
#if defined(STPAIN_WITH_CUDA)
#include "gpu/cuda_training.hpp"
#endif

namespace stpain::examples {

enum class Device { cpu, cuda };

inline Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  throw Error("--device must be cpu or cuda, not \"" + name + "\"");
}

// Checks the device can be used and says which it is, before any work.
inline void require_device(Device d) {
  if (d == Device::cpu) return;
#if defined(STPAIN_WITH_CUDA)
  std::printf("device: %s\n", cuda_backend::device_name().c_str());  // throws when there is none
#else
  throw Error("--device cuda: this program was built without the CUDA backend; build it with "
              "`bazel build --config=cuda` (nvcc from /usr/local/cuda) and run that build");
#endif
}

// fit() of `model` on the device, then its class probabilities for test_x
// (when given). On cuda the model described by `card` is rebuilt on the GPU
// from model's weights and trained there; model gets the best weights back.
template <class Model>
CardFit fit_on(Device d, Model& model, [[maybe_unused]] const ModelCard& card, const LabelledSet& train, const LabelledSet& validation,
               const Tensor<float>& test_x, const FitOptions& options) {
  if (d == Device::cpu) return fit_and_predict(model, train, validation, test_x, options);
  CardFit out;
  require_device(d);
#if defined(STPAIN_WITH_CUDA)
  NamedTensors weights = parameter_values(model);
  out = cuda_backend::fit(card, weights, train, validation, test_x, options);
  set_parameter_values(model, weights);
#endif
  return out;
}

// The features of `net` (eval mode) computed on the device: an empty function
// on cpu (the caller runs net itself), a copy of net on the GPU with cuda.
inline std::function<Tensor<float>(const Tensor<float>&)> convnext_features_on(Device d, [[maybe_unused]] ConvNeXt<cpu>& net) {
  if (d == Device::cpu) return {};
  require_device(d);
#if defined(STPAIN_WITH_CUDA)
  return cuda_backend::convnext_features(net.config(), parameter_values(net));
#else
  return {};
#endif
}

}  // namespace stpain::examples
