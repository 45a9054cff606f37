// scripts/run-main.sh in a scratch copy of the tree whose build step does
// nothing and whose build/provdb is the provdb under test: the command it
// prints must be complete, so that pasting it gives what the script showed.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli_test_util.hpp"

namespace provdb::testing {
namespace {

namespace fs = std::filesystem;

// Runs `command` with sh and returns its standard output; its exit status
// goes to `status`.
std::string Shell(const std::string& command, int& status) {
  std::string out;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  status = ::pclose(pipe);
  return out;
}

TEST(RunMainTest, PrintedCommandCanBePasted) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "scripts");
  fs::create_directories(tmp.path() / "build");
  fs::copy_file(PROVDB_RUN_MAIN, tmp.path() / "scripts" / "run-main.sh");
  std::ofstream(tmp / "scripts/build.sh") << "#!/bin/sh\nexit 0\n";
  fs::permissions(tmp.path() / "scripts" / "build.sh", fs::perms::owner_all);
  fs::create_symlink(PROVDB_EXE, tmp.path() / "build" / "provdb");

  int status = -1;
  const std::string script =
      Shell("cd '" + tmp.path().string() + "' && bash scripts/run-main.sh 2>/dev/null", status);
  ASSERT_EQ(status, 0) << script;

  const auto lines = Lines(script);
  std::size_t at = 0;
  while (at < lines.size() && lines[at].rfind("$ ", 0) != 0) ++at;
  ASSERT_LT(at, lines.size()) << "no command printed:\n" << script;
  EXPECT_EQ(lines[at].find("..."), std::string::npos) << lines[at];
  std::string shown;
  for (std::size_t i = at + 1; i < lines.size(); ++i) shown += lines[i] + "\n";
  ASSERT_FALSE(shown.empty());

  const std::string command = lines[at].substr(2);
  const std::string pasted = Shell("cd '" + tmp.path().string() + "' && " + command, status);
  ASSERT_EQ(status, 0) << command;
  EXPECT_EQ(pasted, shown) << command;
}

}  // namespace
}  // namespace provdb::testing
