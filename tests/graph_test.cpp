#include <catch2/catch.hpp>

#include "stpain/graph/adjacency.hpp"
#include "support/fixtures.hpp"

using namespace stpain;
using namespace stpain::testing;

namespace {
// The fixture stores matrices sparsely: shape, flat nonzero positions, values.
Tensor<double> load_sparse(const safetensors::File& f, const std::string& key) {
  const auto shape = f.load_integers(key + ".shape");
  Tensor<double> dense{Shape(shape)};
  const auto index = f.load_integers(key + ".index");
  const Tensor<double> values = f.load<double>(key + ".values");
  for (size_t i = 0; i < index.size(); ++i) dense[index[i]] = values[static_cast<int64_t>(i)];
  return dense;
}

void expect_equal(const Eigen::MatrixXd& m, const Tensor<double>& expected, const std::string& what) {
  INFO(what);
  REQUIRE(expected.numel() == m.size());
  const auto e = expected.matrix(m.rows(), m.cols());
  CHECK((m - e).cwiseAbs().maxCoeff() < 1e-12);
}

template <LandmarkGraph G>
void expect_reference(const safetensors::File& f, const std::string& name) {
  const GraphSpec g = GraphSpec::of<G>();
  expect_equal(adjacency_matrix(g), load_sparse(f, name + ".adjacency"), name + " adjacency");
  expect_equal(k_hop_reachability(g, 2), load_sparse(f, name + ".two_hop"), name + " 2-hop");
  for (const auto& [key, strategy, hops] :
       {std::tuple{"uniform", Partition::uniform, 1}, std::tuple{"distance2", Partition::distance, 2},
        std::tuple{"spatial1", Partition::spatial, 1}, std::tuple{"spatial2", Partition::spatial, 2}}) {
    const auto parts = stgcn_partitions(g, strategy, hops);
    const Tensor<double> ref = load_sparse(f, name + "." + key);
    REQUIRE(static_cast<int64_t>(parts.size()) == ref.size(0));
    for (size_t k = 0; k < parts.size(); ++k)
      expect_equal(parts[k], ref.slice(static_cast<int64_t>(k), static_cast<int64_t>(k) + 1),
                   name + " " + key + " partition " + std::to_string(k));
  }
}
}  // namespace

TEST_CASE("the landmark graphs have the published edges") {
  CHECK(FaceMesh68::edges.size() == 174);
  CHECK(Dlib68Contour::edges.size() == 65);
  const auto a = adjacency_matrix(GraphSpec::of<FaceMesh68>(), false);
  CHECK(a.sum() == 2 * 174);  // no duplicate or self edges
  CHECK((a - a.transpose()).cwiseAbs().maxCoeff() == 0);
  // The authors' shift: node k takes point k+1's neighbours, 0 wraps to 67.
  const auto shifted = adjacency_matrix(GraphSpec::of<ShiftedByOne<FaceMesh68>>(), false);
  CHECK(shifted(67, 35) == 1);  // mesh edge (0, 36)
  CHECK(shifted(29, 48) == 1);  // mesh edge (30, 49)
  CHECK(a(29, 48) == 0);
}

TEST_CASE("adjacency, 2-hop reachability and ST-GCN partitions equal the reference construction") {
  const safetensors::File f(fixture_path("graphs.safetensors"));
  expect_reference<FaceMesh68>(f, "mesh");
  expect_reference<Dlib68Contour>(f, "contour");
  expect_reference<ShiftedByOne<FaceMesh68>>(f, "shifted");
}

TEST_CASE("normalisations: symmetric and random walk") {
  const auto a = adjacency_matrix(GraphSpec::of<Dlib68Contour>());
  const auto rw = normalize_random_walk(a);
  CHECK((rw.colwise().sum().array() - 1).abs().maxCoeff() < 1e-12);
  const auto sym = normalize_symmetric(a);
  CHECK((sym - sym.transpose()).cwiseAbs().maxCoeff() < 1e-15);
  const double d0 = a.row(0).sum(), d1 = a.row(1).sum();
  CHECK(sym(0, 1) == Approx(1.0 / std::sqrt(d0 * d1)));
  CHECK_THROWS_WITH(adjacency_matrix(GraphSpec{3, {{0, 5}}, 0}), Catch::Contains("(0, 5)"));
}
