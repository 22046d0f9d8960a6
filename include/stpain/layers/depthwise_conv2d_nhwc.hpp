#pragma once
// DepthwiseConv2dNHWC: a depthwise k x k convolution (stride 1) on channels-last
// input [N, H, W, C], the layout ConvNeXt stages use on the CPU: each output
// pixel is a sum of k*k input pixels times per-channel weights, so the inner
// loop runs over contiguous channels.
// Parameters keep PyTorch's layout and names: weight [C, 1, k, k], bias [C].
#include <array>
#include <vector>

#include "stpain/backend/simd.hpp"
#include "stpain/layers/module.hpp"

namespace stpain::backend {

namespace depthwise_nhwc_detail {

using simd::unroll;

// The forward kernel works on strips of OW output pixels of one output row
// and one vector of channels: OW accumulators stay in registers over all k*k
// taps; for each kernel row the k weight vectors are loaded once and each
// input pixel loaded once serves up to k accumulators. With 32 vector
// registers (AVX-512) strips are 14 or 7 pixels wide (14 + 7 + 1 registers
// for k = 7; 56, 28, 14 and 7, ConvNeXt's widths, split evenly), with 16
// (AVX2) 8 or 4.
inline constexpr int64_t kWideStrip = simd::kRegisters >= 32 ? 14 : 8;
inline constexpr int64_t kNarrowStrip = kWideStrip / 2;

// The kernel sizes with a register-tiled kernel; others run the plain loops.
inline constexpr bool tiled_kernel_size(int64_t k) { return k == 3 || k == 5 || k == 7; }

// Calls f(integral_constant<K>) for a kernel size with a tiled kernel.
template <class F>
void with_kernel_size(int64_t k, F&& f) {
  if (k == 7)
    f(std::integral_constant<int64_t, 7>{});
  else if (k == 5)
    f(std::integral_constant<int64_t, 5>{});
  else
    f(std::integral_constant<int64_t, 3>{});
}

// Output pixels [ow0, ow0 + valid) (valid <= OW) of output row oh of image b,
// channels [ch, ch + lanes). x points at image b ([h, wd, c]), y at the output
// row ([wo, c]); w is [K, K, c]. Interior: every input column of the strip is
// inside the image and valid == OW (no checks).
template <int64_t K, int64_t OW, bool Interior, class T>
[[gnu::always_inline]] inline void forward_strip(const T* x, const T* w, const T* bias, T* y, int64_t h, int64_t wd,
                                                 int64_t c, int64_t pad, int64_t oh, int64_t ow0, int64_t valid,
                                                 int64_t ch) {
  using V = typename simd::Vector<T>::type;
  V acc[OW];
  const V b = bias ? simd::load<V>(bias + ch) : V{};
  unroll<OW>([&](auto o) { acc[o] = b; });
  const int64_t iw0 = ow0 - pad;
  for (int64_t kh = 0; kh < K; ++kh) {
    const int64_t ih = oh + kh - pad;
    if (ih < 0 || ih >= h) continue;
    const T* in = x + ih * wd * c + ch;
    V wk[K];
    unroll<K>([&](auto kw) { wk[kw] = simd::load<V>(w + (kh * K + kw) * c + ch); });
    // Input column iw0 + j feeds output pixel j - kw through tap kw.
    unroll<OW + K - 1>([&](auto j) {
      const int64_t iw = iw0 + j;
      if (!Interior && (iw < 0 || iw >= wd)) return;
      const V v = simd::load<V>(in + iw * c);
      unroll<K>([&](auto kw) {
        constexpr int64_t o = decltype(j)::value - decltype(kw)::value;
        if constexpr (o >= 0 && o < OW) acc[o] += v * wk[kw];
      });
    });
  }
  unroll<OW>([&](auto o) {
    const V v = acc[o];  // a copy: taking acc's address would keep the tile in memory
    if (Interior || o < valid) simd::store(y + (ow0 + o) * c + ch, v);
  });
}

// Every strip of one output row, channels [ch, ch + lanes).
template <int64_t K, int64_t OW, class T>
void forward_row(const T* x, const T* w, const T* bias, T* y, int64_t h, int64_t wd, int64_t c, int64_t pad,
                 int64_t oh, int64_t wo, int64_t ch) {
  for (int64_t ow0 = 0; ow0 < wo; ow0 += OW) {
    const int64_t valid = std::min(OW, wo - ow0);
    if (valid == OW && ow0 - pad >= 0 && ow0 - pad + OW + K - 1 <= wd)
      forward_strip<K, OW, true>(x, w, bias, y, h, wd, c, pad, oh, ow0, valid, ch);
    else
      forward_strip<K, OW, false>(x, w, bias, y, h, wd, c, pad, oh, ow0, valid, ch);
  }
}

// Plain loops over channels [c0, c1) of one output row: any kernel size, and
// the channels past the last whole vector.
template <class T>
void forward_row_plain(const T* x, const T* w, const T* bias, T* out, int64_t h, int64_t wd, int64_t c, int64_t k,
                       int64_t pad, int64_t oh, int64_t wo, int64_t c0, int64_t c1) {
  for (int64_t ow = 0; ow < wo; ++ow) {
    T* o = out + ow * c;
    for (int64_t ch = c0; ch < c1; ++ch) o[ch] = bias ? bias[ch] : T(0);
  }
  for (int64_t kh = 0; kh < k; ++kh) {
    const int64_t ih = oh + kh - pad;
    if (ih < 0 || ih >= h) continue;
    const T* in = x + ih * wd * c;
    for (int64_t kw = 0; kw < k; ++kw) {
      const T* wk = w + (kh * k + kw) * c;
      // Output columns whose input column ow + kw - pad is inside the image.
      const int64_t lo = std::max<int64_t>(0, pad - kw), hi = std::min<int64_t>(wo, wd + pad - kw);
      for (int64_t ow = lo; ow < hi; ++ow) {
        T* o = out + ow * c;
        const T* i = in + (ow + kw - pad) * c;
#pragma omp simd
        for (int64_t ch = c0; ch < c1; ++ch) o[ch] += i[ch] * wk[ch];
      }
    }
  }
}

// The filter gradient of one strip (as forward_strip): acc[kh * K + kw] +=
// sum over the strip's output pixels of dy * the input under tap (kh, kw).
template <int64_t K, int64_t OW, bool Interior, class T, class V>
[[gnu::always_inline]] inline void weight_grad_strip(const T* x, const T* dy_row, V* acc, int64_t h, int64_t wd,
                                                     int64_t c, int64_t pad, int64_t oh, int64_t ow0, int64_t valid,
                                                     int64_t ch) {
  V g[OW];
  unroll<OW>([&](auto o) { g[o] = Interior || o < valid ? simd::load<V>(dy_row + (ow0 + o) * c + ch) : V{}; });
  const int64_t iw0 = ow0 - pad;
  for (int64_t kh = 0; kh < K; ++kh) {
    const int64_t ih = oh + kh - pad;
    if (ih < 0 || ih >= h) continue;
    const T* in = x + ih * wd * c + ch;
    V t[K];
    unroll<K>([&](auto kw) { t[kw] = acc[kh * K + kw]; });
    unroll<OW + K - 1>([&](auto j) {
      const int64_t iw = iw0 + j;
      if (!Interior && (iw < 0 || iw >= wd)) return;
      const V v = simd::load<V>(in + iw * c);
      unroll<K>([&](auto kw) {
        constexpr int64_t o = decltype(j)::value - decltype(kw)::value;
        if constexpr (o >= 0 && o < OW) t[kw] += v * g[o];
      });
    });
    unroll<K>([&](auto kw) { acc[kh * K + kw] = t[kw]; });
  }
}

template <int64_t K, int64_t OW, class T, class V>
void weight_grad_row(const T* x, const T* dy_row, V* acc, int64_t h, int64_t wd, int64_t c, int64_t pad, int64_t oh,
                     int64_t wo, int64_t ch) {
  for (int64_t ow0 = 0; ow0 < wo; ow0 += OW) {
    const int64_t valid = std::min(OW, wo - ow0);
    if (valid == OW && ow0 - pad >= 0 && ow0 - pad + OW + K - 1 <= wd)
      weight_grad_strip<K, OW, true>(x, dy_row, acc, h, wd, c, pad, oh, ow0, valid, ch);
    else
      weight_grad_strip<K, OW, false>(x, dy_row, acc, h, wd, c, pad, oh, ow0, valid, ch);
  }
}

// Plain loops for channels [c0, c1): any kernel size, and the channels past
// the last whole vector.
template <class T>
void weight_grad_plain(const T* x, const T* dy, T* dw, T* db, int64_t n, int64_t h, int64_t wd, int64_t c, int64_t k,
                       int64_t pad, int64_t ho, int64_t wo, int64_t c0, int64_t c1) {
  for (int64_t r = 0; r < n * ho; ++r) {
    const int64_t b = r / ho, oh = r % ho;
    const T* g = dy + r * wo * c;
    if (db)
      for (int64_t ow = 0; ow < wo; ++ow) {
#pragma omp simd
        for (int64_t ch = c0; ch < c1; ++ch) db[ch] += g[ow * c + ch];
      }
    for (int64_t kh = 0; kh < k; ++kh) {
      const int64_t ih = oh + kh - pad;
      if (ih < 0 || ih >= h) continue;
      const T* in = x + (b * h + ih) * wd * c;
      for (int64_t kw = 0; kw < k; ++kw) {
        T* a = dw + (kh * k + kw) * c;
        const int64_t lo = std::max<int64_t>(0, pad - kw), hi = std::min<int64_t>(wo, wd + pad - kw);
        for (int64_t ow = lo; ow < hi; ++ow) {
          const T* i = in + (ow + kw - pad) * c;
          const T* gg = g + ow * c;
#pragma omp simd
          for (int64_t ch = c0; ch < c1; ++ch) a[ch] += i[ch] * gg[ch];
        }
      }
    }
  }
}

}  // namespace depthwise_nhwc_detail

// y[n, oh, ow, c] = bias[c] + sum_{kh, kw} x[n, oh + kh - pad, ow + kw - pad, c] * w[kh, kw, c]
// (w channels-last: [k, k, C]); out-of-range input pixels count as zero.
// bias may be null. Parallel over (output row, vector of channels).
template <class T>
void depthwise_conv_nhwc(cpu, const T* x, const T* w, const T* bias, T* y, int64_t n, int64_t h, int64_t wd,
                         int64_t c, int64_t k, int64_t pad, int64_t ho, int64_t wo) {
  namespace d = depthwise_nhwc_detail;
  constexpr int64_t lanes = simd::Vector<T>::lanes;
  const bool tiled = d::tiled_kernel_size(k);
  const int64_t vectors = tiled ? c / lanes : 0, tail = c - vectors * lanes;
  // Work items per output row: one per vector of channels, one for the rest.
  const int64_t items = vectors + (tail > 0 ? 1 : 0), rows = n * ho;
  const int64_t wide_strips = (wo + d::kWideStrip - 1) / d::kWideStrip;
  const bool narrow = wo <= d::kNarrowStrip || wo <= wide_strips * d::kNarrowStrip;  // e.g. 7 wide: one narrow strip
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, wo * lanes * k * k));
  parallel_for(rows * items, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t / items, item = t % items, b = r / ho, oh = r % ho;
      const T* xb = x + b * h * wd * c;
      T* out = y + r * wo * c;
      if (item == vectors) {
        d::forward_row_plain(xb, w, bias, out, h, wd, c, k, pad, oh, wo, vectors * lanes, c);
        continue;
      }
      d::with_kernel_size(k, [&](auto kk) {
        constexpr int64_t K = decltype(kk)::value;
        if (narrow)
          d::forward_row<K, d::kNarrowStrip>(xb, w, bias, out, h, wd, c, pad, oh, wo, item * lanes);
        else
          d::forward_row<K, d::kWideStrip>(xb, w, bias, out, h, wd, c, pad, oh, wo, item * lanes);
      });
    }
  });
}

