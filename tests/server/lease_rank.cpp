// A rank process for the lease tests: connects to the servers of a directory
// as rank R, stores N anomaly records of the bundled data with asynchronous
// batches, waits until every one is acknowledged, prints "stored N", and then
// idles until it is killed, never saying goodbye.
//
// Usage: lease_rank DIR RANK N
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "client/client.hpp"
#include "test_data.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: lease_rank DIR RANK N\n");
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const int rank = std::stoi(argv[2]);
    const std::size_t count = std::stoul(argv[3]);

    // The tests run servers with client timeouts of a second or so.
    provdb::client::ClientOptions options;
    options.heartbeat_interval = std::chrono::milliseconds(200);
    auto client = provdb::client::Client::ConnectRank(dir, rank, options);
    auto anomalies = client.database().collection("anomalies");

    const auto records = provdb::testing::LoadRecords("anomalies");
    if (count > records.size()) {
      std::fprintf(stderr, "lease_rank: at most %zu records\n", records.size());
      return 2;
    }
    std::vector<provdb::client::PendingIds> pending;
    for (std::size_t start = 0; start < count; start += 50) {
      const std::size_t end = std::min(count, start + 50);
      pending.push_back(anomalies.store_multi_async(
          std::vector<std::string>(records.begin() + start, records.begin() + end)));
    }
    std::size_t stored = 0;
    for (const auto& p : pending) stored += p.wait().size();
    std::printf("stored %zu\n", stored);
    std::fflush(stdout);

    while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lease_rank: %s\n", e.what());
    return 1;
  }
}
