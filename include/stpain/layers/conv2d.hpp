#pragma once
// Conv2d: 2-D cross-correlation over NCHW input (torch.nn.Conv2d, no dilation).
// weight [out_channels, in_channels / groups, kh, kw], bias [out_channels].
//
// General convolutions run as im2col + one GEMM per image and group (the
// images spread over the cores, each GEMM single-threaded inside); depthwise
// convolutions (groups == in_channels == out_channels, ConvNeXt's 7x7) have a
// direct kernel vectorised over the output width.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "stpain/backend/simd.hpp"
#include "stpain/layers/module.hpp"

namespace stpain {

// A (height, width) pair; one number means a square, as in PyTorch.
struct Size2d {
  int64_t h = 1, w = 1;
  constexpr Size2d() = default;
  constexpr Size2d(int64_t both) : h(both), w(both) {}  // NOLINT: implicit, like kernel_size=3
  constexpr Size2d(int64_t height, int64_t width) : h(height), w(width) {}
  friend constexpr bool operator==(const Size2d&, const Size2d&) = default;
};

// Every size a convolution kernel needs, fixed by the layer and its input.
struct Conv2dGeometry {
  int64_t batch = 0, in_channels = 0, height = 0, width = 0;
  int64_t out_channels = 0, out_height = 0, out_width = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t groups = 1;

  int64_t in_per_group() const { return in_channels / groups; }
  int64_t out_per_group() const { return out_channels / groups; }
  int64_t kernel_area() const { return kernel_h * kernel_w; }
  // The im2col matrix of one image and group is [col_rows, col_cols].
  int64_t col_rows() const { return in_per_group() * kernel_area(); }
  int64_t col_cols() const { return out_height * out_width; }
  // A 1x1, stride-1, unpadded conv reads its input as the im2col matrix.
  bool pointwise() const {
    return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
  }
};

}  // namespace stpain

namespace stpain::backend {

namespace conv_detail {

// The output positions o in [0, out_size) whose input index o * stride + offset
// lies in [0, in_size): [lo, hi). offset is (kernel tap - padding).
inline void valid_outputs(int64_t out_size, int64_t in_size, int64_t stride, int64_t offset, int64_t& lo,
                          int64_t& hi) {
  lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  hi = in_size - offset <= 0 ? 0 : std::min(out_size, (in_size - offset + stride - 1) / stride);
  hi = std::max(hi, lo);
}

// col[(c, ki, kj), (oh, ow)] = x[c, oh*sh - ph + ki, ow*sw - pw + kj] (0 outside)
// for the in_per_group channels of one image and group.
template <class T>
void im2col(const Conv2dGeometry& g, const T* x, T* col) {
  const int64_t oh_n = g.out_height, ow_n = g.out_width, hw = g.height * g.width;
  for (int64_t c = 0; c < g.in_per_group(); ++c) {
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      int64_t oh_lo, oh_hi;
      valid_outputs(oh_n, g.height, g.stride_h, ki - g.pad_h, oh_lo, oh_hi);
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        int64_t ow_lo, ow_hi;
        valid_outputs(ow_n, g.width, g.stride_w, kj - g.pad_w, ow_lo, ow_hi);
        T* row = col + ((c * g.kernel_h + ki) * g.kernel_w + kj) * oh_n * ow_n;
        std::fill(row, row + oh_lo * ow_n, T(0));
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          T* out = row + oh * ow_n;
          const T* in = x + c * hw + (oh * g.stride_h - g.pad_h + ki) * g.width - g.pad_w + kj;
          std::fill(out, out + ow_lo, T(0));
          if (g.stride_w == 1) {
            std::copy(in + ow_lo, in + ow_hi, out + ow_lo);
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow] = in[ow * g.stride_w];
          }
          std::fill(out + ow_hi, out + ow_n, T(0));
        }
        std::fill(row + oh_hi * ow_n, row + oh_n * ow_n, T(0));
      }
    }
  }
}

