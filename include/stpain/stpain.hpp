#pragma once
// Everything of stpain that runs on the CPU backend, in one include.
// (Finer-grained headers keep compile times down: include what you use.)

#include "stpain/core/error.hpp"
#include "stpain/core/float16.hpp"
#include "stpain/core/parallel.hpp"
#include "stpain/core/progress.hpp"
#include "stpain/core/random.hpp"
#include "stpain/core/shape.hpp"
#include "stpain/core/tensor.hpp"

#include "stpain/layers/activations.hpp"
#include "stpain/layers/batch_norm.hpp"
#include "stpain/layers/conv2d.hpp"
#include "stpain/layers/depthwise_conv2d_nhwc.hpp"
#include "stpain/layers/dropout.hpp"
#include "stpain/layers/layer_norm.hpp"
#include "stpain/layers/layer_scale.hpp"
#include "stpain/layers/linear.hpp"
#include "stpain/layers/module.hpp"
#include "stpain/layers/patch_conv2d.hpp"
#include "stpain/layers/pooling.hpp"
#include "stpain/layers/reshape.hpp"

#include "stpain/compose/concat.hpp"
#include "stpain/compose/named.hpp"
#include "stpain/compose/repeat.hpp"
#include "stpain/compose/residual.hpp"
#include "stpain/compose/sequential.hpp"

#include "stpain/train/clip.hpp"
#include "stpain/train/finite.hpp"
#include "stpain/train/loss.hpp"
#include "stpain/train/metrics.hpp"
#include "stpain/train/optim.hpp"
#include "stpain/train/schedule.hpp"

#include "stpain/io/atomic_file.hpp"
#include "stpain/io/json.hpp"
#include "stpain/io/safetensors.hpp"
#include "stpain/io/state_dict.hpp"
