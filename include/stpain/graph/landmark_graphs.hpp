#pragma once
// The 68-point face landmark graphs, as types with compile-time edge lists.
//   Dlib68Contour   dlib's drawing connectivity (65 edges): jaw, brows, nose,
//                   eyes and lips as chains and loops.
//   FaceMesh68      the paper authors' triangulated mesh (174 edges, 0-based
//                   dlib indices as they wrote them).
//   ShiftedByOne<G> the authors' code subtracts 1 from every index as if it
//                   were 1-based, so node k gets point k+1's neighbourhood and
//                   index -1 wraps to 67. Only for reproducing their numbers:
//                   the intended graph is G itself.
// A graph type provides num_nodes, edges (pairs, undirected, no self-links),
// a centre node (the nose tip, 30, for ST-GCN's spatial partition) and a name.
#include <array>
#include <concepts>
#include <string_view>

namespace stpain {

struct GraphEdge {
  int a, b;
};

struct Dlib68Contour {
  static constexpr std::string_view name = "contour";
  static constexpr int num_nodes = 68;
  static constexpr int center = 30;
  static constexpr auto edges = [] {
    std::array<GraphEdge, 65> e{};
    int n = 0;
    auto chain = [&](int from, int to) {
      for (int i = from; i < to; ++i) e[n++] = {i, i + 1};
    };
    auto loop = [&](int from, int to) {
      chain(from, to);
      e[n++] = {to, from};
    };
    chain(0, 16);   // jaw
    chain(17, 21);  // right brow
    chain(22, 26);  // left brow
    chain(27, 30);  // nose bridge
    chain(30, 35);  // lower nose 30-31-...-35
    e[n++] = {30, 35};
    loop(36, 41);  // right eye
    loop(42, 47);  // left eye
    loop(48, 59);  // outer lips
    loop(60, 67);  // inner lips
    return e;
  }();
};

struct FaceMesh68 {
  static constexpr std::string_view name = "mesh";
  static constexpr int num_nodes = 68;
  static constexpr int center = 30;
  static constexpr std::array<GraphEdge, 174> edges = {{
      {0, 36}, {0, 1}, {0, 17}, {1, 2}, {1, 36}, {1, 41}, {2, 3}, {2, 31}, {2, 41}, {3, 4},
      {3, 31}, {3, 48}, {4, 5}, {4, 48}, {5, 6}, {5, 48}, {6, 7}, {6, 48}, {6, 59}, {7, 8},
      {7, 58}, {7, 59}, {8, 9}, {8, 56}, {8, 57}, {8, 58}, {9, 10}, {9, 55}, {9, 56}, {10, 11},
      {10, 54}, {10, 55}, {11, 12}, {11, 54}, {12, 13}, {12, 54}, {13, 14}, {12, 35}, {13, 54}, {14, 15},
      {14, 35}, {14, 46}, {15, 16}, {15, 45}, {15, 46}, {16, 26}, {16, 45}, {17, 18}, {17, 36}, {18, 19},
      {18, 36}, {18, 37}, {19, 20}, {19, 37}, {19, 38}, {20, 21}, {20, 38}, {20, 39}, {20, 23}, {21, 22},
      {21, 23}, {21, 27}, {21, 39}, {22, 23}, {22, 27}, {22, 42}, {23, 24}, {23, 42}, {23, 43}, {24, 25},
      {24, 43}, {24, 44}, {25, 26}, {25, 44}, {25, 45}, {26, 45}, {27, 28}, {27, 39}, {27, 42}, {28, 29},
      {28, 39}, {28, 42}, {29, 30}, {29, 39}, {29, 40}, {29, 42}, {29, 47}, {30, 31}, {30, 32}, {30, 33},
      {30, 34}, {30, 35}, {31, 32}, {31, 40}, {31, 41}, {31, 48}, {30, 49}, {31, 50}, {32, 33}, {32, 50},
      {32, 51}, {33, 34}, {33, 51}, {34, 35}, {34, 51}, {34, 52}, {35, 46}, {35, 47}, {35, 52}, {35, 53},
      {35, 54}, {36, 37}, {36, 41}, {37, 38}, {37, 40}, {37, 41}, {38, 39}, {38, 40}, {39, 40}, {40, 41},
      {42, 43}, {42, 47}, {43, 44}, {43, 47}, {44, 45}, {44, 46}, {44, 47}, {45, 46}, {46, 47}, {48, 49},
      {48, 59}, {48, 60}, {49, 50}, {49, 60}, {49, 61}, {50, 51}, {50, 61}, {50, 62}, {51, 52}, {51, 62},
      {52, 53}, {52, 62}, {52, 63}, {53, 54}, {53, 63}, {53, 64}, {54, 55}, {54, 64}, {55, 56}, {55, 64},
      {55, 65}, {56, 57}, {56, 65}, {56, 66}, {57, 58}, {57, 66}, {58, 59}, {58, 66}, {58, 67}, {59, 40},
      {59, 67}, {60, 61}, {60, 67}, {61, 62}, {61, 66}, {61, 67}, {62, 63}, {62, 66}, {63, 64}, {63, 65},
      {63, 66}, {64, 65}, {65, 66}, {66, 67},
  }};
};

template <class G>
struct ShiftedByOne {
  static constexpr std::string_view name = "shifted";
  static constexpr int num_nodes = G::num_nodes;
  static constexpr int center = G::center;
  static constexpr auto edges = [] {
    auto e = G::edges;
    for (auto& edge : e) {
      edge.a = (edge.a - 1 + num_nodes) % num_nodes;
      edge.b = (edge.b - 1 + num_nodes) % num_nodes;
    }
    return e;
  }();
};

template <class G>
concept LandmarkGraph = requires {
  { G::num_nodes } -> std::convertible_to<int>;
  { G::center } -> std::convertible_to<int>;
  G::edges.size();
};

}  // namespace stpain
