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

// Inline<L>: a child whose parameters sit directly under the container's
// prefix, e.g. timm's ConvNeXt block owns "gamma" itself, not "ls.gamma".
template <class L>
struct Inline : L {
  using L::L;
  Inline(L layer) : L(std::move(layer)) {}
};

namespace detail {
template <class L>
struct is_named : std::false_type {};
template <fixed_string N, class L>
struct is_named<Named<N, L>> : std::true_type {};
template <class L>
struct is_inline : std::false_type {};
template <class L>
struct is_inline<Inline<L>> : std::true_type {};

// The prefix a container gives its i-th child: Named's name, the index, or
// nothing for Inline children.
template <class L>
std::string child_prefix(const std::string& prefix, size_t index) {
  if constexpr (is_inline<L>::value)
    return prefix;
  else if constexpr (is_named<L>::value)
    return prefix + L::name() + ".";
  else
    return prefix + std::to_string(index) + ".";
}
}  // namespace detail

}  // namespace stpain
