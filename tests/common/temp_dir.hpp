// A fresh directory for one test, removed with everything in it when the
// object goes away, so that every test works on real files and none sees
// another's; and reading a file whole. Used from the thread that created it.
#pragma once

#include <filesystem>
#include <string>

namespace provdb::testing {

class TempDir {
 public:
  // Named after the running test (provdb-<suite>.<test>-XXXXXX under the
  // system's temporary directory), so that a directory left by a crashed
  // test says whose it was.
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // A path inside the directory, as a string ready for a command line.
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The whole content of a file; empty if it cannot be read.
std::string ReadFile(const std::filesystem::path& path);

}  // namespace provdb::testing
