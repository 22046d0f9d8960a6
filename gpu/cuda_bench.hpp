#pragma once
// Timings of the CUDA backend for gpu/gpu_bench (gpu/cuda_bench.cu, nvcc):
// the best of `repeats` calls after one warm-up call, in seconds; every call
// returns with the device idle (thrust::cuda::par and cuda::gemm synchronise).
#include <cstdint>
#include <string>

namespace stpain::cuda_backend {

// ConvNeXt `arch` (atto..xlarge, 1000 classes, random weights) forward in eval
// mode on [batch, 3, size, size].
double convnext_forward_seconds(const std::string& arch, int64_t batch, int64_t size, int repeats);

// One training step (forward, cross-entropy, backward, Adam) of a sequence
// head ("lstm", "bilstm", "attention", "stacked") on [batch, frames, features].
double sequence_head_step_seconds(const std::string& head, int64_t batch, int64_t frames, int64_t features, int repeats);

// The same for a landmark network of bench/stgcn_models.hpp ("lstm-recurrent", ...)
// on [batch, frames, 68, 2].
double stgcn_step_seconds(const std::string& model, int64_t batch, int64_t frames, int repeats);

}  // namespace stpain::cuda_backend
