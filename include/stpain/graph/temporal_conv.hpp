#pragma once
// TemporalConv: a convolution over time only, on channels-last landmark
// sequences [N, T, V, C]: y[n, t, v] = b + sum_j W_j x[n, t*stride + j - pad, v],
// the (k, 1) convolution of ST-GCN and of the paper's block. Padding "same"
// by default (as Keras and torch: total k - 1, the smaller half first).
// Parameters keep torch's Conv2d layout over (N, C, T, V): weight [out, in, k, 1].
//
// Computed per sample, a few frames at a time, so every intermediate stays in
// L2 and the samples split between the threads (one parallel region per
// call; the GEMMs inside run on their thread). Forward has two forms, the
// same sums:
//   input side  (in <= out): the frames' im2col rows [(t, v), (j, c)] times
//               W [out, (j, c)]: one GEMM with K = k * in;
//   output side (in > out, or out < 32; stride 1): every tap's product at
//               once, P [(t', v), (j, o)] = x [(t', v), c] W [(j, o), c], then
//               y[t] = b + sum_j P[t + j - pad][j]: one GEMM with N = k * out
//               and no im2col of the wide input.
// Backward (stride 1, at least 16 inputs) gathers dP[t'][j] = dy[t' - j + pad]
// and computes dx = dP W directly, and the weight gradient one tap at a time
// over whole sequences; strided or very narrow convolutions go through im2col
// rows both ways.
#include <algorithm>
#include <vector>

#include "stpain/backend/cpu_gemm.hpp"
#include "stpain/layers/module.hpp"

namespace stpain {

namespace backend {

// Sizes of one TemporalConv call: n sequences of t frames of v nodes, in -> out
// channels, kernel k, stride, padding before, to output frames.
struct TemporalConvShape {
  int64_t n = 0, t = 0, v = 0, in = 0, out = 0, k = 0, stride = 1, pad = 0, to = 0;