// dw[kh, kw, c] += sum x[n, oh + kh - pad, ow + kw - pad, c] * dy[n, oh, ow, c]; db[c] += sum dy
// (db may be null). Parallel over vectors of channels: every channel has one
// writer and a fixed order of summation, whatever the thread count.
template <class T>
void depthwise_conv_nhwc_weight_grad(cpu, const T* x, const T* dy, T* dw, T* db, int64_t n, int64_t h,
                                     int64_t wd, int64_t c, int64_t k, int64_t pad, int64_t ho, int64_t wo) {
  namespace d = depthwise_nhwc_detail;
  using V = typename simd::Vector<T>::type;
  constexpr int64_t lanes = simd::Vector<T>::lanes;
  const bool tiled = d::tiled_kernel_size(k);
  const int64_t vectors = tiled ? c / lanes : 0, tail = c - vectors * lanes;
  const int64_t items = vectors + (tail > 0 ? 1 : 0);
  const int64_t wide_strips = (wo + d::kWideStrip - 1) / d::kWideStrip;
  const bool narrow = wo <= d::kNarrowStrip || wo <= wide_strips * d::kNarrowStrip;
  parallel_for(items, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t item = i0; item < i1; ++item) {
      if (item == vectors) {
        d::weight_grad_plain(x, dy, dw, db, n, h, wd, c, k, pad, ho, wo, vectors * lanes, c);
        continue;
      }
      const int64_t ch = item * lanes;
      d::with_kernel_size(k, [&](auto kk) {
        constexpr int64_t K = decltype(kk)::value;
        V acc[K * K] = {};
        V bias_acc{};
        for (int64_t r = 0; r < n * ho; ++r) {
          const int64_t b = r / ho, oh = r % ho;
          const T* xb = x + b * h * wd * c;
          const T* dy_row = dy + r * wo * c;
          if (narrow)
            d::weight_grad_row<K, d::kNarrowStrip>(xb, dy_row, acc, h, wd, c, pad, oh, wo, ch);
          else
            d::weight_grad_row<K, d::kWideStrip>(xb, dy_row, acc, h, wd, c, pad, oh, wo, ch);
          if (db)
            for (int64_t ow = 0; ow < wo; ++ow) bias_acc += simd::load<V>(dy_row + ow * c + ch);
        }
        for (int64_t tap = 0; tap < K * K; ++tap)
          for (int64_t l = 0; l < lanes; ++l) dw[tap * c + ch + l] += acc[tap][l];
        if (db)
          for (int64_t l = 0; l < lanes; ++l) db[ch + l] += bias_acc[l];
      });
    }
  });
}

}  // namespace stpain::backend

