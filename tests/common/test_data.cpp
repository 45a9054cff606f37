// Reading the bundled records through the xz command, so that tests need no
// compression library.
#include "test_data.hpp"

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace provdb::testing {

std::filesystem::path DataDir() { return PROVDB_DATA_DIR; }

std::vector<std::string> LoadRecords(std::string_view collection) {
  std::filesystem::path file = DataDir() / (std::string(collection) + ".jsonl.xz");
  if (!std::filesystem::exists(file)) {
    throw std::runtime_error("test data file " + file.string() + " is missing");
  }

  std::string command = "xz -dc '" + file.string() + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (pipe == nullptr) throw std::runtime_error("cannot run: " + command);

  // Reads everything, then splits: lines are long (kilobytes) and many.
  std::string text;
  char buffer[1 << 16];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe.get())) > 0) text.append(buffer, n);
  if (pclose(pipe.release()) != 0) throw std::runtime_error("failed: " + command);

  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) lines.emplace_back(text, start, end - start);
    start = end + 1;
  }
  return lines;
}

}  // namespace provdb::testing
