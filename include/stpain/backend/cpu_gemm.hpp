#pragma once
// gemm_nt: C[M, N] = A[M, K] B[N, K]^T (+ bias, then an epilogue), the product
// of a Linear layer (B is its weight, [out_features, in_features]) and of the
// patchify convolutions, with register-tiled kernels written for the shapes
// of channels-last networks: M = N*H*W rows (hundreds to tens of thousands),
// K and N from a few dozen to a few thousand.
//
// Why not only OpenBLAS: the build's OpenBLAS runs its AVX2 kernels when the
// environment sets OPENBLAS_CORETYPE=Haswell (as the development machine once
// did) and then reaches ~130-185 GFLOP/s on 2 cores for these shapes; this
// kernel uses the build's full vector width (-march=native: ~340-390 GFLOP/s
// on the same shapes, 2 Zen 5 cores; 170-184 per Intel Xeon core, where
// OpenBLAS' SkylakeX kernels give 100-177) and adds the bias while each
// output tile is in registers. An optional epilogue runs on each finished
// tile while it is in L1 (for fusing elementwise work; the layers do not use
// one at present: GELU is compute-bound and measured as fast in its own
// pass). pack_b() packs a B once for many products with it (gemm_nt overload
// taking a PackedB): an LSTM's recurrent weight over the steps.
//
// Scheme (BLIS-like): B is packed, per block of KC x NC, into panels of NR
// columns ([KC][NR], zero-padded past N) that stay in L2; each MR x NR tile of
// C accumulates in registers over the block's KC steps, reading A's rows in
// place (an MR x KC slice stays in L1/L2 across the block's panels) and one
// vector pair of the packed panel per step. The cores split M (many rows) or
// N (few rows: each packs only its share of B).
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "stpain/backend/simd.hpp"
#include "stpain/core/parallel.hpp"
#if defined(__CUDACC__)
#include "stpain/backend/cpu.hpp"
#endif

