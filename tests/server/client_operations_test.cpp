// Every collection and database operation of the client against a real
// server, the errors it rethrows, and the status and stop requests.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "client/client.hpp"
#include "error_code_of.hpp"
#include "protocol/address_dir.hpp"
#include "server_process.hpp"

namespace provdb {
namespace {

using client::Client;
using testing::ServerProcess;
using testing::CodeOf;
using testing::TempDir;

TEST(ClientOperations, CollectionAndDatabaseCalls) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--shards", "2"});

  client::ClientOptions options;
  options.max_outstanding = 2;  // asynchronous sends must wait, not fail
  Client rank = Client::ConnectRank(dir.path(), 3, options);
  EXPECT_EQ(rank.num_shards(), 2);
  auto& db = rank.database();
  EXPECT_EQ(db.name(), "1");

  // Collections: the defaults exist, others can be created.
  auto names = db.list_collections();
  EXPECT_NE(std::find(names.begin(), names.end(), "anomalies"), names.end());
  auto custom = db.create_collection("custom");
  EXPECT_EQ(CodeOf([&] { db.create_collection("custom"); }), ErrorCode::kAlreadyExists);
  EXPECT_EQ(CodeOf([&] { db.create_collection("bad name"); }), ErrorCode::kInvalidArgument);

  // Stores, synchronous and not.
  EXPECT_FALSE(custom.last_record_id().has_value());
  const int64_t first = custom.store(R"({"fid":1,"rid":3})");
  std::vector<client::PendingIds> pending;
  for (int i = 0; i < 100; ++i) {
    pending.push_back(custom.store_async(nlohmann::json{{"fid", i}, {"rid", 3}}.dump()));
  }
  custom.store_multi_nowait({R"({"fid":1000})", R"({"fid":1001})"});
  rank.wait_all();
  for (auto& p : pending) EXPECT_TRUE(p.ready());
  EXPECT_EQ(custom.size(), 103);
  EXPECT_EQ(custom.last_record_id(), pending.back().wait().at(0) + 2);
  EXPECT_EQ(rank.failed_sends(), 0u);

  // A bad document fails its batch only, and fire-and-forget counts it.
  EXPECT_EQ(CodeOf([&] { custom.store_multi({R"({"fid":7})", "[1]"}); }),
            ErrorCode::kBadDocument);
  custom.store_multi_nowait({"not json"});
  rank.wait_all();
  EXPECT_EQ(rank.failed_sends(), 1u);
  EXPECT_EQ(custom.size(), 103);
  EXPECT_EQ(CodeOf([&] { db.collection("missing").store("{}"); }), ErrorCode::kNotFound);