namespace stpain {

template <class B = cpu, class T = float>
class DepthwiseConv2dNHWC : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t channels = 0;
    int64_t kernel_size = 7;
    int64_t padding = -1;  // -1: kernel_size / 2 ("same" for odd kernels)
    bool bias = true;
  };

  DepthwiseConv2dNHWC(int64_t channels, int64_t kernel_size, int64_t padding = -1, bool bias = true)
      : DepthwiseConv2dNHWC(Options{channels, kernel_size, padding, bias}) {}
  explicit DepthwiseConv2dNHWC(const Options& o) : opt_(o) {
    if (opt_.padding < 0) opt_.padding = opt_.kernel_size / 2;
    STPAIN_CHECK(o.channels > 0 && o.kernel_size > 0, ShapeError, "DepthwiseConv2dNHWC: channels ", o.channels,
                 " and kernel_size ", o.kernel_size, " must be positive");
    weight = Parameter<T, B>::make({o.channels, 1, o.kernel_size, o.kernel_size});
    init_uniform_fan_in(weight.value, o.kernel_size * o.kernel_size);
    if (o.bias) {
      this->bias = Parameter<T, B>::make({o.channels});
      init_uniform_fan_in(this->bias.value, o.kernel_size * o.kernel_size);
    }
  }

  tensor forward(const tensor& x) {
    check_input(x);
    input_ = x;
    const auto [n, h, w, c] = dims(x);
    const int64_t k = opt_.kernel_size, p = opt_.padding, ho = h + 2 * p - k + 1, wo = w + 2 * p - k + 1;
    tensor y = tensor::empty({n, ho, wo, c});
    depthwise_conv_nhwc(B{}, x.data(), channels_last_weight(false).data(), opt_.bias ? bias.value.data() : nullptr,
                        y.data(), n, h, w, c, k, p, ho, wo);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "DepthwiseConv2dNHWC");
    const auto [n, h, w, c] = dims(input_);
    const int64_t k = opt_.kernel_size, p = opt_.padding, ho = h + 2 * p - k + 1, wo = w + 2 * p - k + 1;
    expect_shape(dy.shape(), Shape{n, ho, wo, c}, "DepthwiseConv2dNHWC.backward dy");
    // dx is the "full" correlation of dy with the flipped kernel: the same
    // kernel with padding k - 1 - p.
    tensor dx = tensor::empty(input_.shape());
    depthwise_conv_nhwc(B{}, dy.data(), channels_last_weight(true).data(), static_cast<const T*>(nullptr),
                        dx.data(), n, ho, wo, c, k, k - 1 - p, h, w);
    tensor dw = tensor::zeros({k, k, c});
    depthwise_conv_nhwc_weight_grad(B{}, input_.data(), dy.data(), dw.data(), opt_.bias ? bias.grad.data() : nullptr,
                                    n, h, w, c, k, p, ho, wo);
    add_taps_from_channels_last(B{}, dw.data(), weight.grad.data(), 1, c, k * k);
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + "weight", weight);
    if (opt_.bias) f(prefix + "bias", bias);
  }
  const Options& options() const { return opt_; }

  Parameter<T, B> weight, bias;

 private:
  static std::array<int64_t, 4> dims(const tensor& x) { return {x.size(0), x.size(1), x.size(2), x.size(3)}; }

  void check_input(const tensor& x) const {
    STPAIN_CHECK(x.rank() == 4 && x.size(3) == opt_.channels, ShapeError, "DepthwiseConv2dNHWC(", opt_.channels,
                 ", k=", opt_.kernel_size, "): input ", x.shape().str(), " is not [N, H, W, ", opt_.channels, "]");
    STPAIN_CHECK(x.size(1) + 2 * opt_.padding >= opt_.kernel_size && x.size(2) + 2 * opt_.padding >= opt_.kernel_size,
                 ShapeError, "DepthwiseConv2dNHWC(k=", opt_.kernel_size, ", padding=", opt_.padding, "): input ",
                 x.shape().str(), " is smaller than the kernel");
  }

  // weight [C, 1, k, k] -> [k, k, C], optionally spatially flipped.
  const tensor& channels_last_weight(bool flipped) {
    const int64_t c = opt_.channels;
    if (!weight_cl_.defined()) weight_cl_ = tensor::empty({opt_.kernel_size, opt_.kernel_size, c});
    taps_to_channels_last(B{}, weight.value.data(), weight_cl_.data(), 1, c, opt_.kernel_size * opt_.kernel_size, flipped);
    return weight_cl_;
  }

  Options opt_;
  tensor input_, weight_cl_;
};

}  // namespace stpain
