// End-to-end replay: four ranks into two shards against a server started
// with --no-autoshutdown, so that the same questions can be asked of the
// live server and, after it stops, of the files. Also the replay that starts
// and stops its own server.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "cli_test_util.hpp"

namespace provdb::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Questions whose answers must not depend on whether a server answers them.
const std::vector<std::vector<std::string>> kQuestions = {
    {"anomalies", "--count", "--format", "json"},
    {"normalexecs", "--count", "--format", "csv"},
    {"metadata", "--count", "--where", "descr = 'GPU[0] Name'", "--format", "table"},
    {"anomalies", "--where", "fid = 500", "--format", "jsonl"},
    {"normalexecs", "--id", "17", "--format", "json"},
    {"--shard", "1", "anomalies", "--where", "runtime_exclusive > 100000", "--format", "csv",
     "--fields", "__id,rid,event_id,call_stack[0].func"},
    {"--sql", "SELECT rid, count(*) AS n FROM normalexecs GROUP BY rid", "--format", "json"},
    {"--sql", "SELECT fid, count(*) AS n FROM anomalies GROUP BY fid", "--merge",
     "SELECT fid, sum(n) AS n FROM result GROUP BY fid ORDER BY n DESC, fid", "--format", "csv"},
    {"--global", "func_stats", "--format", "jsonl"},
    {"--global", "counter_stats", "--format", "jsonl"},
    {"--global", "ad_model", "--count", "--format", "json"},
};

