// Child server processes, started from /proc/self/exe so that replay and
// server always come from the same build.
#include "cli/server_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.hpp"

namespace provdb::cli {
namespace fs = std::filesystem;
namespace {

constexpr auto kPoll = std::chrono::milliseconds(20);

pid_t Spawn(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    throw Error(ErrorCode::kInternal,
                "cannot start '" + args[0] + " serve': " + std::strerror(errno));
  }
  if (pid == 0) {
    // In the child only async-signal-safe calls until exec. The server gets
    // SIGTERM (a graceful stop) if replay dies without saying goodbye, so
    // that a killed replay never leaves a server waiting for its ranks.
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

ServerProcesses::ServerProcesses(const fs::path& dir, int shards, int instances) : dir_(dir) {
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  for (int i = 0; i < instances; ++i) {
    const std::vector<std::string> args = {
        exe, "serve", "--dir", dir.string(), "--shards", std::to_string(shards),
        "--instance", std::to_string(i), "--instances", std::to_string(instances)};
    pids_.push_back(Spawn(args, dir / ("serve." + std::to_string(i) + ".log")));
    status_.push_back(0);
  }
}

ServerProcesses::~ServerProcesses() {
  reap();
  for (pid_t pid : pids_) {
    if (pid > 0) ::kill(pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    reap();
    if (std::all_of(pids_.begin(), pids_.end(), [](pid_t p) { return p < 0; })) return;
    std::this_thread::sleep_for(kPoll);
  }
  for (pid_t& pid : pids_) {
    if (pid <= 0) continue;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
}

int ServerProcesses::reap() {
  int failed = -1;
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    if (pids_[i] < 0) continue;
    int status = 0;
    if (::waitpid(pids_[i], &status, WNOHANG) != pids_[i]) continue;
    pids_[i] = -1;
    status_[i] = status;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = static_cast<int>(i);
  }
  return failed;
}

std::string ServerProcesses::log_tail(int instance) const {
  std::ifstream in(dir_ / ("serve." + std::to_string(instance) + ".log"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string out;
  for (std::size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) {
    out += "\n  " + lines[i];
  }
  return out;
}

void ServerProcesses::wait_ready(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    reap();
    for (std::size_t i = 0; i < pids_.size(); ++i) {
      if (pids_[i] < 0) {
        throw Error(ErrorCode::kUnavailable,
                    "the server started for '" + dir_.string() + "' (instance " +
                        std::to_string(i) + ") exited before it was ready; its log ends:" +
                        log_tail(static_cast<int>(i)));
      }
    }
    bool ready = true;
    for (std::size_t i = 0; i < pids_.size() && ready; ++i) {
      ready = fs::exists(dir_ / ("provider.address." + std::to_string(i)));
    }
    if (ready) return;
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error(ErrorCode::kTimeout, "the server started for '" + dir_.string() +
                                           "' wrote no address file in time; see " +
                                           (dir_ / "serve.0.log").string());
    }
    std::this_thread::sleep_for(kPoll);
  }
}

void ServerProcesses::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const int failed = reap();
    if (failed >= 0) {
      throw Error(ErrorCode::kInternal, "server instance " + std::to_string(failed) +
                                            " ended with an error; its log ends:" +
                                            log_tail(failed));
    }
    if (std::all_of(pids_.begin(), pids_.end(), [](pid_t p) { return p < 0; })) return;
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error(ErrorCode::kTimeout,
                  "the server started for '" + dir_.string() +
                      "' did not shut down after every client left; it is being stopped; "
                      "see " + (dir_ / "serve.0.log").string());
    }
    std::this_thread::sleep_for(kPoll);
  }
}

std::vector<fs::path> ServerProcesses::logs() const {
  std::vector<fs::path> out;
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    out.push_back(dir_ / ("serve." + std::to_string(i) + ".log"));
  }
  return out;
}

}  // namespace provdb::cli
