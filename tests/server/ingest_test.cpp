// Two server instances with four shards take the real records from eight
// ranks and the parameter server, keep each rank's records in its shard,
// give them back through fetch and filter, and stop by themselves once every
// client has left, leaving files that hold exactly what was acknowledged.
#include <gtest/gtest.h>

#include <map>
#include <set>
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
using testing::WithRank;

constexpr int kShards = 4;
constexpr int kRanks = 8;
const std::vector<std::string> kCollections{"anomalies", "normalexecs", "metadata"};

// What one rank sent and got acknowledged: per collection, id -> document.
using Sent = std::map<std::string, std::map<int64_t, std::string>>;

// Rank r sends every record i with i mod 8 == r, its rid set to r, mixing
// synchronous, batched asynchronous and single asynchronous stores.
Sent StoreAsRank(Client& client, int rank) {
  Sent sent;
  auto& db = client.database();
  for (const auto& name : kCollections) {
    std::vector<std::string> docs;
    const auto& records = RealRecords(name);
    for (std::size_t i = rank; i < records.size(); i += kRanks) {
      docs.push_back(WithRank(records[i], rank));
    }

    auto collection = db.collection(name);
    std::vector<std::pair<client::PendingIds, std::vector<std::string>>> pending;
    for (std::size_t start = 0, batch = 0; start < docs.size(); start += 40, ++batch) {
      std::vector<std::string> part(docs.begin() + start,
                                    docs.begin() + std::min(docs.size(), start + 40));
      if (batch % 3 == 0) {
        auto ids = collection.store_multi(part);
        for (std::size_t i = 0; i < ids.size(); ++i) sent[name][ids[i]] = part[i];
      } else if (batch % 3 == 1) {
        pending.emplace_back(collection.store_multi_async(part), part);
      } else {
        for (auto& doc : part) {
          pending.emplace_back(collection.store_async(doc), std::vector<std::string>{doc});
        }
      }
    }
    for (auto& [handle, part] : pending) {
      const auto& ids = handle.wait();
      EXPECT_EQ(ids.size(), part.size());
      for (std::size_t i = 0; i < ids.size(); ++i) sent[name][ids[i]] = part[i];
    }
  }
  return sent;
}

nlohmann::json WithoutId(const std::string& json) {
  auto doc = nlohmann::json::parse(json);
  doc.erase("__id");
  return doc;
}

TEST(Ingest, TwoInstancesFourShardsEightRanksAndAutoshutdown) {
  TempDir dir;
  ServerProcess instance0(dir.path(), {"--shards", "4", "--instance", "0", "--instances", "2"});
  ServerProcess instance1(dir.path(), {"--shards", "4", "--instance", "1", "--instances", "2"});

  // Ranks connect while the servers are still starting: the client waits for
  // the address files.
  std::vector<std::unique_ptr<Client>> ranks(kRanks);
  std::vector<Sent> sent(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      ranks[r] = std::make_unique<Client>(Client::ConnectRank(dir.path(), r));
      EXPECT_EQ(ranks[r]->database().name(), std::to_string(r % kShards));
      sent[r] = StoreAsRank(*ranks[r], r);
    });
  }
  for (auto& t : threads) t.join();

  // The parameter server writes the global database.
  auto ps = std::make_unique<Client>(Client::ConnectGlobal(dir.path()));
  std::map<int64_t, std::string> func_stats;
  for (int fid = 0; fid < 25; ++fid) {
    const std::string doc = nlohmann::json{{"app", 0}, {"fid", fid}, {"name", "f"}}.dump();
    func_stats[ps->database().collection("func_stats").store(doc)] = doc;
  }
  ps->database().collection("ad_model").store_multi_async({R"({"pid":0,"fid":1})"}).wait();

  Client tool = Client::ConnectTool(dir.path());
  EXPECT_EQ(tool.num_shards(), kShards);
  EXPECT_EQ(tool.num_instances(), 2);
  std::map<std::pair<int, std::string>, int64_t> expected_sizes;

  for (int k = 0; k < kShards; ++k) {
    for (const auto& name : kCollections) {
      auto collection = tool.shard(k).collection(name);

      // Exactly the records of the shard's ranks, ids unique.
      std::set<int64_t> expected_ids;
      for (int r = k; r < kRanks; r += kShards) {
        for (const auto& [id, doc] : sent[r][name]) EXPECT_TRUE(expected_ids.insert(id).second);
      }
      const auto all = collection.all();
      std::set<int64_t> stored_ids;
      for (const auto& record : all) EXPECT_TRUE(stored_ids.insert(record.id).second);
      EXPECT_EQ(stored_ids, expected_ids) << "shard " << k << " " << name;
      EXPECT_EQ(collection.size(), static_cast<int64_t>(expected_ids.size()));
      expected_sizes[{k, name}] = static_cast<int64_t>(expected_ids.size());

      for (int r = k; r < kRanks; r += kShards) {
        // Filter and fetch give back what the rank sent.
        const auto filtered = collection.filter("rid = " + std::to_string(r));
        ASSERT_EQ(filtered.size(), sent[r][name].size());
        for (const auto& record : filtered) {
          ASSERT_TRUE(sent[r][name].count(record.id));
          EXPECT_EQ(WithoutId(record.json), nlohmann::json::parse(sent[r][name][record.id]));
        }
        std::vector<int64_t> ids;
        for (const auto& [id, doc] : sent[r][name]) ids.push_back(id);
        const auto fetched = collection.fetch_multi(ids);
        for (std::size_t i = 0; i < ids.size(); ++i) {
          ASSERT_TRUE(fetched[i].has_value());
          EXPECT_EQ(WithoutId(fetched[i]->json), nlohmann::json::parse(sent[r][name][ids[i]]));
        }
      }
      const int other = (k + 1) % kShards;
      EXPECT_EQ(collection.count("rid = " + std::to_string(other)), 0);
    }
  }

  auto global_stats = tool.global().collection("func_stats");
  EXPECT_EQ(global_stats.size(), 25);
  for (const auto& [id, doc] : func_stats) {
    EXPECT_EQ(WithoutId(global_stats.fetch(id).json), nlohmann::json::parse(doc));
  }
  EXPECT_EQ(tool.global().collection("ad_model").size(), 1);

  // A tool does not keep the servers up; the last rank or parameter server
  // leaving stops them.
  tool.disconnect();
  for (auto& rank : ranks) rank.reset();
  EXPECT_TRUE(std::filesystem::exists(dir.path() / protocol::AddressFileName(0)));
  ps.reset();

  EXPECT_EQ(instance0.WaitExit(), 0) << instance0.LogText();
  EXPECT_EQ(instance1.WaitExit(), 0) << instance1.LogText();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / protocol::AddressFileName(0)));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / protocol::AddressFileName(1)));
  EXPECT_NE(instance0.LogText().find("every rank and the parameter server left"),
            std::string::npos);

  // The files hold what was acknowledged.
  storage::Options read_only;
  read_only.read_only = true;
  read_only.create = false;
  for (int k = 0; k < kShards; ++k) {
    storage::Database db(dir.path() / storage::ShardFileName(k), read_only);
    for (const auto& name : kCollections) {
      EXPECT_EQ(db.size(name), (expected_sizes[{k, name}])) << "shard " << k << " " << name;
    }
  }
  storage::Database global(dir.path() / storage::GlobalFileName(), read_only);
  EXPECT_EQ(global.size("func_stats"), 25);
}

}  // namespace
}  // namespace provdb
