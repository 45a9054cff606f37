// The address directory through which clients find server instances:
// provider.address.<I> holds instance I's ZeroMQ endpoint on one line and
// exists only while that instance is ready; provider.map, written by instance
// 0, lists for each shard the instance hosting it, then "global 0".
// Files are written atomically (temporary file, then rename), so a reader
// never sees half a file. Pure functions: safe from any thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace provdb::protocol {

inline constexpr std::string_view kMapFileName = "provider.map";

std::string AddressFileName(int instance);

// Which instance hosts each shard and the global database.
struct ShardMap {
  std::vector<int> shard_instance;  // index: shard
  int global_instance = 0;

  int num_shards() const { return static_cast<int>(shard_instance.size()); }
  int num_instances() const;
  // The shards of `instance`, in increasing order.
  std::vector<int> shards_of(int instance) const;

  // Consecutive blocks of shards per instance, the first N mod M instances
  // taking one more; the global database on instance 0.
  static ShardMap Build(int num_shards, int num_instances);
  // Parses the text of provider.map; `origin` names the file in errors.
  static ShardMap Parse(std::string_view text, std::string_view origin);
  std::string Format() const;
};

// Writes `content` to `path` through a temporary file in the same directory
// and a rename. Throws Error(kStorage) naming the path.
void WriteFileAtomically(const std::filesystem::path& path, std::string_view content);

// Waits until `dir`/`name` exists and is not empty, then returns its
// content. Throws Error(kTimeout) naming the directory and the file when it
// did not appear within `timeout`.
std::string WaitForFile(const std::filesystem::path& dir, std::string_view name,
                        std::chrono::milliseconds timeout, std::string_view what);

// The first line of an address file, without surrounding white space.
std::string ParseAddress(std::string_view text, std::string_view origin);

}  // namespace provdb::protocol
