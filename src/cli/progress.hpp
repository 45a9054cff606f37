// Progress of a long command on standard error: a bar redrawn in place when
// stderr is a terminal, otherwise a plain line every few seconds so that logs
// of batch jobs stay readable.
// Threads: workers call add() from any thread; a background thread of the
// Progress object draws. finish() (or the destructor) stops it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace provdb::cli {

class Progress {
 public:
  // `total` is the number of units expected (0: unknown, no bar); `unit`
  // names one of them in the display ("record").
  Progress(std::string label, uint64_t total, std::string unit);
  ~Progress();

  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(uint64_t n) { done_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t done() const { return done_.load(std::memory_order_relaxed); }

  // Draws the final state and stops drawing.
  void finish();

 private:
  void run();
  void draw(bool final);

  std::string label_;
  uint64_t total_;
  std::string unit_;
  bool tty_;
  std::atomic<uint64_t> done_{0};
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_line_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

// "12,345" for 12345.
std::string WithThousands(uint64_t n);

// "1 record", "12,345 records": the count and a noun that takes an s.
std::string CountOf(uint64_t n, const std::string& noun);

}  // namespace provdb::cli
