#pragma once
// The exceptions stpain throws. Every message names what was wrong (the tensor,
// the file and line, both shapes) so a user can act on it without a debugger.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace stpain {

// Base of everything stpain throws.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Two shapes that should agree do not, or a shape is invalid for an operation.
struct ShapeError : Error {
  using Error::Error;
};

// A file (safetensors, CSV, image, checkpoint) is malformed; the message
// starts with the path and, where it has one, the line or tensor name.
struct FormatError : Error {
  using Error::Error;
};

// A loss, gradient or activation became NaN or infinite.
struct NonFiniteError : Error {
  using Error::Error;
};

// Loading a state dict found missing, unexpected or mis-shaped tensors.
struct StateDictError : Error {
  using Error::Error;
};

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream s;
  (s << ... << std::forward<Parts>(parts));
  return s.str();
}
}  // namespace detail

// STPAIN_CHECK(cond, ErrorType, message parts...) throws ErrorType with the
// streamed message when cond is false.
#define STPAIN_CHECK(cond, ErrorType, ...)                          \
  do {                                                              \
    if (!(cond)) throw ErrorType(::stpain::detail::concat(__VA_ARGS__)); \
  } while (0)

}  // namespace stpain
