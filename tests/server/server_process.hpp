// Test helpers: a `provdb serve` child process on loopback and the bundled
// real records with `rid` rewritten.
// Used from the test's main thread only, except RealRecords (read-only).
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace provdb::testing {

// The built provdb command (a compile definition of the test target).
std::string ProvdbBinary();

// A server instance started as `provdb serve --dir DIR <args>`, its log in
// DIR/serve.<n>.log. The destructor kills it if it is still running.
class ServerProcess {
 public:
  ServerProcess(const std::filesystem::path& dir, const std::vector<std::string>& args);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int pid() const { return pid_; }
  const std::filesystem::path& log() const { return log_; }
  void Signal(int signo) const;
  // The exit status once the process has exited, or nullopt if it is still
  // running after `timeout` (generous: tests never assert durations).
  std::optional<int> WaitExit(std::chrono::seconds timeout = std::chrono::seconds(120));
  std::string LogText() const;

 private:
  int pid_ = -1;
  bool exited_ = false;
  std::filesystem::path log_;
};

// Starts `binary args...` with its standard output and error appended to
// `log`; returns its pid. The caller waits for it.
int StartProcess(const std::string& binary, const std::vector<std::string>& args,
                 const std::filesystem::path& log);

// Runs a provdb subcommand to completion; returns its exit status.
int RunProvdb(const std::vector<std::string>& args);

// The same, also returning what it printed on standard output and error.
int RunProvdb(const std::vector<std::string>& args, std::string& output);

// Waits until DIR/name exists; false after `timeout`.
bool WaitForFile(const std::filesystem::path& path,
                 std::chrono::seconds timeout = std::chrono::seconds(60));

// The records of a collection of the bundled data, loaded once.
const std::vector<std::string>& RealRecords(const std::string& collection);

// `json` with its "rid" set to `rank`.
std::string WithRank(const std::string& json, int rank);

}  // namespace provdb::testing
