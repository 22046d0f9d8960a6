#pragma once
// Tensor<T, Backend>: a row-major array with a runtime shape.
//
// A tensor is a handle, like torch.Tensor: copies share the same storage, and
// clone() makes a deep copy. Storage belongs to the backend (host memory for
// `cpu`, device memory for `cuda`); view() wraps memory owned by someone else.
// Eigen views (matrix(), array()) and xtensor views (core/xtensor_view.hpp)
// read and write the same memory, without copies.
#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <memory>
#include <ostream>
#include <vector>

#include "stpain/backend/cpu.hpp"
#include "stpain/core/shape.hpp"

namespace stpain {

template <class T = float, class B = cpu>
class Tensor {
 public:
  using value_type = T;
  using backend = B;
  using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;

  Tensor() = default;

  // A zero-filled tensor of the given shape.
  explicit Tensor(const Shape& shape) : Tensor(empty(shape)) { zero(); }

  // Uninitialised storage: for outputs that are about to be fully written.
  static Tensor empty(const Shape& shape) {
    Tensor t;
    t.shape_ = shape;
    const size_t bytes = sizeof(T) * static_cast<size_t>(shape.numel());
    t.storage_ = std::shared_ptr<void>(B::allocate(bytes), [bytes](void* p) { B::deallocate(p, bytes); });
    t.data_ = static_cast<T*>(t.storage_.get());
    return t;
  }
  static Tensor zeros(const Shape& shape) { return Tensor(shape); }
  static Tensor full(const Shape& shape, T value) {
    Tensor t = empty(shape);
    t.fill(value);
    return t;
  }
  // Copies host values into a new tensor; the count must match the shape.
  static Tensor from(const Shape& shape, const std::vector<T>& values) {
    STPAIN_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), ShapeError, "Tensor::from: ",
                 values.size(), " values do not fill shape ", shape.str());
    Tensor t = empty(shape);
    B::copy_bytes(t.data_, values.data(), sizeof(T) * values.size());
    return t;
  }
  // A non-owning view of memory the caller keeps alive.
  static Tensor view(T* data, const Shape& shape) {
    Tensor t;
    t.shape_ = shape;
    t.data_ = data;
    return t;
  }

  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t numel() const { return shape_.numel(); }
  int64_t size(int axis) const { return shape_[axis]; }
  bool defined() const { return storage_ || data_; }
  // True when this tensor does not own its memory (made by view()).
  bool is_view() const { return !storage_; }
  // True when both tensors read the same memory.
  bool shares_storage_with(const Tensor& o) const { return data_ == o.data_; }

  T* data() { return data_; }
  const T* data() const { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + numel(); }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + numel(); }

  // Element access by multi-index (host backends only).
  template <class... I>
  T& operator()(I... idx) {
    return data_[offset(idx...)];
  }
  template <class... I>
  const T& operator()(I... idx) const {
    return data_[offset(idx...)];
  }
  T& operator[](int64_t i) { return data_[i]; }
  const T& operator[](int64_t i) const { return data_[i]; }

  // The same storage under another shape; one extent may be -1 (inferred).
  Tensor reshape(std::vector<int64_t> dims) const {
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] == -1) {
        STPAIN_CHECK(infer < 0, ShapeError, "reshape of ", shape_.str(), ": more than one -1");
        infer = static_cast<int64_t>(i);
      } else {
        known *= dims[i];
      }
    }
    if (infer >= 0) {
      STPAIN_CHECK(known > 0 && numel() % known == 0, ShapeError, "cannot reshape ", shape_.str(),
                   " (", numel(), " elements) with an inferred extent");
      dims[static_cast<size_t>(infer)] = numel() / known;
    }
    Shape s(std::move(dims));
    STPAIN_CHECK(s.numel() == numel(), ShapeError, "cannot reshape ", shape_.str(), " to ", s.str());
    Tensor t = *this;
    t.shape_ = s;
    return t;
  }
  Tensor reshape(std::initializer_list<int64_t> dims) const { return reshape(std::vector<int64_t>(dims)); }
  Tensor reshape(const Shape& s) const { return reshape(s.dims()); }

  // Rows [begin, end) of the leading dimension, sharing storage.
  Tensor slice(int64_t begin, int64_t end) const {
    STPAIN_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], ShapeError, "slice [",
                 begin, ", ", end, ") out of range for shape ", shape_.str());
    Tensor t = *this;
    t.shape_[0] = end - begin;
    t.data_ = data_ + begin * shape_.span(1, rank());
    return t;
  }

  Tensor clone() const {
    Tensor t = empty(shape_);
    B::copy_bytes(t.data_, data_, sizeof(T) * static_cast<size_t>(numel()));
    return t;
  }
  // Copies values from a tensor of the same shape.
  void copy_from(const Tensor& src) {
    expect_shape(src.shape(), shape_, "copy_from");
    if (src.data_ != data_) B::copy_bytes(data_, src.data_, sizeof(T) * static_cast<size_t>(numel()));
  }

  void fill(T value) { std::fill(data_, data_ + numel(), value); }
  void zero() {
    if (numel()) B::zero_bytes(static_cast<void*>(data_), sizeof(T) * static_cast<size_t>(numel()));
  }

  // Eigen views over the same memory (no copies). matrix() folds every
  // dimension but the last into rows.
  Eigen::Map<RowMajorMatrix> matrix() { return matrix(numel() / cols(), cols()); }
  Eigen::Map<const RowMajorMatrix> matrix() const { return {data_, numel() / cols(), cols()}; }
  Eigen::Map<RowMajorMatrix> matrix(int64_t rows, int64_t cols) {
    STPAIN_CHECK(rows * cols == numel(), ShapeError, "matrix view ", rows, "x", cols, " of shape ",
                 shape_.str());
    return {data_, rows, cols};
  }
  Eigen::Map<const RowMajorMatrix> matrix(int64_t rows, int64_t cols) const {
    STPAIN_CHECK(rows * cols == numel(), ShapeError, "matrix view ", rows, "x", cols, " of shape ",
                 shape_.str());
    return {data_, rows, cols};
  }
  Eigen::Map<Array> array() { return {data_, numel()}; }
  Eigen::Map<const Array> array() const { return {data_, numel()}; }

  std::vector<T> to_vector() const { return std::vector<T>(data_, data_ + numel()); }

 private:
  int64_t cols() const { return rank() == 0 ? 1 : std::max<int64_t>(shape_[-1], 1); }

  template <class... I>
  int64_t offset(I... idx) const {
    const int64_t ix[] = {static_cast<int64_t>(idx)...};
    constexpr int n = sizeof...(I);
    int64_t off = 0;
    for (int d = 0; d < n; ++d) off = off * shape_[d] + ix[d];
    return off;
  }

  std::shared_ptr<void> storage_;
  T* data_ = nullptr;
  Shape shape_;
};

template <class T, class B>
std::ostream& operator<<(std::ostream& os, const Tensor<T, B>& t) {
  os << "Tensor" << t.shape().str() << " {";
  const int64_t n = std::min<int64_t>(t.numel(), 8);
  for (int64_t i = 0; i < n; ++i) os << (i ? ", " : "") << t[i];
  return os << (t.numel() > n ? ", ...}" : "}");
}

}  // namespace stpain