  // The output-side forward needs stride 1; it pays when the output is the narrow side.
  bool output_side() const { return stride == 1 && (out < in || out < 32); }
  // Backward by taps needs stride 1; with a handful of inputs the im2col
  // columns (k * in) are the narrow side instead.
  bool taps_backward() const { return stride == 1 && in >= 16; }
};

namespace temporal_detail {

// Frames per block: the block's widest intermediate (rows * width values)
// stays near 96K values, so it and the GEMM's operands fit in L2.
inline int64_t frames_per_block(int64_t nodes, int64_t width, int64_t frames) {
  constexpr int64_t budget = int64_t{96} << 10;
  return std::clamp<int64_t>(budget / std::max<int64_t>(1, nodes * width), 1, std::max<int64_t>(frames, 1));
}

// Threads that split the sequences: one part per thread, at most one per
// sequence (a single sequence runs alone and its GEMMs use the threads).
inline int64_t part_count(int64_t n) { return std::max<int64_t>(1, std::min<int64_t>(num_threads(), n)); }

// The weight [out, in, k] rearranged: dst[a, b, c] = w[o, i, j] for the
// permutation given by the index function (out, in, tap) -> offset in dst.
// (Scratch and weight copies are tensors: large blocks are recycled between
// calls instead of costing page faults.)
template <class T, class Index>
Tensor<T, cpu> rearranged_weight(const TemporalConvShape& s, const T* w, Index index) {
  Tensor<T, cpu> dst = Tensor<T, cpu>::empty({s.out * s.in * s.k});
  for (int64_t o = 0; o < s.out; ++o)
    for (int64_t c = 0; c < s.in; ++c)
      for (int64_t j = 0; j < s.k; ++j) dst.data()[index(o, c, j)] = w[(o * s.in + c) * s.k + j];
  return dst;
}

template <class T>
Tensor<T, cpu> scratch(int64_t count) {
  return Tensor<T, cpu>::empty({count});
}

// The im2col rows of output frames [o0, o1) of one sequence x [t, v, in]:
// cols[((o - o0) * v + node) * k * in + j * in + c] = x[o * stride + j - pad, node, c]
// (0 outside the sequence), or with Scatter the reverse: x[...] += cols[...].
template <class T, bool Scatter>
void im2col_frames(std::conditional_t<Scatter, T*, const T*> x, std::conditional_t<Scatter, const T*, T*> cols,
                   const TemporalConvShape& s, int64_t o0, int64_t o1) {
  const int64_t width = s.k * s.in;
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t j = 0; j < s.k; ++j) {
      const int64_t ti = o * s.stride + j - s.pad;
      auto* col = cols + (o - o0) * s.v * width + j * s.in;
      if (ti < 0 || ti >= s.t) {
        if constexpr (!Scatter)
          for (int64_t node = 0; node < s.v; ++node) std::fill_n(col + node * width, s.in, T(0));
        continue;
      }
      auto* frame = x + ti * s.v * s.in;
      for (int64_t node = 0; node < s.v; ++node) {
        auto* a = frame + node * s.in;
        auto* b = col + node * width;
#pragma omp simd
        for (int64_t c = 0; c < s.in; ++c) {  // a loop, not a library call: `in` may be 2
          if constexpr (Scatter) a[c] += b[c]; else b[c] = a[c];
        }
      }
    }
}

// dst [cols, ld] = src [rows, cols]^T (columns [0, rows) of each row of dst).
template <class T>
void transpose_into(const T* src, int64_t rows, int64_t cols, T* dst, int64_t ld) {
  constexpr int64_t R = 8;
  int64_t r0 = 0;
  for (; r0 + R <= rows; r0 += R)
    for (int64_t c = 0; c < cols; ++c) {
#pragma omp simd
      for (int64_t r = 0; r < R; ++r) dst[c * ld + r0 + r] = src[(r0 + r) * cols + c];
    }
  for (; r0 < rows; ++r0)
    for (int64_t c = 0; c < cols; ++c) dst[c * ld + r0] = src[r0 * cols + c];
}

// Stride 1, one sequence: dw[j] [out, in] += sum_o dy[o]^T x[o + j - pad]
// over the output frames o whose input frame is inside the sequence.
// Narrow outputs go to BLAS tap by tap (dy and x read in place); with at
// least 32 outputs both are transposed once (x with zero frames around it)
// and every tap is one register-tiled GEMM over all the sequence's rows.
template <class T>
void tap_weight_gradients(const TemporalConvShape& s, const T* xs, const T* dys, T* dw) {
  const int64_t rows = s.to * s.v;
  if (s.out < 32) {
    for (int64_t j = 0; j < s.k; ++j) {
      const int64_t o0 = std::max<int64_t>(0, s.pad - j), o1 = std::min(s.to, s.t + s.pad - j);
      if (o1 <= o0) continue;
      cpu::gemm(true, false, s.out, s.in, (o1 - o0) * s.v, T(1), dys + o0 * s.v * s.out, s.out,
                xs + (o0 + j - s.pad) * s.v * s.in, s.in, T(1), dw + j * s.out * s.in, s.in);
    }
    return;
  }
  // Input frame f sits at padded frame f + pad; tap j of output frame o reads padded frame o + j.
  const int64_t frames = std::max(s.to + s.k - 1, s.pad + s.t), ld = frames * s.v;
  Tensor<T, cpu> xt = scratch<T>(s.in * ld), dyt = scratch<T>(s.out * rows), prod = scratch<T>(s.in * s.out);
  for (int64_t c = 0; c < s.in; ++c) {
    std::fill_n(xt.data() + c * ld, s.pad * s.v, T(0));
    std::fill_n(xt.data() + c * ld + (s.pad + s.t) * s.v, (frames - s.pad - s.t) * s.v, T(0));
  }
  transpose_into(xs, s.t * s.v, s.in, xt.data() + s.pad * s.v, ld);
  transpose_into(dys, rows, s.out, dyt.data(), rows);
  for (int64_t j = 0; j < s.k; ++j) {
    // prod [in, out] = dw_j^T
    gemm_nt<T>(s.in, s.out, rows, xt.data() + j * s.v, ld, dyt.data(), rows, nullptr, prod.data(), s.out);
    T* d = dw + j * s.out * s.in;
    for (int64_t o = 0; o < s.out; ++o)
      for (int64_t c = 0; c < s.in; ++c) d[o * s.in + c] += prod.data()[c * s.out + o];
  }
}

}  // namespace temporal_detail

// y [n, to, v, out] = conv(x [n, t, v, in]) + bias; weight [out, in, k] (torch's
// layout), bias [out] or null.
template <class T>
void temporal_conv_forward(cpu, const TemporalConvShape& s, const T* x, const T* weight, const T* bias, T* y) {
  using namespace temporal_detail;
  const int64_t parts = part_count(s.n);
  if (s.output_side()) {
    const int64_t width = s.k * s.out, block = frames_per_block(s.v, width, s.t);
    // wt[(j, o), c]: P = x wt^T holds every tap's product.
    const Tensor<T, cpu> wt = rearranged_weight(s, weight, [&](int64_t o, int64_t c, int64_t j) { return (j * s.out + o) * s.in + c; });
    parallel_chunks(s.n, parts, [&](int64_t, int64_t n0, int64_t n1) {
      Tensor<T, cpu> p = scratch<T>(block * s.v * width);
      for (int64_t b = n0; b < n1; ++b) {
        const T* xs = x + b * s.t * s.v * s.in;
        T* ys = y + b * s.to * s.v * s.out;
        for (int64_t r = 0; r < s.to * s.v; ++r) {
          if (bias) std::copy_n(bias, s.out, ys + r * s.out);
          else std::fill_n(ys + r * s.out, s.out, T(0));
        }
        for (int64_t f0 = 0; f0 < s.t; f0 += block) {
          const int64_t f1 = std::min(s.t, f0 + block);
          gemm_nt<T>((f1 - f0) * s.v, width, s.in, xs + f0 * s.v * s.in, s.in, wt.data(), s.in, nullptr, p.data(), width);
          for (int64_t f = f0; f < f1; ++f)
            for (int64_t j = 0; j < s.k; ++j) {
              const int64_t o = f - j + s.pad;  // the output frame that tap j of input frame f adds to
              if (o < 0 || o >= s.to) continue;
              const T* src = p.data() + (f - f0) * s.v * width + j * s.out;
              T* dst = ys + o * s.v * s.out;
              for (int64_t node = 0; node < s.v; ++node) {
                const T* a = src + node * width;
                T* d = dst + node * s.out;
#pragma omp simd
                for (int64_t c = 0; c < s.out; ++c) d[c] += a[c];
              }
            }
        }
      }
    });
    return;
  }
  const int64_t width = s.k * s.in, block = frames_per_block(s.v, width, s.to);
  // wm[o, (j, c)]: y = cols wm^T.
  const Tensor<T, cpu> wm = rearranged_weight(s, weight, [&](int64_t o, int64_t c, int64_t j) { return o * width + j * s.in + c; });
  parallel_chunks(s.n, parts, [&](int64_t, int64_t n0, int64_t n1) {
    Tensor<T, cpu> cols = scratch<T>(block * s.v * width);
    for (int64_t b = n0; b < n1; ++b) {
      const T* xs = x + b * s.t * s.v * s.in;
      for (int64_t o0 = 0; o0 < s.to; o0 += block) {
        const int64_t o1 = std::min(s.to, o0 + block);
        im2col_frames<T, false>(xs, cols.data(), s, o0, o1);
        gemm_nt<T>((o1 - o0) * s.v, s.out, width, cols.data(), width, wm.data(), width, bias,
                   y + (b * s.to + o0) * s.v * s.out, s.out);
      }
    }
  });
}

// dx [n, t, v, in] = dL/dx (overwritten); dweight [out, in, k] and dbias [out]
// (null: no bias) accumulate.
//   by taps (stride 1, in >= 16): dx[f] = sum_j dy[f - j + pad] W_j, as one
//             GEMM per block of input frames over the gathered dP
//             [(f, v), (j, o)]; the weight gradient tap by tap
//             (tap_weight_gradients).
//   otherwise through the im2col rows: dW += dy^T cols, dcols = dy W
//             scattered back into dx.
template <class T>
void temporal_conv_backward(cpu, const TemporalConvShape& s, const T* x, const T* weight, const T* dy, T* dx,
                            T* dweight, T* dbias) {
  using namespace temporal_detail;
  const int64_t parts = part_count(s.n);
  if (dbias) accumulate_column_sums(cpu{}, dy, dbias, s.n * s.to * s.v, s.out);
  std::vector<Tensor<T, cpu>> dw;
  for (int64_t p = 0; p < parts; ++p) dw.push_back(Tensor<T, cpu>::zeros({s.out * s.in * s.k}));
  const bool by_taps = s.taps_backward();
  if (by_taps) {
    const int64_t width = s.k * s.out, block = frames_per_block(s.v, width, s.t);
    // wg[c, (j, o)]: dx = dP wg^T.
    const Tensor<T, cpu> wg = rearranged_weight(s, weight, [&](int64_t o, int64_t c, int64_t j) { return c * width + j * s.out + o; });
    parallel_chunks(s.n, parts, [&](int64_t part, int64_t n0, int64_t n1) {
      Tensor<T, cpu> dp = scratch<T>(block * s.v * width);
      for (int64_t b = n0; b < n1; ++b) {
        const T* dys = dy + b * s.to * s.v * s.out;
        for (int64_t f0 = 0; f0 < s.t; f0 += block) {
          const int64_t f1 = std::min(s.t, f0 + block);
          for (int64_t f = f0; f < f1; ++f)
            for (int64_t j = 0; j < s.k; ++j) {  // dP[f, node, (j, o)] = dy[f - j + pad, node, o]
              const int64_t o = f - j + s.pad;
              T* dst = dp.data() + (f - f0) * s.v * width + j * s.out;
              if (o < 0 || o >= s.to) {
                for (int64_t node = 0; node < s.v; ++node) std::fill_n(dst + node * width, s.out, T(0));
                continue;
              }
              const T* src = dys + o * s.v * s.out;
              for (int64_t node = 0; node < s.v; ++node) std::copy_n(src + node * s.out, s.out, dst + node * width);
            }
          gemm_nt<T>((f1 - f0) * s.v, s.in, width, dp.data(), width, wg.data(), width, nullptr,
                     dx + (b * s.t + f0) * s.v * s.in, s.in);
        }
        tap_weight_gradients(s, x + b * s.t * s.v * s.in, dys, dw[static_cast<size_t>(part)].data());
      }
    });
  } else {
    const int64_t width = s.k * s.in, block = frames_per_block(s.v, width, s.to);
    // wmt[(j, c), o]: dcols = dy wmt^T. The weight gradient accumulates as [o, (j, c)].
    const Tensor<T, cpu> wmt = rearranged_weight(s, weight, [&](int64_t o, int64_t c, int64_t j) { return (j * s.in + c) * s.out + o; });
    parallel_chunks(s.n, parts, [&](int64_t part, int64_t n0, int64_t n1) {
      Tensor<T, cpu> cols = scratch<T>(block * s.v * width), dcols = scratch<T>(block * s.v * width);
      T* acc = dw[static_cast<size_t>(part)].data();
      for (int64_t b = n0; b < n1; ++b) {
        const T* xs = x + b * s.t * s.v * s.in;
        T* dxs = dx + b * s.t * s.v * s.in;
        std::fill_n(dxs, s.t * s.v * s.in, T(0));
        for (int64_t o0 = 0; o0 < s.to; o0 += block) {
          const int64_t o1 = std::min(s.to, o0 + block), rows = (o1 - o0) * s.v;
          const T* dys = dy + (b * s.to + o0) * s.v * s.out;
          im2col_frames<T, false>(xs, cols.data(), s, o0, o1);
          cpu::gemm(true, false, s.out, width, rows, T(1), dys, s.out, cols.data(), width, T(1), acc, width);
          gemm_nt<T>(rows, width, s.out, dys, s.out, wmt.data(), s.out, nullptr, dcols.data(), width);
          im2col_frames<T, true>(dxs, dcols.data(), s, o0, o1);
        }
      }
    });
  }
  // Sum the parts; their layout is [k, out, in] (by taps) or [out, (k, in)].
  for (size_t p = 1; p < dw.size(); ++p) dw[0].array() += dw[p].array();
  const T* sum = dw[0].data();
  for (int64_t o = 0; o < s.out; ++o)
    for (int64_t c = 0; c < s.in; ++c)
      for (int64_t j = 0; j < s.k; ++j)
        dweight[(o * s.in + c) * s.k + j] += by_taps ? sum[(j * s.out + o) * s.in + c] : sum[(o * s.k + j) * s.in + c];
}

}  // namespace backend

