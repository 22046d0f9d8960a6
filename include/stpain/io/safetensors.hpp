#pragma once
// safetensors reading and writing (https://github.com/huggingface/safetensors).
//
// Layout: 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// then the raw little-endian data; offsets are relative to the data start.
//
// The reader memory-maps the file and validates every size against the file
// itself before touching data: header length, JSON, dtypes, shapes, offsets
// out of range, overlapping or leaving holes, byte counts that disagree with
// the shape. Errors are FormatErrors that start with the path (and the tensor).
// F32, F16, BF16 and F64 load as float (or double); the writer is atomic.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "stpain/core/float16.hpp"
#include "stpain/core/tensor.hpp"
#include "stpain/io/atomic_file.hpp"
#include "stpain/io/json.hpp"

namespace stpain::safetensors {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

inline size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    default: return 1;
  }
}

inline bool is_float(DType d) {
  return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16;
}

inline bool parse_dtype(const std::string& s, DType& out) {
  for (DType d : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16,
                  DType::I8, DType::U8, DType::BOOL})
    if (s == dtype_name(d)) {
      out = d;
      return true;
    }
  return false;
}

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
};

// Largest header the reader accepts (the reference implementation uses 100 MB).
inline constexpr uint64_t kMaxHeaderBytes = 100u << 20;

