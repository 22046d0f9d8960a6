#pragma once
// Thrust kernels of NeighbourAttention (graph/neighbour_attention.hpp): the
// masked softmax over each node's neighbours, the weighted sums over the
// edges and their gradients. One work item per output value (or per frame and
// row for the softmax), each summing its edges in the cpu kernels' order.
#include <limits>

#include "stpain/backend/edge_lists.hpp"
#include "stpain/backend/thrust/policy.hpp"

namespace stpain::backend {

// coefs[s, e] = softmax over the edges of row r of logits[s, v(r), w(e)].
template <thrust_backend P, class T>
void graph_masked_softmax(P, const EdgeLists& g, const T* logits, T* coefs, int64_t frames) {
  const int64_t V = g.nodes, rows = g.rows(), edges = g.edges;
  const int64_t *off = g.offsets, *nb = g.neighbour;
  thrust_detail::for_n<P>(frames * rows, [=] STPAIN_HD(int64_t idx) {
    const int64_t s = idx / rows, r = idx % rows;
    const T* l = logits + (s * V + r % V) * V;
    T* c = coefs + s * edges;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t e = off[r]; e < off[r + 1]; ++e) m = l[nb[e]] > m ? l[nb[e]] : m;
    T sum = 0;
    for (int64_t e = off[r]; e < off[r + 1]; ++e) sum += c[e] = thrust_detail::exp_(l[nb[e]] - m);
    const T inv = sum > 0 ? T(1) / sum : T(0);
    for (int64_t e = off[r]; e < off[r + 1]; ++e) c[e] *= inv;
  });
}

// y[s, v, hop*F + i] = sum over row r = (hop, v) of coefs[s * coef_stride + e] x[s, w(e), i]
// (coef_stride 0: the same coefficients for every frame).
template <thrust_backend P, class T>
void graph_aggregate(P, const EdgeLists& g, const T* coefs, int64_t coef_stride, const T* x, T* y, int64_t frames,
                     int64_t f) {
  const int64_t V = g.nodes, h = g.hops, rows = g.rows();
  const int64_t *off = g.offsets, *nb = g.neighbour;
  thrust_detail::for_n<P>(frames * rows * f, [=] STPAIN_HD(int64_t idx) {
    const int64_t i = idx % f, r = idx / f % rows, s = idx / f / rows;
    const T* c = coefs + s * coef_stride;
    const T* xs = x + s * V * f + i;
    T sum = 0;
    for (int64_t e = off[r]; e < off[r + 1]; ++e) sum += c[e] * xs[nb[e] * f];
    y[(s * V + r % V) * f * h + r / V * f + i] = sum;
  });
}

// dx[s, w, i] = sum over the edges (hop, v, w) of coefs[s * coef_stride + e] dy[s, v, hop*F + i].
template <thrust_backend P, class T>
void graph_aggregate_backward(P, const EdgeLists& g, const T* coefs, int64_t coef_stride, const T* dy, T* dx,
                              int64_t frames, int64_t f) {
  const int64_t V = g.nodes, h = g.hops;
  const int64_t *off = g.reverse_offsets, *edge = g.reverse_edge, *row = g.reverse_row;
  thrust_detail::for_n<P>(frames * V * f, [=] STPAIN_HD(int64_t idx) {
    const int64_t i = idx % f, w = idx / f % V, s = idx / f / V;
    const T* c = coefs + s * coef_stride;
    const T* dys = dy + s * V * f * h + i;
    T sum = 0;
    for (int64_t k = off[w]; k < off[w + 1]; ++k) sum += c[edge[k]] * dys[row[k] * f];
    dx[(s * V + w) * f + i] = sum;
  });
}

// dcoefs[s, e] = dy[s, v(e), hop(e)*F : +F] . x[s, w(e), :].
template <thrust_backend P, class T>
void graph_edge_dots(P, const EdgeLists& g, const T* dy, const T* x, T* dcoefs, int64_t frames, int64_t f) {
  const int64_t V = g.nodes, h = g.hops, edges = g.edges;
  const int64_t *nb = g.neighbour, *row = g.row;
  thrust_detail::for_n<P>(frames * edges, [=] STPAIN_HD(int64_t idx) {
    const int64_t e = idx % edges, s = idx / edges, r = row[e];
    const T* d = dy + (s * V + r % V) * f * h + r / V * f;
    const T* xw = x + (s * V + nb[e]) * f;
    T dot = 0;
    for (int64_t i = 0; i < f; ++i) dot += d[i] * xw[i];
    dcoefs[s * edges + e] = dot;
  });
}

// dlogits[s, v, w(e)] += coefs * (dcoefs - sum over the row of coefs * dcoefs),
// one work item per (frame, v) doing its hops in order (two hops' rows of v
// write the same dlogits row).
template <thrust_backend P, class T>
void graph_masked_softmax_backward(P, const EdgeLists& g, const T* coefs, const T* dcoefs, T* dlogits, int64_t frames) {
  const int64_t V = g.nodes, h = g.hops, edges = g.edges;
  const int64_t *off = g.offsets, *nb = g.neighbour;
  thrust_detail::for_n<P>(frames * V, [=] STPAIN_HD(int64_t idx) {
    const int64_t v = idx % V, s = idx / V;
    const T* c = coefs + s * edges;
    const T* dc = dcoefs + s * edges;
    T* dl = dlogits + (s * V + v) * V;
    for (int64_t hop = 0; hop < h; ++hop) {
      const int64_t r = hop * V + v;
      T dot = 0;
      for (int64_t e = off[r]; e < off[r + 1]; ++e) dot += c[e] * dc[e];
      for (int64_t e = off[r]; e < off[r + 1]; ++e) dl[nb[e]] += c[e] * (dc[e] - dot);
    }
  });
}

}  // namespace stpain::backend