// The adjoint of im2col: dx[c, ih, iw] += col[(c, ki, kj), (oh, ow)].
template <class T>
void col2im(const Conv2dGeometry& g, const T* col, T* dx) {
  const int64_t oh_n = g.out_height, ow_n = g.out_width, hw = g.height * g.width;
  for (int64_t c = 0; c < g.in_per_group(); ++c) {
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      int64_t oh_lo, oh_hi;
      valid_outputs(oh_n, g.height, g.stride_h, ki - g.pad_h, oh_lo, oh_hi);
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        int64_t ow_lo, ow_hi;
        valid_outputs(ow_n, g.width, g.stride_w, kj - g.pad_w, ow_lo, ow_hi);
        const T* row = col + ((c * g.kernel_h + ki) * g.kernel_w + kj) * oh_n * ow_n;
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          const T* in = row + oh * ow_n;
          T* out = dx + c * hw + (oh * g.stride_h - g.pad_h + ki) * g.width - g.pad_w + kj;
          if (g.stride_w == 1) {
#pragma omp simd
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow] += in[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow * g.stride_w] += in[ow];
          }
        }
      }
    }
  }
}

// Multiply-adds a parallel chunk should hold at least: below that, starting
// and joining the threads costs more than it saves.
inline constexpr int64_t kParallelWork = 1 << 16;
// Items per parallel chunk when each item costs `work` multiply-adds.
inline int64_t grain_for(int64_t work) { return std::max<int64_t>(1, kParallelWork / std::max<int64_t>(1, work)); }
// How many parts a reduction over n items of `work` each splits into (at most
// one per thread); part p covers items [n*p/parts, n*(p+1)/parts).
inline int64_t reduction_parts(int64_t n, int64_t work) {
  const int64_t grain = grain_for(work);
  return std::max<int64_t>(1, std::min<int64_t>(num_threads(), (n + grain - 1) / grain));
}

// Copies n values; a vector loop rather than a memcpy call for short rows.
template <class T>
void copy_row(const T* src, int64_t n, T* dst) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// One register of T values and compile-time unrolling (backend/simd.hpp). The
// depthwise tiles keep their accumulators in arrays of these, indexed by
// constants through unroll(): GCC leaves plain accumulator arrays in memory.
using simd::kVectorBytes;
using simd::unroll;
using simd::Vector;

// v = {p[0], p[stride], p[2 * stride], ...}: one unaligned load for stride 1.
template <bool UnitStride, class V, class T>
inline __attribute__((always_inline)) void load_vector(V& v, const T* p, int64_t stride) {
  if constexpr (UnitStride) {
    std::memcpy(&v, p, sizeof v);
  } else {
    for (int64_t l = 0; l < static_cast<int64_t>(sizeof(V) / sizeof(T)); ++l) v[l] = p[l * stride];
  }
}

// The depthwise kernels work on register tiles of Rows output rows by
// Vectors * lanes output columns, whose accumulators stay in registers
// across all kh * kw taps. Wide tiles share each weight broadcast among more
// columns; narrower outputs (ConvNeXt's later stages) get narrower tiles so
// that little of the tile hangs past the plane. (Tuned on Zen 4, AVX-512.)
// f(vectors, rows) receives the tile as integral constants.
template <class T, class F>
void with_depthwise_tile(const Conv2dGeometry& g, F&& f) {
  constexpr int64_t lanes = Vector<T>::lanes;
  if (g.out_width > 2 * lanes)
    f(std::integral_constant<int64_t, 4>{}, std::integral_constant<int64_t, 4>{});
  else if (g.out_width > lanes)
    f(std::integral_constant<int64_t, 2>{}, std::integral_constant<int64_t, 4>{});
  else
    f(std::integral_constant<int64_t, 1>{}, std::integral_constant<int64_t, 4>{});
}

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// A zero-padded copy of one input plane, with spare zero rows and columns so
// that tiles running past the last output row or column read zeros.
template <class T>
struct PaddedPlane {
  int64_t rows = 0, stride = 0;
  std::vector<T> data;

  PaddedPlane(const Conv2dGeometry& g, int64_t tile_cols, int64_t tile_rows) {
    rows = std::max(g.height + 2 * g.pad_h, (round_up(g.out_height, tile_rows) - 1) * g.stride_h + g.kernel_h);
    stride = std::max(g.width + 2 * g.pad_w, (round_up(g.out_width, tile_cols) - 1) * g.stride_w + g.kernel_w);
    data.assign(static_cast<size_t>(rows * stride), T(0));
  }
  // Copies a plane into the interior; the border stays zero.
  void load(const Conv2dGeometry& g, const T* plane) {
    for (int64_t h = 0; h < g.height; ++h) copy_row(plane + h * g.width, g.width, at(h + g.pad_h) + g.pad_w);
  }
  T* at(int64_t row) { return data.data() + row * stride; }
  const T* at(int64_t row) const { return data.data() + row * stride; }
};

