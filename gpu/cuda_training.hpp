#pragma once
// Plain C++ entry points to training and feature extraction on the GPU
// (gpu/cuda_training.cu, compiled by nvcc), for the programs built by g++:
// they keep their data on the host and exchange host tensors with these.
// Linked into the programs only with --config=cuda (examples/device.hpp).
#include <functional>
#include <string>

#include "stpain/models/convnext.hpp"
#include "stpain/train/fit_card_model.hpp"

namespace stpain::cuda_backend {

// Throws stpain::Error saying why when no CUDA device can be used.
void require_device();

// "NVIDIA H100 80GB HBM3, compute capability 9.0, 79.1 GiB" of device 0.
std::string device_name();

// fit_card_model with B = cuda: the card's model on the GPU, from `weights`
// (updated to the best epoch's); batches are copied from the host.
CardFit fit(const ModelCard& card, NamedTensors& weights, const LabelledSet& train, const LabelledSet& validation,
            const Tensor<float>& test_x, const FitOptions& options);

// A ConvNeXt (no classifier) on the GPU with the given weights, in eval
// mode: frames [N, 3, S, S] on the host -> pooled features [N, dim] on the host.
std::function<Tensor<float>(const Tensor<float>&)> convnext_features(const ConvNeXtConfig& config,
                                                                     const NamedTensors& weights);

}  // namespace stpain::cuda_backend
