// Access to the bundled real records (data/xgc-summit-2020) for tests and
// benchmarks. Reads the xz-compressed JSON lines through `xz -dc`.
// Safe from any thread; each call reads the file anew.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace provdb::testing {

// The directory of the bundled records.
std::filesystem::path DataDir();

// The lines of <collection>.jsonl.xz ("anomalies", "normalexecs",
// "metadata"), in file order, without their line ends. Throws
// std::runtime_error when the file is missing or xz fails.
std::vector<std::string> LoadRecords(std::string_view collection);

}  // namespace provdb::testing
