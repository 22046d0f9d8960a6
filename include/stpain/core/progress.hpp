#pragma once
// A progress line for long work: "label 120/272 (44%) 3.1/s ETA 0:52 [extra]".
// Redraws in place on a terminal, prints one line per update otherwise (logs).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace stpain {

inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

class Progress {
 public:
  Progress(std::string label, int64_t total, std::FILE* out = stderr)
      : label_(std::move(label)), total_(total), out_(out), tty_(::isatty(::fileno(out)) != 0),
        start_(std::chrono::steady_clock::now()) {}

  // Marks `done` units finished (absolute count) and redraws.
  void update(int64_t done, const std::string& extra = "") {
    done_ = done;
    const double elapsed = seconds();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1;
    std::fprintf(out_, "%s%s %lld/%lld (%d%%) %.2f/s ETA %s%s%s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_),
                 total_ > 0 ? static_cast<int>(100 * done / total_) : 100, rate, format_duration(eta).c_str(),
                 extra.empty() ? "" : "  ", extra.c_str(), tty_ ? "" : "\n");
    std::fflush(out_);
  }
  void step(const std::string& extra = "") { update(done_ + 1, extra); }
  // Ends the line, with the total time taken.
  void finish(const std::string& extra = "") {
    if (tty_) std::fprintf(out_, "\n");
    std::fprintf(out_, "%s: %lld done in %s%s%s\n", label_.c_str(), static_cast<long long>(done_),
                 format_duration(seconds()).c_str(), extra.empty() ? "" : ", ", extra.c_str());
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::string label_;
  int64_t total_, done_ = 0;
  std::FILE* out_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace stpain
