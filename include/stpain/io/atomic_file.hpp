#pragma once
// Atomic file replacement: write to a temporary file beside the target, fsync,
// then rename over it. A crash or an error leaves the old file untouched.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "stpain/core/error.hpp"

namespace stpain {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    tmp_ = path_ + ".tmp." + std::to_string(::getpid());
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    STPAIN_CHECK(fd_ >= 0, Error, path_, ": cannot create temporary file ", tmp_, ": ", std::strerror(errno));
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  void write(const void* data, size_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const ssize_t n = ::write(fd_, p, bytes);
      if (n < 0 && errno == EINTR) continue;
      STPAIN_CHECK(n > 0, Error, path_, ": write failed: ", std::strerror(errno));
      p += n;
      bytes -= static_cast<size_t>(n);
    }
  }
  void write(const std::string& s) { write(s.data(), s.size()); }

  // Makes the new content visible under the target path.
  void commit() {
    STPAIN_CHECK(::fsync(fd_) == 0, Error, path_, ": fsync failed: ", std::strerror(errno));
    ::close(fd_);
    fd_ = -1;
    STPAIN_CHECK(::rename(tmp_.c_str(), path_.c_str()) == 0, Error, path_, ": rename from ", tmp_,
                 " failed: ", std::strerror(errno));
    committed_ = true;
    // Persist the rename itself.
    const std::string dir = std::filesystem::path(path_).parent_path().string();
    const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes a whole string atomically.
inline void write_file_atomically(const std::string& path, const std::string& content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

}  // namespace stpain
