// Progress display. The drawing thread wakes ten times a second on a terminal
// and writes a line every five seconds otherwise.
#include "cli/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace provdb::cli {
namespace {

constexpr int kBarWidth = 30;
constexpr auto kTtyPeriod = std::chrono::milliseconds(100);
constexpr auto kLinePeriod = std::chrono::seconds(5);

}  // namespace

std::string WithThousands(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string CountOf(uint64_t n, const std::string& noun) {
  return WithThousands(n) + " " + noun + (n == 1 ? "" : "s");
}

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      tty_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_line_(start_) {
  thread_ = std::thread([this] { run(); });
}

Progress::~Progress() { finish(); }

void Progress::finish() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  draw(true);
}

void Progress::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, tty_ ? kTtyPeriod : std::chrono::milliseconds(500));
    if (stopping_) break;
    const auto now = std::chrono::steady_clock::now();
    if (!tty_ && now - last_line_ < kLinePeriod) continue;
    last_line_ = now;
    draw(false);
  }
}

void Progress::draw(bool final) {
  const uint64_t done = this->done();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;

  std::string line = label_ + " ";
  if (total_ > 0) {
    const double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    const int filled = static_cast<int>(fraction * kBarWidth);
    line += "[" + std::string(filled, '#') + std::string(kBarWidth - filled, '.') + "] ";
    char pct[16];
    std::snprintf(pct, sizeof pct, "%3d%% ", static_cast<int>(fraction * 100));
    line += pct;
    line += WithThousands(done) + "/" + CountOf(total_, unit_);
  } else {
    line += CountOf(done, unit_);
  }
  line += ", " + WithThousands(static_cast<uint64_t>(rate)) + "/s";

  // On a terminal the line is redrawn in place; the final draw ends it.
  if (tty_) {
    std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), final ? "\n" : "");
  } else if (!final || done > 0) {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace provdb::cli
