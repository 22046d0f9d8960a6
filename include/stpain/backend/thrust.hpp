#pragma once
// The thrust backends: policies (thrust/policy.hpp) and the kernels every
// layer calls, as thrust code (thrust/*.hpp).
//
// Include this before any layer header: a few layers call their kernel
// qualified (backend::swap_middle_axes, backend::graph_aggregate, ...,
// backend::patch_copy<T, false>, backend::temporal_im2col<T, true>), which
// sees only overloads declared before the layer. Everything else is found by
// argument-dependent lookup.
#include "stpain/backend/thrust/policy.hpp"
#include "stpain/backend/thrust/graph_attention.hpp"  // before any layer header: see above
#include "stpain/backend/thrust/im2col.hpp"  // before any layer header: see there
#include "stpain/backend/thrust/shape.hpp"
#include "stpain/backend/thrust/elementwise.hpp"
#include "stpain/backend/thrust/norm.hpp"
#include "stpain/backend/thrust/conv.hpp"
#include "stpain/backend/thrust/conv2d.hpp"
#include "stpain/backend/thrust/rnn.hpp"
#include "stpain/backend/thrust/temporal_conv.hpp"
#include "stpain/backend/thrust/attention.hpp"
#include "stpain/backend/thrust/batch_norm.hpp"
#include "stpain/backend/thrust/loss.hpp"
#include "stpain/backend/transfer.hpp"