// A safetensors file opened for reading (memory-mapped, read-only).
class File {
 public:
  explicit File(std::string path) : path_(std::move(path)) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open: " + std::string(std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      fail("cannot stat: " + std::string(std::strerror(errno)));
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
      void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      ::close(fd);
      if (m == MAP_FAILED) fail("mmap failed: " + std::string(std::strerror(errno)));
      map_ = static_cast<const unsigned char*>(m);
    } else {
      ::close(fd);
    }
    try {
      parse_header();
    } catch (...) {
      unmap();
      throw;
    }
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File() { unmap(); }

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return infos_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }

  const TensorInfo& info(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) fail("no tensor named \"" + name + "\"");
    return infos_[it->second];
  }

  // Loads (copies and converts) a floating-point tensor as T.
  template <class T = float>
  Tensor<T> load(const std::string& name) const {
    const TensorInfo& ti = info(name);
    Tensor<T> t = Tensor<T>::empty(ti.shape);
    const unsigned char* src = data_ + ti.begin;
    const int64_t n = t.numel();
    T* dst = t.data();
    switch (ti.dtype) {
      case DType::F32: convert<float>(src, dst, n, [](float v) { return v; }); break;
      case DType::F64: convert<double>(src, dst, n, [](double v) { return v; }); break;
      case DType::F16: convert<uint16_t>(src, dst, n, half_to_float); break;
      case DType::BF16: convert<uint16_t>(src, dst, n, bfloat16_to_float); break;
      default: fail("tensor \"" + name + "\" has dtype " + dtype_name(ti.dtype) + ", expected a float type");
    }
    return t;
  }

  // Loads an integer tensor (labels, ids) as int64.
  std::vector<int64_t> load_integers(const std::string& name) const {
    const TensorInfo& ti = info(name);
    const unsigned char* src = data_ + ti.begin;
    const int64_t n = ti.shape.numel();
    std::vector<int64_t> out(static_cast<size_t>(n));
    auto read = [&](auto tag) {
      using S = decltype(tag);
      for (int64_t i = 0; i < n; ++i) {
        S v;
        std::memcpy(&v, src + i * sizeof(S), sizeof(S));
        out[static_cast<size_t>(i)] = static_cast<int64_t>(v);
      }
    };
    switch (ti.dtype) {
      case DType::I64: read(int64_t{}); break;
      case DType::I32: read(int32_t{}); break;
      case DType::I16: read(int16_t{}); break;
      case DType::I8: read(int8_t{}); break;
      case DType::U8: case DType::BOOL: read(uint8_t{}); break;
      default: fail("tensor \"" + name + "\" has dtype " + dtype_name(ti.dtype) + ", expected an integer type");
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw FormatError(path_ + ": " + what); }

  template <class S, class T, class Conv>
  static void convert(const unsigned char* src, T* dst, int64_t n, Conv conv) {
    for (int64_t i = 0; i < n; ++i) {
      S v;
      std::memcpy(&v, src + i * sizeof(S), sizeof(S));  // data may be unaligned
      dst[i] = static_cast<T>(conv(v));
    }
  }

  void unmap() {
    if (map_) ::munmap(const_cast<unsigned char*>(map_), size_);
    map_ = nullptr;
  }

  static bool as_count(const json::Value& v, uint64_t& out) {
    if (!v.is_number()) return false;
    const double d = v.as_number();
    if (!(d >= 0 && d <= 9007199254740992.0 && d == static_cast<double>(static_cast<uint64_t>(d)))) return false;
    out = static_cast<uint64_t>(d);
    return true;
  }

  void parse_header() {
    if (size_ < 8) fail("file is " + std::to_string(size_) + " bytes, too short for the 8-byte header length");
    uint64_t n = 0;
    std::memcpy(&n, map_, 8);
    if (n > kMaxHeaderBytes) fail("header length " + std::to_string(n) + " exceeds the 100 MB limit");
    if (n > size_ - 8)
      fail("header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size_) +
           " bytes); the file is truncated or not safetensors");
    data_ = map_ + 8 + n;
    const uint64_t data_bytes = size_ - 8 - n;
    json::Value header;
    try {
      header = json::parse(std::string_view(reinterpret_cast<const char*>(map_ + 8), n));
    } catch (const FormatError& e) {
      fail(std::string("malformed header: ") + e.what());
    }
    if (!header.is_object()) fail("header is not a JSON object");

    for (const auto& [name, entry] : header.as_object()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) fail("__metadata__ is not an object");
        for (const auto& [k, v] : entry.as_object()) {
          if (!v.is_string()) fail("__metadata__ value for \"" + k + "\" is not a string");
          metadata_[k] = v.as_string();
        }
        continue;
      }
      const std::string where = "tensor \"" + name + "\": ";
      if (!entry.is_object()) fail(where + "entry is not an object");
      const json::Object& o = entry.as_object();
      for (const auto& [k, v] : o)
        if (k != "dtype" && k != "shape" && k != "data_offsets") fail(where + "unknown field \"" + k + "\"");
      auto field = [&](const char* k) -> const json::Value& {
        auto it = o.find(k);
        if (it == o.end()) fail(where + "missing \"" + k + "\"");
        return it->second;
      };
      TensorInfo ti;
      ti.name = name;
      const json::Value& dt = field("dtype");
      if (!dt.is_string() || !parse_dtype(dt.as_string(), ti.dtype))
        fail(where + "unsupported dtype " + json::dump(dt));
      const json::Value& sh = field("shape");
      if (!sh.is_array()) fail(where + "shape is not an array");
      std::vector<int64_t> dims;
      uint64_t numel = 1;
      for (const json::Value& d : sh.as_array()) {
        uint64_t e = 0;
        if (!as_count(d, e)) fail(where + "shape " + json::dump(sh) + " has a non-integer or negative extent");
        if (e != 0 && numel > (uint64_t{1} << 62) / e) fail(where + "shape " + json::dump(sh) + " overflows");
        numel *= e;
        dims.push_back(static_cast<int64_t>(e));
      }
      ti.shape = Shape(std::move(dims));
      const json::Value& off = field("data_offsets");
      if (!off.is_array() || off.as_array().size() != 2 || !as_count(off.as_array()[0], ti.begin) ||
          !as_count(off.as_array()[1], ti.end) || ti.begin > ti.end)
        fail(where + "data_offsets " + json::dump(off) + " are not [begin, end] with begin <= end");
      if (ti.end > data_bytes)
        fail(where + "data_offsets " + json::dump(off) + " run past the data section (" +
             std::to_string(data_bytes) + " bytes); the file is truncated");
      const uint64_t want = numel * dtype_size(ti.dtype);
      if (ti.end - ti.begin != want)
        fail(where + "holds " + std::to_string(ti.end - ti.begin) + " bytes but " + dtype_name(ti.dtype) + " " +
             ti.shape.str() + " needs " + std::to_string(want));
      infos_.push_back(std::move(ti));
    }

    // Tensors must tile the data section exactly: no overlap, no holes.
    std::vector<const TensorInfo*> by_offset;
    for (const auto& ti : infos_) by_offset.push_back(&ti);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) {
      return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    uint64_t cursor = 0;
    for (const TensorInfo* ti : by_offset) {
      if (ti->begin < cursor) fail("tensor \"" + ti->name + "\" overlaps the tensor before it in the data section");
      if (ti->begin > cursor)
        fail("data section has a hole of " + std::to_string(ti->begin - cursor) + " bytes before tensor \"" +
             ti->name + "\"");
      cursor = ti->end;
    }
    if (cursor != data_bytes)
      fail("data section has " + std::to_string(data_bytes - cursor) + " bytes after the last tensor");
    for (size_t i = 0; i < infos_.size(); ++i) index_[infos_[i].name] = i;
  }

  std::string path_;
  const unsigned char* map_ = nullptr;
  const unsigned char* data_ = nullptr;
  uint64_t size_ = 0;
  std::vector<TensorInfo> infos_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: a float tensor stored as `dtype`, or raw integers.