// One output plane of a depthwise conv: out = conv(x, w) + b.
template <int64_t Vectors, int64_t Rows, bool UnitStride, class T>
void depthwise_plane(const Conv2dGeometry& g, const PaddedPlane<T>& x, const T* w, T b, T* out) {
  using V = typename Vector<T>::type;
  constexpr int64_t lanes = Vector<T>::lanes, cols = Vectors * lanes, tile = Rows * Vectors;
  const int64_t sw = UnitStride ? 1 : g.stride_w;
  for (int64_t oh0 = 0; oh0 < g.out_height; oh0 += Rows) {
    for (int64_t ow0 = 0; ow0 < g.out_width; ow0 += cols) {
      V acc[tile];
      unroll<tile>([&](auto i) { acc[i] = V{} + b; });
      // Each input row under the tile is loaded once per column shift and
      // feeds every output row whose filter covers it.
      for (int64_t ir = 0; ir < (Rows - 1) * g.stride_h + g.kernel_h; ++ir) {
        const T* in_row = x.at(oh0 * g.stride_h + ir) + ow0 * sw;
        for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
          V in[Vectors];
          unroll<Vectors>([&](auto j) { load_vector<UnitStride>(in[j], in_row + (j * lanes) * sw + kj, sw); });
          unroll<Rows>([&](auto r) {
            const int64_t ki = ir - r * g.stride_h;
            if (ki < 0 || ki >= g.kernel_h) return;
            const T wv = w[ki * g.kernel_w + kj];
            unroll<Vectors>([&](auto j) { acc[r * Vectors + j] += wv * in[j]; });
          });
        }
      }
      const int64_t rows = std::min(Rows, g.out_height - oh0), valid = std::min(cols, g.out_width - ow0);
      unroll<tile>([&](auto i) {
        constexpr int64_t r = i / Vectors, c = i % Vectors * lanes;
        if (r >= rows || c >= valid) return;
        T* o = out + (oh0 + r) * g.out_width + ow0 + c;
        const V v = acc[i];  // a copy: taking acc's address would keep the tile in memory
        if (c + lanes <= valid) {
          std::memcpy(o, &v, sizeof v);
        } else {
          for (int64_t l = 0; l < valid - c; ++l) o[l] = v[l];
        }
      });
    }
  }
}

// dw[tap] += sum over outputs of dy * the input under the tap, for one plane.
// dy holds out_height rows of round_up(out_width, tile columns) values, zero
// past the plane. Taps run in groups of Taps along a kernel row, so each dy
// vector loaded serves Taps of them.
template <int64_t Vectors, bool UnitStride, class T>
void depthwise_plane_filter_grad(const Conv2dGeometry& g, const PaddedPlane<T>& x, const T* dy, T* dw) {
  using V = typename Vector<T>::type;
  constexpr int64_t lanes = Vector<T>::lanes, cols = Vectors * lanes;
  constexpr int64_t Taps = std::min<int64_t>(8, 16 / Vectors);
  const int64_t sw = UnitStride ? 1 : g.stride_w;
  const int64_t dy_cols = round_up(g.out_width, cols);
  for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
    for (int64_t kj0 = 0; kj0 < g.kernel_w; kj0 += Taps) {
      V acc[Taps * Vectors];
      unroll<Taps * Vectors>([&](auto i) { acc[i] = V{}; });
      for (int64_t oh = 0; oh < g.out_height; ++oh) {
        const T* in_row = x.at(oh * g.stride_h + ki) + kj0;
        const T* dy_row = dy + oh * dy_cols;
        for (int64_t ow0 = 0; ow0 < dy_cols; ow0 += cols) {
          V d[Vectors];
          unroll<Vectors>([&](auto j) { std::memcpy(&d[j], dy_row + ow0 + j * lanes, sizeof(V)); });
          unroll<Taps>([&](auto t) {
            if (kj0 + t >= g.kernel_w) return;
            unroll<Vectors>([&](auto j) {
              V in;
              load_vector<UnitStride>(in, in_row + (ow0 + j * lanes) * sw + t, sw);
              acc[t * Vectors + j] += d[j] * in;
            });
          });
        }
      }
      unroll<Taps>([&](auto t) {
        if (kj0 + t >= g.kernel_w) return;
        V sum = acc[t * Vectors];
        unroll<Vectors - 1>([&](auto j) { sum += acc[t * Vectors + j + 1]; });
        T s = 0;
        for (int64_t l = 0; l < lanes; ++l) s += sum[l];
        dw[ki * g.kernel_w + kj0 + t] += s;
      });
    }
  }
}

