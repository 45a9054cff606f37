// Reading and writing the files of the address directory.
#include "protocol/address_dir.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

#include "common/error.hpp"

namespace provdb::protocol {

namespace fs = std::filesystem;

std::string AddressFileName(int instance) {
  return "provider.address." + std::to_string(instance);
}

int ShardMap::num_instances() const {
  int last = global_instance;
  for (int i : shard_instance) last = std::max(last, i);
  return last + 1;
}

std::vector<int> ShardMap::shards_of(int instance) const {
  std::vector<int> shards;
  for (int k = 0; k < num_shards(); ++k) {
    if (shard_instance[k] == instance) shards.push_back(k);
  }
  return shards;
}

ShardMap ShardMap::Build(int num_shards, int num_instances) {
  if (num_shards < 1 || num_instances < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "need at least one shard and one instance, got " + std::to_string(num_shards) +
                    " shards and " + std::to_string(num_instances) + " instances");
  }

  ShardMap map;
  const int base = num_shards / num_instances;
  const int extra = num_shards % num_instances;
  for (int i = 0; i < num_instances; ++i) {
    const int count = base + (i < extra ? 1 : 0);
    for (int j = 0; j < count; ++j) map.shard_instance.push_back(i);
  }
  return map;
}

ShardMap ShardMap::Parse(std::string_view text, std::string_view origin) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kProtocol, "bad shard map " + std::string(origin) + ": " + why);
  };

  ShardMap map;
  bool have_global = false;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream fields(line);
    std::string key;
    int instance = -1;
    if (!(fields >> key >> instance) || instance < 0) throw bad("line '" + line + "'");

    if (key == "global") {
      map.global_instance = instance;
      have_global = true;
      continue;
    }
    if (key != std::to_string(map.num_shards())) {
      throw bad("expected shard " + std::to_string(map.num_shards()) + ", got line '" + line +
                "'");
    }
    map.shard_instance.push_back(instance);
  }

  if (!have_global || map.shard_instance.empty()) throw bad("no shards or no global line");
  return map;
}

std::string ShardMap::Format() const {
  std::string text;
  for (int k = 0; k < num_shards(); ++k) {
    text += std::to_string(k) + " " + std::to_string(shard_instance[k]) + "\n";
  }
  text += "global " + std::to_string(global_instance) + "\n";
  return text;
}

void WriteFileAtomically(const fs::path& path, std::string_view content) {
  // The pid keeps two writers of the same directory from sharing a temporary.
  fs::path temp = path;
  temp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      throw Error(ErrorCode::kStorage, "cannot write " + temp.string() +
                                           ": check that the directory exists and is writable");
    }
  }

  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    throw Error(ErrorCode::kStorage, "cannot rename " + temp.string() + " to " + path.string() +
                                         ": " + ec.message());
  }
}

std::string WaitForFile(const fs::path& dir, std::string_view name,
                        std::chrono::milliseconds timeout, std::string_view what) {
  const fs::path path = dir / std::string(name);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(2);

  while (true) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!content.empty()) return content;
    }

    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(ErrorCode::kTimeout,
                  "waited " + std::to_string(timeout.count()) + " ms for " + std::string(what) +
                      " (file " + path.string() + " in directory " + dir.string() +
                      "); is the server running with --dir " + dir.string() + "?");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
}

std::string ParseAddress(std::string_view text, std::string_view origin) {
  std::string line(text.substr(0, text.find('\n')));
  const auto first = line.find_first_not_of(" \t\r");
  const auto last = line.find_last_not_of(" \t\r");
  if (first == std::string::npos) {
    throw Error(ErrorCode::kProtocol, "address file " + std::string(origin) + " is empty");
  }
  return line.substr(first, last - first + 1);
}

}  // namespace provdb::protocol