template <class B = cpu, class T = float>
class TemporalConv : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    int64_t kernel_size = 9;
    int64_t stride = 1;
    int64_t padding = -1;  // -1: "same" ((k - 1) / 2 before, the rest after)
    bool bias = true;
  };

  TemporalConv(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1)
      : TemporalConv(Options{in_channels, out_channels, kernel_size, stride}) {}
  explicit TemporalConv(const Options& o) : opt_(o) {
    STPAIN_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.kernel_size > 0 && o.stride > 0, ShapeError,
                 describe(), ": sizes must be positive");
    if (opt_.padding < 0) opt_.padding = (o.kernel_size - 1) / 2;
    const int64_t fan_in = o.in_channels * o.kernel_size;
    weight = Parameter<T, B>::make({o.out_channels, o.in_channels, o.kernel_size, 1});
    init_uniform_fan_in(weight.value, fan_in);
    if (o.bias) {
      this->bias = Parameter<T, B>::make({o.out_channels});
      init_uniform_fan_in(this->bias.value, fan_in);
    }
  }

  // Output length: (T + total padding - k) / stride + 1, total padding = k - 1 for "same".
  int64_t output_length(int64_t t) const {
    const int64_t total = opt_.padding + (opt_.kernel_size - 1 - opt_.padding);
    return (t + total - opt_.kernel_size) / opt_.stride + 1;
  }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == 4 && x.size(3) == opt_.in_channels, ShapeError, describe(), ": input ", x.shape().str(),
                 " is not [N, T, V, ", opt_.in_channels, "]");
    const backend::TemporalConvShape s = shape_of(x.shape());
    STPAIN_CHECK(s.to > 0, ShapeError, describe(), ": input ", x.shape().str(), " is shorter than the kernel");
    x_ = x;
    tensor y = tensor::empty({s.n, s.to, s.v, s.out});
    temporal_conv_forward(B{}, s, x.data(), weight.value.data(), opt_.bias ? bias.value.data() : nullptr, y.data());
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(x_, "TemporalConv");
    const backend::TemporalConvShape s = shape_of(x_.shape());
    expect_shape(dy.shape(), Shape{s.n, s.to, s.v, s.out}, describe() + ".backward dy");
    tensor dx = tensor::empty(x_.shape());
    temporal_conv_backward(B{}, s, x_.data(), weight.value.data(), dy.data(), dx.data(), weight.grad.data(),
                           opt_.bias ? bias.grad.data() : nullptr);
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + "weight", weight);
    if (opt_.bias) f(prefix + "bias", bias);
  }
  const Options& options() const { return opt_; }
  std::string describe() const {
    return detail::concat("TemporalConv(", opt_.in_channels, " -> ", opt_.out_channels, ", k=", opt_.kernel_size,
                          ", stride=", opt_.stride, ")");
  }

  Parameter<T, B> weight, bias;

 private:
  backend::TemporalConvShape shape_of(const Shape& x) const {
    return {.n = x[0], .t = x[1], .v = x[2], .in = opt_.in_channels, .out = opt_.out_channels, .k = opt_.kernel_size,
            .stride = opt_.stride, .pad = opt_.padding, .to = output_length(x[1])};
  }

  Options opt_;
  tensor x_;
};

}  // namespace stpain
