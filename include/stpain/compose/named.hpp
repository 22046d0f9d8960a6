#pragma once
// Named<"fc1", Linear<cpu>>: a layer that a container names "fc1" instead of
// its index, so parameter names match PyTorch modules ("mlp.fc1.weight").
#include <algorithm>
#include <cstddef>
#include <string>

namespace stpain {

// A string usable as a template argument.
template <size_t N>
struct fixed_string {
  char value[N];
  constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, value); }
  std::string str() const { return std::string(value, N - 1); }
};

template <fixed_string Name, class L>
struct Named : L {
  using L::L;
  Named(L layer) : L(std::move(layer)) {}
  static std::string name() { return Name.str(); }
};

namespace detail {
template <class L>
struct is_named : std::false_type {};
template <fixed_string N, class L>
struct is_named<Named<N, L>> : std::true_type {};

// The name a container gives its i-th child: Named's name, else the index.
template <class L>
std::string child_name(size_t index) {
  if constexpr (is_named<L>::value)
    return L::name();
  else
    return std::to_string(index);
}
}  // namespace detail

}  // namespace stpain
