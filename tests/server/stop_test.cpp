// Stopping a server during ingest, with `provdb stop` or SIGTERM, commits
// every acknowledged record: the reopened files hold each acknowledged id
// with the document that was sent.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/client.hpp"
#include "protocol/address_dir.hpp"
#include "server_process.hpp"
#include "storage/database.hpp"

namespace provdb {
namespace {

using client::Client;
using testing::RealRecords;
using testing::ServerProcess;
using testing::TempDir;

constexpr int kRanks = 4;
constexpr int kShards = 2;

enum class StopBy { kCommand, kSigterm };

class StopDuringIngest : public ::testing::TestWithParam<StopBy> {};

TEST_P(StopDuringIngest, LosesNoAcknowledgedRecord) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--shards", std::to_string(kShards)});

  client::ClientOptions options;
  options.request_timeout = std::chrono::milliseconds(3000);
  options.max_outstanding = 16;

  std::atomic<int64_t> acknowledged{0};
  std::atomic<int> finished{0};
  std::mutex mutex;
  // Per rank: id -> document, for every acknowledged anomaly record.
  std::vector<std::map<int64_t, std::string>> acked(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      Client client = Client::ConnectRank(dir.path(), r, options);
      auto collection = client.database().collection("anomalies");
      const auto& records = RealRecords("anomalies");

      // Keep sending until the server refuses or goes away; collect what it
      // acknowledged.
      std::deque<std::pair<client::PendingIds, std::vector<std::string>>> pending;
      auto settle = [&](std::size_t keep) {
        while (pending.size() > keep) {
          auto [handle, docs] = std::move(pending.front());
          pending.pop_front();
          const auto& ids = handle.wait();
          std::lock_guard lock(mutex);
          for (std::size_t i = 0; i < ids.size(); ++i) acked[r][ids[i]] = docs[i];
          acknowledged += static_cast<int64_t>(ids.size());
        }
      };
      try {
        for (int round = 0; round < 50; ++round) {
          for (std::size_t start = r * 10; start < records.size(); start += 200) {
            std::vector<std::string> docs(records.begin() + start,
                                          records.begin() + std::min(records.size(), start + 10));
            pending.emplace_back(collection.store_multi_async(docs), docs);
            settle(8);
          }
        }
        settle(0);
      } catch (const Error& e) {
        EXPECT_TRUE(e.code() == ErrorCode::kUnavailable || e.code() == ErrorCode::kTimeout)
            << e.what();
      }
      // Whatever is still pending may or may not have been committed.
      ++finished;
    });
  }

  while (acknowledged.load() < 500 && finished.load() < kRanks) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_LT(finished.load(), kRanks) << "every rank stopped before the server was stopped";
  if (GetParam() == StopBy::kCommand) {
    EXPECT_EQ(testing::RunProvdb({"stop", "--dir", dir.path().string()}), 0);
  } else {
    server.Signal(SIGTERM);
  }
  EXPECT_EQ(server.WaitExit(), 0) << server.LogText();
  for (auto& t : threads) t.join();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / protocol::AddressFileName(0)));

  const std::string log = server.LogText();
  EXPECT_NE(log.find(GetParam() == StopBy::kCommand ? "stop requested" : "SIGTERM"),
            std::string::npos)
      << log;

  storage::Options read_only;
  read_only.read_only = true;
  read_only.create = false;
  std::vector<std::unique_ptr<storage::Database>> shards;
  for (int k = 0; k < kShards; ++k) {
    shards.push_back(
        std::make_unique<storage::Database>(dir.path() / storage::ShardFileName(k), read_only));
  }
  int64_t checked = 0;
  for (int r = 0; r < kRanks; ++r) {
    for (const auto& [id, doc] : acked[r]) {
      auto record = shards[r % kShards]->fetch("anomalies", id);
      auto stored = nlohmann::json::parse(record.json);
      stored.erase("__id");
      ASSERT_EQ(stored, nlohmann::json::parse(doc)) << "rank " << r << " id " << id;
      ++checked;
    }
  }
  EXPECT_GE(checked, 500);
}

INSTANTIATE_TEST_SUITE_P(Server, StopDuringIngest,
                         ::testing::Values(StopBy::kCommand, StopBy::kSigterm),
                         [](const auto& info) {
                           return info.param == StopBy::kCommand ? "ProvdbStop" : "Sigterm";
                         });

}  // namespace
}  // namespace provdb