// dx (padded like x) += every output's gradient sent back through each tap;
// dy laid out as for depthwise_plane_filter_grad. The general form, for
// strides and paddings where the gather form below does not apply.
template <int64_t Cols, bool UnitStride, class T>
void depthwise_plane_input_grad_scatter(const Conv2dGeometry& g, const T* dy, const T* w, PaddedPlane<T>& dx) {
  const int64_t sw = UnitStride ? 1 : g.stride_w;
  const int64_t dy_cols = round_up(g.out_width, Cols);
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    const T* d = dy + oh * dy_cols;
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      T* din = dx.at(oh * g.stride_h + ki);
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        const T wv = w[ki * g.kernel_w + kj];
        T* out = din + kj;
#pragma omp simd
        for (int64_t ow = 0; ow < dy_cols; ++ow) out[ow * sw] += wv * d[ow];
      }
    }
  }
}

// With stride 1 and padding below the kernel size, dx is itself a depthwise
// conv: of dy padded by (kernel - 1 - padding), with the filter flipped.
inline bool depthwise_input_grad_is_conv(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.pad_h < g.kernel_h && g.pad_w < g.kernel_w;
}
inline Conv2dGeometry depthwise_input_grad_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry t = g;
  t.height = g.out_height;
  t.width = g.out_width;
  t.out_height = g.height;
  t.out_width = g.width;
  t.pad_h = g.kernel_h - 1 - g.pad_h;
  t.pad_w = g.kernel_w - 1 - g.pad_w;
  return t;
}

}  // namespace conv_detail

// y = conv(x, weight) + bias through im2col and GEMM. bias may be null.
template <class T>
void conv2d_forward(cpu, const Conv2dGeometry& g, const T* x, const T* weight, const T* bias, T* y) {
  const int64_t in_plane = g.height * g.width, out_plane = g.col_cols();
  const int64_t og = g.out_per_group(), k = g.col_rows();
  // Images in parallel; a GEMM inside the parallel region runs on one core.
  // With a single image the GEMM itself gets every core.
  const int64_t image_work = g.out_channels * out_plane * k;
  parallel_for(g.batch, conv_detail::grain_for(image_work), [&](int64_t n0, int64_t n1) {
    // im2col writes every entry: no need to clear the buffer.
    const auto col = std::make_unique_for_overwrite<T[]>(g.pointwise() ? 0 : static_cast<size_t>(k * out_plane));
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const T* xg = x + (n * g.in_channels + grp * g.in_per_group()) * in_plane;
        T* yg = y + (n * g.out_channels + grp * og) * out_plane;
        const T* cols = xg;
        if (!g.pointwise()) {
          conv_detail::im2col(g, xg, col.get());
          cols = col.get();
        }
        if (bias) {
          for (int64_t o = 0; o < og; ++o) std::fill(yg + o * out_plane, yg + (o + 1) * out_plane, bias[grp * og + o]);
        }
        cpu::gemm(false, false, og, out_plane, k, T(1), weight + grp * og * k, k, cols, out_plane,
                  bias ? T(1) : T(0), yg, out_plane);
      }
    }
  });
}