namespace stpain::backend {

namespace gemm_detail {

using simd::unroll;

// Register tile: MR rows by NV vectors. With 32 vector registers (AVX-512):
// 12 x 2 = 24 accumulators, 2 for the B panel, the rest for A broadcasts.
// With 16 (AVX2): 6 x 2.
template <class T>
struct Tile {
  static constexpr int64_t lanes = simd::Vector<T>::lanes;
  static constexpr int64_t NV = 2;
  static constexpr int64_t NR = NV * lanes;
  static constexpr int64_t MR = simd::kRegisters >= 32 ? 12 : 6;
};

// Block sizes: at most KC steps per pass over a tile (the tile's MR rows of A
// come from L1/L2, its C values are loaded and stored once per pass), and a
// packed block of B of about kPackedBytes (in L2). K = 768 runs in one pass,
// larger K in equal passes. (Measured on Zen 5, 1 MiB L2: KC 384..1024 and
// 256..768 KiB blocks are within a few percent of each other.)
inline constexpr int64_t kMaxKC = 768;
inline constexpr int64_t kPackedBytes = 384 << 10;

// A 64-byte aligned scratch buffer per thread, kept between calls.
template <class T>
T* thread_buffer(size_t count) {
  struct Buffer {
    T* data = nullptr;
    size_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buf;
  if (buf.size < count) {
    std::free(buf.data);
    buf.size = 0;
    buf.data = static_cast<T*>(std::aligned_alloc(64, (count * sizeof(T) + 63) / 64 * 64));
    if (!buf.data) throw std::bad_alloc();
    buf.size = count;
  }
  return buf.data;
}

// Transposes a square block of vectors in registers: afterwards r[i][l] is
// the former r[l][i]. log2(lanes) rounds of two-input shuffles, each swapping
// the off-diagonal d x d blocks of rows i and i + d.
template <class T>
[[gnu::always_inline]] inline void transpose_in_registers(typename simd::Vector<T>::type* r) {
  using V = typename simd::Vector<T>::type;
  using Index = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef Index Mask __attribute__((vector_size(sizeof(V))));
  constexpr int64_t L = simd::Vector<T>::lanes;
  auto round = [&](auto dc) {
    constexpr int64_t d = decltype(dc)::value;
    Mask lo, hi;  // constants after unrolling
    for (int64_t l = 0; l < L; ++l) {
      lo[l] = static_cast<Index>((l & d) == 0 ? l : L + l - d);
      hi[l] = static_cast<Index>((l & d) == 0 ? l + d : L + l);
    }
    unroll<L>([&](auto i) {
      if constexpr ((decltype(i)::value & d) == 0) {
        const V a = r[i], b = r[i + d];
        r[i] = __builtin_shuffle(a, b, lo);
        r[i + d] = __builtin_shuffle(a, b, hi);
      }
    });
  };
  [&]<int64_t... S>(std::integer_sequence<int64_t, S...>) {
    (round(std::integral_constant<int64_t, L / (int64_t{2} << S)>{}), ...);  // L >> (S + 1); nvcc misparses ">>" here
  }(std::make_integer_sequence<int64_t, std::countr_zero(static_cast<uint64_t>(L))>{});
}

// Packs columns [n0, n0 + cols) and steps [k0, k0 + kc) of B[N, K] (row stride
// ldb) into one panel dst[kc][NR]; columns past `cols` are zero. Whole
// lanes x lanes blocks go through registers (a transpose), the rest one by one.
template <class T>
void pack_panel(const T* b, int64_t ldb, int64_t n0, int64_t cols, int64_t k0, int64_t kc, T* dst) {
  using V = typename simd::Vector<T>::type;
  constexpr int64_t NR = Tile<T>::NR, L = simd::Vector<T>::lanes;
  int64_t k_done = 0;
  if (cols == NR) {
    k_done = kc / L * L;
    for (int64_t jb = 0; jb < NR; jb += L) {
      const T* src = b + (n0 + jb) * ldb + k0;
      for (int64_t k = 0; k < k_done; k += L) {
        V r[L];
        unroll<L>([&](auto i) { r[i] = simd::load<V>(src + i * ldb + k); });
        transpose_in_registers<T>(r);
        unroll<L>([&](auto i) { simd::store(dst + (k + i) * NR + jb, r[i]); });
      }
    }
  }
  for (int64_t j = 0; j < cols; ++j) {
    const T* src = b + (n0 + j) * ldb + k0;
    for (int64_t k = k_done; k < kc; ++k) dst[k * NR + j] = src[k];
  }
  for (int64_t j = cols; j < NR; ++j)
    for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = T(0);
}

// One MR x NR tile: c = (load_c ? c : init) + a[0:MR, 0:kc] * panel, where
// init is the bias (NR values) or zero. `a` is A's rows in place (stride lda).
// The loops are plain loops that GCC unrolls completely, so the accumulators
// become registers. (Written with simd::unroll's lambdas, the closure holds
// acc's address: GCC 12 then keeps acc in memory and stores all MR x NV
// accumulators on every k step, which halved the speed on cores with one
// 512-bit store per cycle.)
template <int64_t MR, class T>
[[gnu::always_inline]] inline void kernel(int64_t kc, const T* a, int64_t lda, const T* panel, const T* bias,
                                          bool load_c, T* c, int64_t ldc) {
  using V = typename simd::Vector<T>::type;
  constexpr int64_t NV = Tile<T>::NV, NR = Tile<T>::NR, lanes = Tile<T>::lanes;
  V acc[MR * NV];
#pragma GCC unroll 64
  for (int64_t i = 0; i < MR * NV; ++i)
    acc[i] = load_c ? simd::load<V>(c + (i / NV) * ldc + (i % NV) * lanes)
             : bias ? simd::load<V>(bias + (i % NV) * lanes)
                    : V{};
  for (int64_t k = 0; k < kc; ++k) {
    V b[NV];
#pragma GCC unroll 8
    for (int64_t j = 0; j < NV; ++j) b[j] = simd::load<V>(panel + k * NR + j * lanes);
#pragma GCC unroll 32
    for (int64_t r = 0; r < MR; ++r) {
      const T av = a[r * lda + k];
#pragma GCC unroll 8
      for (int64_t j = 0; j < NV; ++j) acc[r * NV + j] += av * b[j];
    }
  }
#pragma GCC unroll 64
  for (int64_t i = 0; i < MR * NV; ++i) simd::store(c + (i / NV) * ldc + (i % NV) * lanes, acc[i]);
}

// A tile of `rows` <= MR rows and `cols` <= NR columns. Partial column tiles
// go through a local MR x NR buffer.
template <class T>
void tile(int64_t rows, int64_t cols, int64_t kc, const T* a, int64_t lda, const T* panel, const T* bias,
          bool load_c, T* c, int64_t ldc) {
  constexpr int64_t MR = Tile<T>::MR, NR = Tile<T>::NR;
  alignas(64) T local[MR * NR];
  T* out = c;
  int64_t ldo = ldc;
  if (cols < NR) {
    out = local;
    ldo = NR;
    if (load_c)
      for (int64_t r = 0; r < rows; ++r) std::copy(c + r * ldc, c + r * ldc + cols, local + r * NR);
  }
  [&]<int64_t... R>(std::integer_sequence<int64_t, R...>) {
    // rows == R + 1 picks kernel<R + 1>.
    ((rows == R + 1 ? (kernel<R + 1>(kc, a, lda, panel, bias, load_c, out, ldo), 0) : 0), ...);
  }(std::make_integer_sequence<int64_t, MR>{});
  if (cols < NR)
    for (int64_t r = 0; r < rows; ++r) std::copy(local + r * NR, local + r * NR + cols, c + r * ldc);
}

// The k blocks of a product with inner dimension k: block kb is [k0, k0 + kc).
inline int64_t k_blocks(int64_t k) { return (k + kMaxKC - 1) / kMaxKC; }
inline void k_block(int64_t k, int64_t kb, int64_t& k0, int64_t& kc) {
  k0 = k * kb / k_blocks(k);
  kc = k * (kb + 1) / k_blocks(k) - k0;
}

// pack_b's layout of a B with n columns: per k block, every panel in turn.
// Where panel q of the block [k0, k0 + kc) starts.
template <class T>
int64_t packed_panel_offset(int64_t n, int64_t k0, int64_t kc, int64_t q) {
  constexpr int64_t NR = Tile<T>::NR;
  return (k0 * ((n + NR - 1) / NR) + q * kc) * NR;
}

// Rows [m0, m1) and columns [n0, n1) of C on the calling thread. With
// `prepacked` (pack_b's panels of the whole B, n columns) B is not packed here.
template <class T, class Epilogue>
void gemm_nt_range(const T* a, int64_t lda, const T* b, int64_t ldb, const T* prepacked, int64_t n, const T* bias, T* c,
                   int64_t ldc, int64_t k, int64_t m0, int64_t m1, int64_t n0, int64_t n1, const Epilogue& epilogue) {
  constexpr int64_t MR = Tile<T>::MR, NR = Tile<T>::NR;
  const int64_t kc_max = (k + k_blocks(k) - 1) / k_blocks(k);
  const int64_t nc_max = std::max<int64_t>(NR, kPackedBytes / static_cast<int64_t>(sizeof(T)) / std::max<int64_t>(kc_max, 1) / NR * NR);
  const int64_t panels_max = (std::min(nc_max, n1 - n0) + NR - 1) / NR;
  T* packed = thread_buffer<T>(static_cast<size_t>(panels_max * (kc_max * NR + NR)));
  T* packed_bias = packed + panels_max * kc_max * NR;
  for (int64_t nc0 = n0; nc0 < n1; nc0 += nc_max) {
    const int64_t nc = std::min(nc_max, n1 - nc0), panels = (nc + NR - 1) / NR;
    if (bias) {
      std::fill(packed_bias, packed_bias + panels * NR, T(0));
      std::copy(bias + nc0, bias + nc0 + nc, packed_bias);
    }
    for (int64_t kb = 0; kb < k_blocks(k); ++kb) {
      int64_t k0, kc;
      k_block(k, kb, k0, kc);
      // The block's panels: packed here, or already in the layout of pack_b().
      const T* block = prepacked ? prepacked + packed_panel_offset<T>(n, k0, kc, nc0 / NR) : packed;
      if (!prepacked)
        for (int64_t p = 0; p < panels; ++p)
          pack_panel(b, ldb, nc0 + p * NR, std::min(NR, nc - p * NR), k0, kc, packed + p * kc * NR);
      const bool first = kb == 0, last = kb == k_blocks(k) - 1;
      for (int64_t mt = m0; mt < m1; mt += MR) {
        const int64_t rows = std::min(MR, m1 - mt);
        for (int64_t p = 0; p < panels; ++p) {
          const int64_t col = nc0 + p * NR, cols = std::min(NR, nc - p * NR);
          tile(rows, cols, kc, a + mt * lda + k0, lda, block + p * kc * NR,
               first && bias ? packed_bias + p * NR : static_cast<const T*>(nullptr), !first, c + mt * ldc + col, ldc);
          if (last) epilogue(mt, rows, col, cols, c + mt * ldc + col, ldc);
        }
      }
    }
  }
}

}  // namespace gemm_detail

// B [N, K] packed once into gemm_nt's panels, for many products with the same
// B (an LSTM's recurrent weight, step after step): per k block, every panel.
template <class T>
struct PackedB {
  int64_t n = 0, k = 0;
  std::vector<T> panels;
};

// An epilogue that leaves the product as it is.
struct NoEpilogue {
  template <class T>
  void operator()(int64_t, int64_t, int64_t, int64_t, T*, int64_t) const {}
};

// C[m, n] = sum_k A[m, k] B[n, k] (+ bias[n]) for m < M, n < N: A [M, K] with
// row stride lda, B [N, K] with row stride ldb, C [M, N] with row stride ldc
// (overwritten; must not overlap A or B). bias may be null.
// epilogue(row0, rows, col0, cols, tile, ldc) is then called once on every
// finished block of C (at most 12 x 32 values, still in L1): tile points at
// C[row0, col0]. Uses all threads unless called inside a parallel region.
#if defined(__CUDACC__)
// nvcc's host pass cannot compile the vector code above once instantiated
// (__builtin_shuffle: an internal compiler error), so a .cu translation unit
// gets OpenBLAS, under another name (no clash with the g++ instantiations).
inline namespace nvcc_host {
template <class T, class Epilogue = NoEpilogue>
void gemm_nt(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, const T* bias, T* c,
             int64_t ldc, const Epilogue& epilogue = {}) {
  if (m <= 0 || n <= 0) return;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = bias ? bias[j] : T(0);
  if (k > 0) cpu::gemm(false, true, m, n, k, T(1), a, lda, b, ldb, T(1), c, ldc);
  epilogue(int64_t{0}, m, int64_t{0}, n, c, ldc);
}
template <class T>
PackedB<T> pack_b(const T* b, int64_t ldb, int64_t n, int64_t k) {  // here: a plain copy of B
  PackedB<T> packed{n, k, std::vector<T>(static_cast<size_t>(n * k))};
  for (int64_t j = 0; j < n; ++j) std::copy(b + j * ldb, b + j * ldb + k, packed.panels.data() + j * k);
  return packed;
}
template <class T, class Epilogue = NoEpilogue>
void gemm_nt(int64_t m, const T* a, int64_t lda, const PackedB<T>& b, const T* bias, T* c, int64_t ldc,
             const Epilogue& epilogue = {}) {
  gemm_nt(m, b.n, b.k, a, lda, b.panels.data(), b.k, bias, c, ldc, epilogue);
}
}  // namespace nvcc_host
#else
namespace gemm_detail {
template <class T, class Epilogue>
void gemm_nt_dispatch(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb,
                      const T* prepacked, const T* bias, T* c, int64_t ldc, const Epilogue& epilogue) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum: bias (or zero), then the epilogue
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = bias ? bias[j] : T(0);
    epilogue(int64_t{0}, m, int64_t{0}, n, c, ldc);
    return;
  }
  constexpr int64_t MR = Tile<T>::MR, NR = Tile<T>::NR;
  const int64_t m_tiles = (m + MR - 1) / MR, n_panels = (n + NR - 1) / NR;
  // Below ~1 MFLOP a second thread costs more than it saves.
  int64_t parts = 2 * m * n * k < (int64_t{1} << 20) ? 1 : num_threads();
#if defined(_OPENMP)
  if (omp_in_parallel()) parts = 1;
#endif
  // Split N when B (N x K) is large next to A's share of rows: each thread
  // then packs only its columns. Otherwise split M.
  const bool split_n = n_panels >= 2 * parts && m < 4 * n;
  parts = std::min(parts, split_n ? n_panels : m_tiles);
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      if (split_n) {
        const int64_t c0 = n_panels * p / parts * NR, c1 = std::min(n, n_panels * (p + 1) / parts * NR);
        gemm_nt_range(a, lda, b, ldb, prepacked, n, bias, c, ldc, k, int64_t{0}, m, c0, c1, epilogue);
      } else {
        const int64_t r0 = m_tiles * p / parts * MR, r1 = std::min(m, m_tiles * (p + 1) / parts * MR);
        gemm_nt_range(a, lda, b, ldb, prepacked, n, bias, c, ldc, k, r0, r1, int64_t{0}, n, epilogue);
      }
    }
  });
}
}  // namespace gemm_detail

