// Servers started by a command for its own use: `provdb replay` without a
// running server starts `provdb serve` instances as child processes (the
// same executable), waits for their address files, and after the run waits
// for them to shut themselves down.
// Used by one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace provdb::cli {

class ServerProcesses {
 public:
  // Starts `instances` children serving `shards` shards in `dir`, each one's
  // output going to dir/serve.<instance>.log. Throws Error(kInternal) when a
  // child cannot be started.
  ServerProcesses(const std::filesystem::path& dir, int shards, int instances);
  // Stops children still running (SIGTERM, then SIGKILL).
  ~ServerProcesses();

  ServerProcesses(const ServerProcesses&) = delete;
  ServerProcesses& operator=(const ServerProcesses&) = delete;

  // Waits until every instance has written its address file. Throws
  // Error(kUnavailable) with the end of its log when a child exits first, and
  // Error(kTimeout) when the files do not appear in time.
  void wait_ready(std::chrono::milliseconds timeout);
  // Waits for every child to exit. Throws Error(kTimeout) when one does not
  // exit in time, and Error(kInternal) when one exits with an error.
  void wait_exit(std::chrono::milliseconds timeout);

  std::vector<std::filesystem::path> logs() const;

 private:
  // Reaps children that have exited; returns the instance of one that
  // exited with an error, or -1.
  int reap();
  std::string log_tail(int instance) const;

  std::filesystem::path dir_;
  std::vector<pid_t> pids_;  // -1 once reaped
  std::vector<int> status_;
};

}  // namespace provdb::cli