// dx = conv^T(dy) (overwritten); dweight, dbias (may be null) accumulate.
template <class T>
void conv2d_backward(cpu, const Conv2dGeometry& g, const T* x, const T* weight, const T* dy, T* dx, T* dweight,
                     T* dbias) {
  const int64_t in_plane = g.height * g.width, out_plane = g.col_cols();
  const int64_t og = g.out_per_group(), k = g.col_rows();
  const int64_t weight_size = g.out_channels * k;
  // Each part of the batch sums its weight and bias gradients apart (part 0
  // straight into dweight/dbias); the parts are added afterwards, in order.
  const int64_t parts = conv_detail::reduction_parts(g.batch, 3 * g.out_channels * out_plane * k);
  std::vector<T> partial(static_cast<size_t>((parts - 1) * (weight_size + g.out_channels)), T(0));
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    // Both fully written before they are read (GEMM with beta = 0 ignores C).
    const size_t col_size = g.pointwise() ? 0 : static_cast<size_t>(k * out_plane);
    const auto col = std::make_unique_for_overwrite<T[]>(col_size);
    const auto dcol = std::make_unique_for_overwrite<T[]>(col_size);
    for (int64_t p = p0; p < p1; ++p) {
      T* dw = p == 0 ? dweight : partial.data() + (p - 1) * (weight_size + g.out_channels);
      T* db = p == 0 ? dbias : partial.data() + (p - 1) * (weight_size + g.out_channels) + weight_size;
      for (int64_t n = g.batch * p / parts; n < g.batch * (p + 1) / parts; ++n) {
        if (!g.pointwise()) std::fill(dx + n * g.in_channels * in_plane, dx + (n + 1) * g.in_channels * in_plane, T(0));
        for (int64_t grp = 0; grp < g.groups; ++grp) {
          const int64_t x_offset = (n * g.in_channels + grp * g.in_per_group()) * in_plane;
          const T* dyg = dy + (n * g.out_channels + grp * og) * out_plane;
          const T* cols = x + x_offset;
          if (!g.pointwise()) {
            conv_detail::im2col(g, x + x_offset, col.get());
            cols = col.get();
          }
          // dW_g += dy_g col^T ; dcol = W_g^T dy_g
          cpu::gemm(false, true, og, k, out_plane, T(1), dyg, out_plane, cols, out_plane, T(1), dw + grp * og * k, k);
          if (g.pointwise()) {
            cpu::gemm(true, false, k, out_plane, og, T(1), weight + grp * og * k, k, dyg, out_plane, T(0),
                      dx + x_offset, out_plane);
          } else {
            cpu::gemm(true, false, k, out_plane, og, T(1), weight + grp * og * k, k, dyg, out_plane, T(0),
                      dcol.get(), out_plane);
            conv_detail::col2im(g, dcol.get(), dx + x_offset);
          }
          if (db) {
            for (int64_t o = 0; o < og; ++o) {
              const T* r = dyg + o * out_plane;
              T s = 0;
#pragma omp simd reduction(+ : s)
              for (int64_t i = 0; i < out_plane; ++i) s += r[i];
              db[grp * og + o] += s;
            }
          }
        }
      }
    }
  });
  for (int64_t p = 1; p < parts; ++p) {
    const T* part = partial.data() + (p - 1) * (weight_size + g.out_channels);
    for (int64_t i = 0; i < weight_size; ++i) dweight[i] += part[i];
    if (dbias)
      for (int64_t o = 0; o < g.out_channels; ++o) dbias[o] += part[weight_size + o];
  }
}

// Depthwise conv (groups == in_channels == out_channels): every (image,
// channel) plane is convolved with its own kh x kw filter. bias may be null.
template <class T>
void depthwise_conv2d_forward(cpu, const Conv2dGeometry& g, const T* x, const T* weight, const T* bias, T* y) {
  const int64_t channels = g.in_channels, in_plane = g.height * g.width, out_plane = g.col_cols();
  conv_detail::with_depthwise_tile<T>(g, [&](auto vectors, auto rows) {
    constexpr int64_t Vectors = decltype(vectors)::value, Rows = decltype(rows)::value;
    constexpr int64_t Cols = Vectors * conv_detail::Vector<T>::lanes;
    const int64_t grain = conv_detail::grain_for(out_plane * g.kernel_area());
    parallel_for(g.batch * channels, grain, [&](int64_t p0, int64_t p1) {
      conv_detail::PaddedPlane<T> padded(g, Cols, Rows);
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t c = p % channels;
        const T* w = weight + c * g.kernel_area();
        const T b = bias ? bias[c] : T(0);
        padded.load(g, x + p * in_plane);
        if (g.stride_w == 1)
          conv_detail::depthwise_plane<Vectors, Rows, true>(g, padded, w, b, y + p * out_plane);
        else
          conv_detail::depthwise_plane<Vectors, Rows, false>(g, padded, w, b, y + p * out_plane);
      }
    });
  });
}

