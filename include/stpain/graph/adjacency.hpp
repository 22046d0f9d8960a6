#pragma once
// Adjacency matrices of a landmark graph and the normalisations and
// partitions of ST-GCN (Yan et al. 2018, the reference implementation's
// graph.py): hop distances, k-hop reachability, symmetric and random-walk
// normalisation, and the uniform / distance / spatial partitions.
// Matrices are double precision Eigen matrices, indexed [node, node].
#include <Eigen/Core>

#include <limits>
#include <vector>

#include "stpain/core/error.hpp"
#include "stpain/graph/landmark_graphs.hpp"

namespace stpain {

// A graph at run time: what the functions below work on.
struct GraphSpec {
  int num_nodes = 0;
  std::vector<GraphEdge> edges;
  int center = 0;

  template <LandmarkGraph G>
  static GraphSpec of() {
    return {G::num_nodes, std::vector<GraphEdge>(G::edges.begin(), G::edges.end()), G::center};
  }
  void validate() const {
    for (const auto& e : edges)
      STPAIN_CHECK(e.a >= 0 && e.a < num_nodes && e.b >= 0 && e.b < num_nodes, Error, "graph edge (", e.a, ", ", e.b,
                   ") is outside 0..", num_nodes - 1);
    STPAIN_CHECK(center >= 0 && center < num_nodes, Error, "graph centre ", center, " is outside 0..", num_nodes - 1);
  }
};

// Symmetric 0/1 adjacency, with ones on the diagonal when self_links.
inline Eigen::MatrixXd adjacency_matrix(const GraphSpec& g, bool self_links = true) {
  g.validate();
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(g.num_nodes, g.num_nodes);
  for (const auto& e : g.edges) a(e.a, e.b) = a(e.b, e.a) = 1;
  if (self_links) a.diagonal().setOnes();
  return a;
}

// Stands for ST-GCN's infinite hop distance; compares greater than any hop.
inline constexpr int kUnreachable = std::numeric_limits<int>::max();

// Hop distance between every pair of nodes, kUnreachable beyond max_hop.
inline Eigen::MatrixXi hop_distance(const GraphSpec& g, int max_hop) {
  const Eigen::MatrixXd a = adjacency_matrix(g, false);
  Eigen::MatrixXi hops = Eigen::MatrixXi::Constant(g.num_nodes, g.num_nodes, kUnreachable);
  Eigen::MatrixXd reach = Eigen::MatrixXd::Identity(g.num_nodes, g.num_nodes);  // A^0
  for (int d = 0; d <= max_hop; ++d) {
    for (int i = 0; i < g.num_nodes; ++i)
      for (int j = 0; j < g.num_nodes; ++j)
        if (hops(i, j) == kUnreachable && reach(i, j) > 0) hops(i, j) = d;
    reach = (reach * a).unaryExpr([](double v) { return v > 0 ? 1.0 : 0.0; });
  }
  return hops;
}

// 1 where two nodes are at most k hops apart (the diagonal too when self_links).
inline Eigen::MatrixXd k_hop_reachability(const GraphSpec& g, int k, bool self_links = true) {
  const Eigen::MatrixXi hops = hop_distance(g, k);
  Eigen::MatrixXd r = hops.unaryExpr([k](int h) { return h > 0 && h <= k ? 1.0 : 0.0; }).cast<double>();
  if (self_links) r.diagonal().setOnes();
  return r;
}

// D^-1/2 A D^-1/2 (Kipf & Welling); isolated nodes stay zero.
inline Eigen::MatrixXd normalize_symmetric(const Eigen::MatrixXd& a) {
  const Eigen::VectorXd d = a.rowwise().sum();
  const Eigen::VectorXd inv = d.unaryExpr([](double v) { return v > 0 ? 1.0 / std::sqrt(v) : 0.0; });
  return inv.asDiagonal() * a * inv.asDiagonal();
}

// A D^-1 with D the column sums: every non-empty column sums to 1
// (ST-GCN's normalize_digraph).
inline Eigen::MatrixXd normalize_random_walk(const Eigen::MatrixXd& a) {
  const Eigen::VectorXd d = a.colwise().sum().transpose();
  const Eigen::VectorXd inv = d.unaryExpr([](double v) { return v > 0 ? 1.0 / v : 0.0; });
  return a * inv.asDiagonal();
}

enum class Partition { uniform, distance, spatial };

// ST-GCN's partitioned, normalised adjacency: K matrices [V, V] with
// K = 1 (uniform), max_hop + 1 (distance) or 2 * max_hop + 1 (spatial: root,
// centripetal, centrifugal relative to the centre node).
inline std::vector<Eigen::MatrixXd> stgcn_partitions(const GraphSpec& g, Partition strategy, int max_hop = 1,
                                                     int dilation = 1) {
  STPAIN_CHECK(max_hop >= 0 && dilation >= 1, Error, "stgcn_partitions: max_hop ", max_hop, ", dilation ", dilation);
  const int v = g.num_nodes;
  const Eigen::MatrixXi hops = hop_distance(g, max_hop);
  std::vector<int> valid;
  for (int h = 0; h <= max_hop; h += dilation) valid.push_back(h);
  Eigen::MatrixXd reach = Eigen::MatrixXd::Zero(v, v);
  for (int h : valid) reach += hops.unaryExpr([h](int x) { return x == h ? 1.0 : 0.0; }).cast<double>();
  const Eigen::MatrixXd norm = normalize_random_walk(reach);
  auto at_hop = [&](int h) { return hops.unaryExpr([h](int x) { return x == h ? 1.0 : 0.0; }).cast<double>(); };

  std::vector<Eigen::MatrixXd> parts;
  if (strategy == Partition::uniform) {
    parts.push_back(norm);
  } else if (strategy == Partition::distance) {
    for (int h : valid) parts.push_back(norm.cwiseProduct(at_hop(h)));
  } else {
    const auto to_center = [&](int node) { return hops(node, g.center); };
    for (int h : valid) {
      Eigen::MatrixXd root = Eigen::MatrixXd::Zero(v, v), close = root, further = root;
      for (int i = 0; i < v; ++i)
        for (int j = 0; j < v; ++j) {
          if (hops(j, i) != h) continue;
          if (to_center(j) == to_center(i))
            root(j, i) = norm(j, i);
          else if (to_center(j) > to_center(i))
            close(j, i) = norm(j, i);
          else
            further(j, i) = norm(j, i);
        }
      if (h == 0) {
        parts.push_back(root);
      } else {
        parts.push_back(root + close);
        parts.push_back(further);
      }
    }
  }
  return parts;
}

}  // namespace stpain
