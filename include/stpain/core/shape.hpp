#pragma once
// Runtime tensor shape: a short list of extents, row-major.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "stpain/core/error.hpp"

namespace stpain {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) { validate(); }
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) { validate(); }

  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims_) n *= d;
    return n;
  }
  // Extent of dimension i; negative i counts from the end as in PyTorch.
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(axis(i))]; }
  int64_t& operator[](int i) { return dims_[static_cast<size_t>(axis(i))]; }
  // Normalises a possibly negative axis, with a clear error when out of range.
  int axis(int i) const {
    const int r = rank();
    STPAIN_CHECK(i >= -r && i < r, ShapeError, "axis ", i, " is out of range for shape ", str());
    return i < 0 ? i + r : i;
  }
  // Product of the extents in [begin, end).
  int64_t span(int begin, int end) const {
    int64_t n = 1;
    for (int i = begin; i < end; ++i) n *= dims_[static_cast<size_t>(i)];
    return n;
  }
  const std::vector<int64_t>& dims() const { return dims_; }
  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }

  // The shape with dimension i removed / replaced.
  Shape without(int i) const {
    std::vector<int64_t> d = dims_;
    d.erase(d.begin() + axis(i));
    return Shape(std::move(d));
  }
  Shape with(int i, int64_t extent) const {
    Shape s = *this;
    s[i] = extent;
    return s;
  }

  std::string str() const {
    std::string s = "[";
    for (size_t i = 0; i < dims_.size(); ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + "]";
  }

  friend bool operator==(const Shape& a, const Shape& b) { return a.dims_ == b.dims_; }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  void validate() const {
    for (int64_t d : dims_)
      STPAIN_CHECK(d >= 0, ShapeError, "negative extent in shape ", str());
  }
  std::vector<int64_t> dims_;
};

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

// Throws a ShapeError naming both shapes and what they belong to.
inline void expect_shape(const Shape& got, const Shape& want, const std::string& what) {
  STPAIN_CHECK(got == want, ShapeError, what, ": expected shape ", want.str(), ", got ", got.str());
}

}  // namespace stpain