// dx overwritten; dweight and dbias (may be null) accumulate. The filter
// gradients run in parallel over channels, so each has a single writer.
template <class T>
void depthwise_conv2d_backward(cpu, const Conv2dGeometry& g, const T* x, const T* weight, const T* dy, T* dx,
                               T* dweight, T* dbias) {
  const int64_t channels = g.in_channels, in_plane = g.height * g.width, out_plane = g.col_cols();
  const int64_t taps = g.kernel_area();
  const bool gather = conv_detail::depthwise_input_grad_is_conv(g);
  if (gather) {
    std::vector<T> flipped(static_cast<size_t>(channels * taps));
    for (int64_t c = 0; c < channels; ++c)
      std::reverse_copy(weight + c * taps, weight + (c + 1) * taps, flipped.begin() + c * taps);
    depthwise_conv2d_forward(cpu{}, conv_detail::depthwise_input_grad_geometry(g), dy, flipped.data(),
                             static_cast<const T*>(nullptr), dx);
  }
  // The filter gradient uses the column width of the forward tile.
  conv_detail::with_depthwise_tile<T>(g, [&](auto vectors, auto) {
    constexpr int64_t Vectors = decltype(vectors)::value;
    constexpr int64_t Cols = Vectors * conv_detail::Vector<T>::lanes;
    const int64_t dy_cols = conv_detail::round_up(g.out_width, Cols);
    const int64_t grain = conv_detail::grain_for(2 * g.batch * out_plane * taps);
    parallel_for(channels, grain, [&](int64_t c0, int64_t c1) {
      conv_detail::PaddedPlane<T> padded(g, Cols, 1);
      conv_detail::PaddedPlane<T> dpadded(gather ? Conv2dGeometry{} : g, Cols, 1);  // for the scatter form
      // dy of one plane in rows of whole tiles, zero past the plane.
      std::vector<T> dy_tiles(static_cast<size_t>(g.out_height * dy_cols), T(0));
      for (int64_t c = c0; c < c1; ++c) {
        const T* w = weight + c * taps;
        T db = 0;
        for (int64_t n = 0; n < g.batch; ++n) {
          const int64_t plane = n * channels + c;
          const T* dy_plane = dy + plane * out_plane;
          padded.load(g, x + plane * in_plane);
          for (int64_t oh = 0; oh < g.out_height; ++oh)
            conv_detail::copy_row(dy_plane + oh * g.out_width, g.out_width, dy_tiles.data() + oh * dy_cols);
          if (g.stride_w == 1)
            conv_detail::depthwise_plane_filter_grad<Vectors, true>(g, padded, dy_tiles.data(), dweight + c * taps);
          else
            conv_detail::depthwise_plane_filter_grad<Vectors, false>(g, padded, dy_tiles.data(), dweight + c * taps);
          if (!gather) {
            std::fill(dpadded.data.begin(), dpadded.data.end(), T(0));
            if (g.stride_w == 1)
              conv_detail::depthwise_plane_input_grad_scatter<Cols, true>(g, dy_tiles.data(), w, dpadded);
            else
              conv_detail::depthwise_plane_input_grad_scatter<Cols, false>(g, dy_tiles.data(), w, dpadded);
            for (int64_t h = 0; h < g.height; ++h)
              conv_detail::copy_row(dpadded.at(h + g.pad_h) + g.pad_w, g.width, dx + plane * in_plane + h * g.width);
          }
          if (dbias) {
#pragma omp simd reduction(+ : db)
            for (int64_t i = 0; i < out_plane; ++i) db += dy_plane[i];
          }
        }
        if (dbias) dbias[c] += db;
      }
    });
  });
}

}  // namespace stpain::backend

