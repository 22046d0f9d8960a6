#pragma once
// Plain C++ entry points of the CUDA backend build (gpu/cuda_parity.cu,
// compiled by nvcc), callable from g++ code such as gpu/cuda_parity_test.cpp.
#include <string>

#include "gpu/parity_cases.hpp"

namespace stpain::cuda_backend {

// Number of visible CUDA devices; 0 with `why` set when there is none.
int device_count(std::string* why = nullptr);

// Case `id` of gpu/parity_cases.hpp with Backend = stpain::cuda, results
// copied to the host. Throws stpain::Error when no CUDA device is usable.
parity::CaseOutput run_parity_case(int id);

// Allocates a cuda tensor and returns the stpain::Error message it raised
// ("" when the allocation worked): the error a user sees without a device.
std::string allocation_error();

}  // namespace stpain::cuda_backend