  // Documents over 16 MiB: refused by the server, or by the client before
  // sending when the frame would exceed the server's ZeroMQ limit.
  const std::string big = R"({"pad":")" + std::string((16u << 20) + 1000, 'x') + R"("})";
  EXPECT_EQ(CodeOf([&] { custom.store(big); }), ErrorCode::kBadDocument);
  const std::string huge = R"({"pad":")" + std::string(18u << 20, 'x') + R"("})";
  EXPECT_EQ(CodeOf([&] { custom.store_async(huge).wait(); }), ErrorCode::kBadDocument);
  EXPECT_EQ(custom.size(), 103);

  // Reads.
  auto record = custom.fetch(first);
  EXPECT_EQ(record.id, first);
  EXPECT_EQ(nlohmann::json::parse(record.json)["__id"], first);
  EXPECT_EQ(CodeOf([&] { custom.fetch(99999); }), ErrorCode::kNotFound);
  auto some = custom.fetch_multi({first, 99999});
  EXPECT_TRUE(some[0].has_value());
  EXPECT_FALSE(some[1].has_value());
  EXPECT_EQ(custom.filter("fid < 10").size(), 11u);
  EXPECT_EQ(custom.count("fid >= 1000"), 2);
  EXPECT_EQ(CodeOf([&] { custom.filter("fid = = 1"); }), ErrorCode::kQuerySyntax);
  EXPECT_EQ(custom.all().size(), 103u);

  // Updates and erases.
  EXPECT_TRUE(custom.update(first, R"({"fid":-1})"));
  EXPECT_EQ(custom.update_multi({{first, R"({"fid":-2})"}, {99999, "{}"}}),
            (std::vector<bool>{true, false}));
  EXPECT_EQ(nlohmann::json::parse(custom.fetch(first).json)["fid"], -2);
  EXPECT_TRUE(custom.erase(first));
  EXPECT_EQ(custom.erase_multi({first, first + 1}), (std::vector<bool>{false, true}));
  EXPECT_EQ(custom.size(), 101);

  // SQL.
  auto result = db.query("SELECT count(*) AS n FROM custom WHERE doc ->> 'fid' >= 1000");
  ASSERT_EQ(result.columns, std::vector<std::string>{"n"});
  EXPECT_EQ(std::get<int64_t>(result.rows.at(0).at(0)), 2);
  EXPECT_EQ(CodeOf([&] { db.query("DELETE FROM custom"); }), ErrorCode::kQueryRefused);

  // Status of the instance, with this rank connected.
  auto status = rank.status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0]["clients"]["rank"], 1);
  EXPECT_EQ(status[0]["databases"][1]["collections"]["custom"], 101);
  EXPECT_GE(status[0]["ingest"]["records"].get<int64_t>(), 103);
  EXPECT_EQ(testing::RunProvdb({"status", "--dir", dir.path().string(), "--json"}), 0);

  // After disconnect every call is refused.
  rank.disconnect();
  EXPECT_EQ(CodeOf([&] { custom.size(); }), ErrorCode::kUnavailable);
  EXPECT_EQ(CodeOf([&] { rank.shard(0); }), ErrorCode::kUnavailable);

  // The rank left, so the server stopped on its own.
  EXPECT_EQ(server.WaitExit(), 0) << server.LogText();
}

TEST(ClientOperations, ShardAssignmentFileAndStopRequest) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--shards", "3", "--no-autoshutdown"});
  {
    std::ofstream assignment(dir.path() / "assignment");
    assignment << "2\n0\n1\n";
  }
  {
    Client rank = Client::ConnectRank(dir.path(), 0, dir.path() / "assignment");
    EXPECT_EQ(rank.database().name(), "2");
    rank.database().collection("metadata").store(R"({"rid":0,"descr":"x","value":1})");
    EXPECT_EQ(CodeOf([&] { Client::ConnectRank(dir.path(), 5, dir.path() / "assignment"); }),
              ErrorCode::kInvalidArgument);
  }
  // With --no-autoshutdown the instance outlives its last rank.
  Client tool = Client::ConnectTool(dir.path());
  EXPECT_EQ(tool.shard(2).collection("metadata").size(), 1);
  EXPECT_EQ(CodeOf([&] { tool.database(); }), ErrorCode::kInvalidArgument);
  tool.stop_servers();
  EXPECT_EQ(server.WaitExit(), 0) << server.LogText();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / protocol::AddressFileName(0)));
}

TEST(ClientOperations, StatusAndStopWithOneInstanceGone) {
  TempDir dir;
  ServerProcess first(dir.path(), {"--shards", "2", "--instance", "0", "--instances", "2"});
  ServerProcess second(dir.path(), {"--shards", "2", "--instance", "1", "--instances", "2"});
  ASSERT_TRUE(testing::WaitForFile(dir.path() / protocol::AddressFileName(1)));
  second.Signal(SIGTERM);
  EXPECT_EQ(second.WaitExit(), 0) << second.LogText();

  {
    Client tool = Client::ConnectTool(dir.path());
    const auto status = tool.status();
    ASSERT_EQ(status.size(), 2u);
    EXPECT_TRUE(status[0]["running"].get<bool>());
    EXPECT_EQ(status[0]["databases"].size(), 2u);  // shard 0 and global
    EXPECT_FALSE(status[1]["running"].get<bool>());
  }
  EXPECT_EQ(testing::RunProvdb({"status", "--dir", dir.path().string()}), 0);
  EXPECT_EQ(testing::RunProvdb({"stop", "--dir", dir.path().string()}), 0);
  EXPECT_EQ(first.WaitExit(), 0) << first.LogText();
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "provider.map"));
}

}  // namespace
}  // namespace provdb
