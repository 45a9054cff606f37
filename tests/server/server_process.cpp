// Child processes and data for the server tests.
#include "server_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_data.hpp"

extern char** environ;

namespace provdb::testing {

namespace fs = std::filesystem;

std::string ProvdbBinary() { return PROVDB_BINARY; }

int StartProcess(const std::string& binary_path, const std::vector<std::string>& args,
                 const fs::path& log) {
  std::string binary = binary_path;
  std::vector<char*> argv{binary.data()};
  std::vector<std::string> copies = args;
  for (auto& a : copies) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + binary);
  return pid;
}

ServerProcess::ServerProcess(const fs::path& dir, const std::vector<std::string>& args) {
  static int counter = 0;
  log_ = dir / ("serve." + std::to_string(counter++) + ".log");
  std::vector<std::string> all{"serve", "--dir", dir.string()};
  all.insert(all.end(), args.begin(), args.end());
  pid_ = StartProcess(ProvdbBinary(), all, log_);
}

ServerProcess::~ServerProcess() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

void ServerProcess::Signal(int signo) const { ::kill(pid_, signo); }

std::optional<int> ServerProcess::WaitExit(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

std::string ServerProcess::LogText() const {
  std::ifstream in(log_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int RunProvdb(const std::vector<std::string>& args) {
  std::string ignored;
  return RunProvdb(args, ignored);
}

int RunProvdb(const std::vector<std::string>& args, std::string& output) {
  const fs::path log = fs::temp_directory_path() / ("provdb-run-" + std::to_string(::getpid()));
  std::error_code ignored;
  fs::remove(log, ignored);
  const int pid = StartProcess(ProvdbBinary(), args, log);
  int status = 0;
  ::waitpid(pid, &status, 0);

  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  output = text.str();
  fs::remove(log, ignored);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool WaitForFile(const fs::path& path, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!fs::exists(path)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

const std::vector<std::string>& RealRecords(const std::string& collection) {
  static std::mutex mutex;
  static std::map<std::string, std::vector<std::string>> cache;
  std::lock_guard lock(mutex);
  auto it = cache.find(collection);
  if (it == cache.end()) it = cache.emplace(collection, LoadRecords(collection)).first;
  return it->second;
}

std::string WithRank(const std::string& json, int rank) {
  auto doc = nlohmann::json::parse(json);
  doc["rid"] = rank;
  return doc.dump();
}

}  // namespace provdb::testing