struct Entry {
  std::string name;
  Tensor<float> values;           // for F32 / F16 / BF16
  std::vector<int64_t> integers;  // for I64
  DType dtype = DType::F32;
};

inline Entry entry(std::string name, const Tensor<float>& t, DType dtype = DType::F32) {
  return {std::move(name), t, {}, dtype};
}
inline Entry integer_entry(std::string name, std::vector<int64_t> v) {
  return {std::move(name), Tensor<float>(), std::move(v), DType::I64};
}

// Writes tensors (sorted by name) and string metadata atomically.
inline void save(const std::string& path, std::vector<Entry> entries,
                 const std::map<std::string, std::string>& metadata = {}) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  json::Object header;
  if (!metadata.empty()) {
    json::Object meta;
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::vector<std::string> blobs;
  uint64_t offset = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    STPAIN_CHECK(e.name != "__metadata__" && (i == 0 || entries[i - 1].name != e.name), FormatError, path,
                 ": duplicate or reserved tensor name \"", e.name, "\"");
    std::string blob;
    json::Array shape;
    if (e.dtype == DType::I64) {
      blob.resize(e.integers.size() * 8);
      std::memcpy(blob.data(), e.integers.data(), blob.size());
      shape.push_back(static_cast<int64_t>(e.integers.size()));
    } else {
      const int64_t n = e.values.numel();
      const float* v = e.values.data();
      if (e.dtype == DType::F32) {
        blob.assign(reinterpret_cast<const char*>(v), static_cast<size_t>(n) * 4);
      } else {
        STPAIN_CHECK(e.dtype == DType::F16 || e.dtype == DType::BF16, FormatError, path, ": cannot write \"",
                     e.name, "\" as ", dtype_name(e.dtype));
        blob.resize(static_cast<size_t>(n) * 2);
        for (int64_t j = 0; j < n; ++j) {
          const uint16_t h = e.dtype == DType::F16 ? float_to_half(v[j]) : float_to_bfloat16(v[j]);
          std::memcpy(blob.data() + 2 * j, &h, 2);
        }
      }
      for (int64_t d : e.values.shape()) shape.push_back(d);
    }
    json::Object info;
    info["dtype"] = dtype_name(e.dtype);
    info["shape"] = std::move(shape);
    info["data_offsets"] = json::Array{offset, offset + blob.size()};
    header[e.name] = std::move(info);
    offset += blob.size();
    blobs.push_back(std::move(blob));
  }
  std::string text = json::dump(header);
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  const uint64_t n = text.size();
  AtomicFile out(path);
  out.write(&n, 8);
  out.write(text);
  for (const auto& b : blobs) out.write(b);
  out.commit();
}

}  // namespace stpain::safetensors
