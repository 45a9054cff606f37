// Helpers of the command-line tests: running the provdb executable and
// capturing what it prints, and the bundled records.
// Each helper is used from the test's own thread.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "temp_dir.hpp"
#include "test_data.hpp"

namespace provdb::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the provdb executable with `args` and waits for it.
RunResult RunProvdb(const std::vector<std::string>& args);

// Starts `provdb args...` in the background; its output goes to `log`.
pid_t StartProvdb(const std::vector<std::string>& args, const std::filesystem::path& log);
// Waits for a background process; returns its exit code (-1 when killed or
// after `seconds` without exiting, in which case it is killed).
int WaitExit(pid_t pid, double seconds);
// Waits until `path` exists; false after `seconds`.
bool WaitForFile(const std::filesystem::path& path, double seconds);

// The records of a bundled collection (LoadRecords of the shared helpers).
std::vector<std::string> BundledRecords(const std::string& collection);
// How many records of a bundled collection each recorded rank (rid) has.
std::map<int64_t, int64_t> BundledCountsByRank(const std::string& collection);

// The lines of `text`, without their ends.
std::vector<std::string> Lines(const std::string& text);

}  // namespace provdb::testing