template <class T, class Epilogue = NoEpilogue>
void gemm_nt(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, const T* bias, T* c,
             int64_t ldc, const Epilogue& epilogue = {}) {
  gemm_detail::gemm_nt_dispatch(m, n, k, a, lda, b, ldb, static_cast<const T*>(nullptr), bias, c, ldc, epilogue);
}

template <class T>
PackedB<T> pack_b(const T* b, int64_t ldb, int64_t n, int64_t k) {
  constexpr int64_t NR = gemm_detail::Tile<T>::NR;
  const int64_t n_panels = (n + NR - 1) / NR;
  PackedB<T> packed{n, k, std::vector<T>(static_cast<size_t>(n_panels * NR * k))};
  for (int64_t kb = 0; kb < gemm_detail::k_blocks(k); ++kb) {
    int64_t k0, kc;
    gemm_detail::k_block(k, kb, k0, kc);
    for (int64_t q = 0; q < n_panels; ++q)
      gemm_detail::pack_panel(b, ldb, q * NR, std::min(NR, n - q * NR), k0, kc,
                              packed.panels.data() + gemm_detail::packed_panel_offset<T>(n, k0, kc, q));
  }
  return packed;
}

// gemm_nt with B packed by pack_b (the same sums, without packing B again).
template <class T, class Epilogue = NoEpilogue>
void gemm_nt(int64_t m, const T* a, int64_t lda, const PackedB<T>& b, const T* bias, T* c, int64_t ldc,
             const Epilogue& epilogue = {}) {
  gemm_detail::gemm_nt_dispatch(m, b.n, b.k, a, lda, static_cast<const T*>(nullptr), int64_t{0}, b.panels.data(), bias,
                                c, ldc, epilogue);
}
#endif  // __CUDACC__

}  // namespace stpain::backend