namespace stpain {

template <class B = cpu, class T = float>
class Conv2d : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    Size2d kernel = 1;
    Size2d stride = 1;
    Size2d padding = 0;
    int64_t groups = 1;
    bool bias = true;
  };

  // Argument order of torch.nn.Conv2d (without dilation).
  Conv2d(int64_t in_channels, int64_t out_channels, Size2d kernel, Size2d stride = 1, Size2d padding = 0,
         int64_t groups = 1, bool bias = true)
      : Conv2d(Options{in_channels, out_channels, kernel, stride, padding, groups, bias}) {}
  explicit Conv2d(const Options& o) : opt_(o) {
    STPAIN_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.groups > 0 && o.kernel.h > 0 && o.kernel.w > 0 &&
                     o.stride.h > 0 && o.stride.w > 0 && o.padding.h >= 0 && o.padding.w >= 0,
                 ShapeError, describe(), ": channels, groups, kernel and stride must be positive, padding >= 0");
    STPAIN_CHECK(o.in_channels % o.groups == 0 && o.out_channels % o.groups == 0, ShapeError, describe(),
                 ": in_channels and out_channels must be divisible by groups");
    const int64_t fan_in = o.in_channels / o.groups * o.kernel.h * o.kernel.w;
    weight = Parameter<T, B>::make({o.out_channels, o.in_channels / o.groups, o.kernel.h, o.kernel.w});
    init_uniform_fan_in(weight.value, fan_in);
    if (o.bias) {
      this->bias = Parameter<T, B>::make({o.out_channels});
      init_uniform_fan_in(this->bias.value, fan_in);
    }
  }

  tensor forward(const tensor& x) {
    const Conv2dGeometry g = geometry(x.shape());
    input_ = x;
    tensor y = tensor::empty({g.batch, g.out_channels, g.out_height, g.out_width});
    const T* b = opt_.bias ? bias.value.data() : nullptr;
    if (is_depthwise())
      depthwise_conv2d_forward(B{}, g, x.data(), weight.value.data(), b, y.data());
    else
      conv2d_forward(B{}, g, x.data(), weight.value.data(), b, y.data());
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "Conv2d");
    const Conv2dGeometry g = geometry(input_.shape());
    expect_shape(dy.shape(), Shape{g.batch, g.out_channels, g.out_height, g.out_width}, describe() + ".backward dy");
    tensor dx = tensor::empty(input_.shape());
    T* db = opt_.bias ? bias.grad.data() : nullptr;
    if (is_depthwise())
      depthwise_conv2d_backward(B{}, g, input_.data(), weight.value.data(), dy.data(), dx.data(), weight.grad.data(), db);
    else
      conv2d_backward(B{}, g, input_.data(), weight.value.data(), dy.data(), dx.data(), weight.grad.data(), db);
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + "weight", weight);
    if (opt_.bias) f(prefix + "bias", bias);
  }

  const Options& options() const { return opt_; }
  // One filter per channel: the direct depthwise kernel runs.
  bool is_depthwise() const { return opt_.groups == opt_.in_channels && opt_.out_channels == opt_.in_channels; }
  // "Conv2d(3, 96, kernel_size=(4, 4), stride=(4, 4), padding=(0, 0), groups=1)", as PyTorch prints it.
  std::string describe() const {
    auto pair = [](const Size2d& s) { return "(" + std::to_string(s.h) + ", " + std::to_string(s.w) + ")"; };
    return "Conv2d(" + std::to_string(opt_.in_channels) + ", " + std::to_string(opt_.out_channels) +
           ", kernel_size=" + pair(opt_.kernel) + ", stride=" + pair(opt_.stride) + ", padding=" + pair(opt_.padding) +
           ", groups=" + std::to_string(opt_.groups) + (opt_.bias ? "" : ", bias=False") + ")";
  }

  Parameter<T, B> weight, bias;

 private:
  Conv2dGeometry geometry(const Shape& s) const {
    STPAIN_CHECK(s.rank() == 4, ShapeError, describe(), ": input ", s.str(), " is not NCHW (rank 4)");
    STPAIN_CHECK(s[1] == opt_.in_channels, ShapeError, describe(), ": input ", s.str(), " has ", s[1],
                 " channels, expected ", opt_.in_channels);
    const int64_t padded_h = s[2] + 2 * opt_.padding.h, padded_w = s[3] + 2 * opt_.padding.w;
    STPAIN_CHECK(padded_h >= opt_.kernel.h && padded_w >= opt_.kernel.w, ShapeError, describe(), ": input ",
                 s.str(), " (padded to ", padded_h, "x", padded_w, ") is smaller than the kernel ", opt_.kernel.h, "x",
                 opt_.kernel.w);
    Conv2dGeometry g;
    g.batch = s[0];
    g.in_channels = s[1];
    g.height = s[2];
    g.width = s[3];
    g.out_channels = opt_.out_channels;
    g.kernel_h = opt_.kernel.h;
    g.kernel_w = opt_.kernel.w;
    g.stride_h = opt_.stride.h;
    g.stride_w = opt_.stride.w;
    g.pad_h = opt_.padding.h;
    g.pad_w = opt_.padding.w;
    g.groups = opt_.groups;
    g.out_height = (padded_h - opt_.kernel.h) / opt_.stride.h + 1;
    g.out_width = (padded_w - opt_.kernel.w) / opt_.stride.w + 1;
    return g;
  }

  Options opt_;
  tensor input_;
};

}  // namespace stpain
