// The example of docs/gpu.md ("Using the CUDA backend in your own code"),
// compiled by nvcc in --config=cuda builds so the documentation stays true.
#include "stpain/backend/cuda.hpp"  // first: the backend before any layer header
#include "stpain/models/sequence_heads.hpp"
#include "stpain/train/trainer.hpp"

stpain::FitResult train_on_gpu(const stpain::LabelledSet& train, const stpain::LabelledSet& validation) {
  stpain::LstmHead<stpain::cuda> head({.input_size = 2048});  // parameters in GPU (managed) memory
  return stpain::fit(head, train, validation, {.epochs = 100, .batch = 8, .lr = 1e-3});
}