std::vector<std::string> AskAll(const std::string& dir) {
  std::vector<std::string> answers;
  for (auto args : kQuestions) {
    args.insert(args.begin(), {"query", "--dir", dir});
    const RunResult r = RunProvdb(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    answers.push_back(r.out);
  }
  return answers;
}

json QueryJson(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {"query", "--dir", dir});
  args.insert(args.end(), {"--format", "json"});
  const RunResult r = RunProvdb(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

TEST(ReplayTest, EveryRecordOnceAndSameAnswersOnlineAndOffline) {
  TempDir tmp;
  const std::string dir = tmp / "run";
  fs::create_directories(dir);
  const pid_t server = StartProvdb(
      {"serve", "--dir", dir, "--shards", "2", "--no-autoshutdown"}, tmp.path() / "serve.log");
  ASSERT_TRUE(WaitForFile(fs::path(dir) / "provider.address.0", 30));

  const RunResult replay = RunProvdb({"replay", "--dir", dir, "--ranks", "4"});
  ASSERT_EQ(replay.exit_code, 0) << replay.err << replay.out;

  // Ranks 0 and 2 replay recorded rank 0 into shard 0, ranks 1 and 3
  // recorded rank 1 into shard 1.
  for (const char* collection : {"anomalies", "normalexecs", "metadata"}) {
    const auto per_rank = BundledCountsByRank(collection);
    const json counts = QueryJson(dir, {collection, "--count"});
    ASSERT_EQ(counts.size(), 3u);
    EXPECT_EQ(counts[0].at("count"), 2 * per_rank.at(0)) << collection;
    EXPECT_EQ(counts[1].at("count"), 2 * per_rank.at(1)) << collection;
    EXPECT_EQ(counts[2].at("count"), 2 * (per_rank.at(0) + per_rank.at(1))) << collection;

    // Exactly once: no event id (rank:step:index) is stored twice.
    if (std::string(collection) == "metadata") continue;
    const json distinct = QueryJson(
        dir, {"--sql", std::string("SELECT count(DISTINCT event_id) AS d, count(*) AS n FROM ") +
                           collection});
    for (const auto& row : distinct) EXPECT_EQ(row.at("d"), row.at("n")) << collection;
  }

  // Each function's statistics count every record seen for it.
  const json seen = QueryJson(
      dir, {"--sql",
            "SELECT fid, count(*) AS n FROM (SELECT fid FROM anomalies UNION ALL "
            "SELECT fid FROM normalexecs) GROUP BY fid",
            "--merge", "SELECT fid, sum(n) AS n FROM result GROUP BY fid"});
  const json stats = QueryJson(
      dir, {"--global", "--sql",
            "SELECT fid, json_extract(doc, '$.runtime_profile.inclusive_runtime.count') AS c, "
            "json_extract(doc, '$.runtime_profile.exclusive_runtime.count') AS e FROM func_stats"});
  std::map<int64_t, int64_t> expected;
  for (const auto& row : seen) expected[row.at("fid")] = row.at("n");
  ASSERT_EQ(stats.size(), expected.size());
  for (const auto& row : stats) {
    EXPECT_EQ(row.at("c"), expected.at(row.at("fid"))) << row;
    EXPECT_EQ(row.at("e"), expected.at(row.at("fid"))) << row;
  }

  const auto online = AskAll(dir);
  const RunResult stop = RunProvdb({"stop", "--dir", dir});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  ASSERT_EQ(WaitExit(server, 60), 0);
  ASSERT_FALSE(fs::exists(fs::path(dir) / "provider.address.0"));
  const auto offline = AskAll(dir);
  for (std::size_t i = 0; i < kQuestions.size(); ++i) {
    EXPECT_EQ(online[i], offline[i]) << "question " << i;
    EXPECT_FALSE(online[i].empty()) << "question " << i;
  }
}

TEST(ReplayTest, StartsAndStopsItsOwnServer) {
  TempDir tmp;
  const std::string dir = tmp / "run";
  const RunResult r = RunProvdb({"replay", "--dir", dir, "--ranks", "3", "--shards", "2",
                                 "--interval", "0.01", "--batch", "7"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("Stored counts match what the ranks sent."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Functions with most anomalies"), std::string::npos);
  EXPECT_NE(r.out.find("Try next"), std::string::npos);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "provdb.global.sqlite"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "provider.address.0"));

  // A second replay into the same directory would mix two runs.
  const RunResult again = RunProvdb({"replay", "--dir", dir, "--ranks", "1"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already holds"), std::string::npos) << again.err;
}

// A server started by the user shuts itself down when the replay's ranks
// leave; the summary must not depend on it still being there.
TEST(ReplayTest, UsesARunningServerThatStopsAfterIt) {
  TempDir tmp;
  const std::string dir = tmp / "run";
  fs::create_directories(dir);
  const pid_t server =
      StartProvdb({"serve", "--dir", dir, "--shards", "3"}, tmp.path() / "serve.log");
  ASSERT_TRUE(WaitForFile(fs::path(dir) / "provider.address.0", 30));

  const RunResult r = RunProvdb({"replay", "--dir", dir, "--ranks", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.err.find("Using the server running in"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("Stored counts match what the ranks sent."), std::string::npos) << r.out;
  EXPECT_EQ(WaitExit(server, 60), 0);
}

// The last progress line of a replay's standard error: "replay [...] P%
// DONE/TOTAL records, ..."; returns DONE.
int64_t LastProgressCount(const std::string& err) {
  int64_t done = -1;
  for (const auto& line : Lines(err)) {
    const std::size_t slash = line.find('/');
    if (line.rfind("replay [", 0) != 0 || slash == std::string::npos) continue;
    std::size_t start = line.rfind(' ', slash) + 1;
    std::string digits;
    for (std::size_t i = start; i < slash; ++i) {
      if (line[i] != ',') digits += line[i];
    }
    done = std::stoll(digits);
  }
  return done;
}

// A server stopped in the middle of a replay: the replay ends at once with
// an error, and its progress counts no more records than were stored.
TEST(ReplayTest, StoppedServerEndsTheReplayPromptly) {
  TempDir tmp;
  const std::string dir = tmp / "run";
  fs::create_directories(dir);
  const pid_t server = StartProvdb(
      {"serve", "--dir", dir, "--shards", "2", "--no-autoshutdown"}, tmp.path() / "serve.log");
  ASSERT_TRUE(WaitForFile(fs::path(dir) / "provider.address.0", 30));
  const fs::path log = tmp.path() / "replay.log";
  const pid_t replay =
      StartProvdb({"replay", "--dir", dir, "--ranks", "4", "--interval", "1"}, log);
  std::this_thread::sleep_for(std::chrono::seconds(3));

  ::kill(server, SIGTERM);
  ASSERT_EQ(WaitExit(server, 30), 0);
  const auto stopped = std::chrono::steady_clock::now();
  EXPECT_EQ(WaitExit(replay, 50), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, std::chrono::seconds(20));

  std::ifstream in(log.string() + ".err");
  const std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(err.find("replay stopped after"), std::string::npos) << err;
  int64_t stored = 0;
  for (const char* collection : {"anomalies", "normalexecs", "metadata"}) {
    stored += QueryJson(dir, {collection, "--count"}).back().at("count").get<int64_t>();
  }
  const int64_t shown = LastProgressCount(err);
  EXPECT_GE(shown, 0) << err;
  EXPECT_LE(shown, stored) << err;
}

// A replay killed in the middle must not leave its server waiting for ranks
// that will never say goodbye.
TEST(ReplayTest, KilledReplayStopsItsServer) {
  TempDir tmp;
  const std::string dir = tmp / "run";
  const pid_t replay = StartProvdb({"replay", "--dir", dir, "--ranks", "2", "--interval", "1"},
                                   tmp.path() / "replay.log");
  ASSERT_TRUE(WaitForFile(fs::path(dir) / "provider.address.0", 30));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(replay, SIGKILL);
  EXPECT_EQ(WaitExit(replay, 10), -1);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (fs::exists(fs::path(dir) / "provider.address.0") &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(fs::exists(fs::path(dir) / "provider.address.0"));
}

}  // namespace
}  // namespace provdb::testing
