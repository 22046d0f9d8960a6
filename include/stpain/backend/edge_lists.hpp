#pragma once
// The edges of NeighbourAttention's hop masks as its kernels read them: plain
// pointers into the backend's memory, so one struct serves the cpu loops and
// the thrust kernels (backend/thrust/graph_attention.hpp).
#include <cstdint>

namespace stpain::backend {

struct EdgeLists {
  int64_t nodes = 0, hops = 0, edges = 0;
  // Edge e = (hop, v, w) with mask_hop[v, w] = 1, grouped by row r = hop * V + v:
  // row r holds edges [offsets[r], offsets[r + 1]); neighbour[e] = w, row[e] = r.
  const int64_t* offsets = nullptr;
  const int64_t* neighbour = nullptr;
  const int64_t* row = nullptr;
  // The same edges grouped by w (for the input gradient): node w holds slots
  // [reverse_offsets[w], reverse_offsets[w + 1]); reverse_edge[slot] is the
  // edge, reverse_row[slot] = v * hops + hop its row of dy viewed as [V * hops, F].
  const int64_t* reverse_offsets = nullptr;
  const int64_t* reverse_edge = nullptr;
  const int64_t* reverse_row = nullptr;

  int64_t rows() const { return hops * nodes; }
};

}  // namespace stpain::backend
