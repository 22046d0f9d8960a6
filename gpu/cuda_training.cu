// The CUDA instantiations behind gpu/cuda_training.hpp. nvcc only.
#include "stpain/backend/cuda.hpp"  // first: the backend before any layer header

#include <memory>

#include "gpu/cuda_training.hpp"

namespace stpain::cuda_backend {

void require_device() { backend::cuda_detail::require_device(); }

std::string device_name() {
  require_device();
  cudaDeviceProp p{};
  backend::cuda_detail::check(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
  char gib[32];
  std::snprintf(gib, sizeof gib, "%.1f GiB", static_cast<double>(p.totalGlobalMem) / (1 << 30));
  return std::string(p.name) + ", compute capability " + std::to_string(p.major) + "." + std::to_string(p.minor) + ", " + gib;
}

CardFit fit(const ModelCard& card, NamedTensors& weights, const LabelledSet& train, const LabelledSet& validation,
            const Tensor<float>& test_x, const FitOptions& options) {
  require_device();
  return fit_card_model<stpain::cuda>(card, weights, train, validation, test_x, options);
}

std::function<Tensor<float>(const Tensor<float>&)> convnext_features(const ConvNeXtConfig& config,
                                                                     const NamedTensors& weights) {
  require_device();
  auto net = std::make_shared<ConvNeXt<stpain::cuda>>(config);
  set_parameter_values(*net, weights);
  net->eval();
  return [net](const Tensor<float>& frames) { return to_host(net->forward_features(to<stpain::cuda>(frames))); };
}

}  // namespace stpain::cuda_backend
