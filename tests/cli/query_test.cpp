// provdb query on the real records: a replay with two ranks into two shards
// stores the bundled records exactly once (rank r replays recorded rank r),
// so the known facts of the data hold; every format must parse, cross-shard
// aggregates must add up, and mistakes must get clear errors.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

#include "cli_test_util.hpp"

namespace provdb::testing {
namespace {

using nlohmann::json;

class QueryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const RunResult r = RunProvdb({"replay", "--dir", run(), "--ranks", "2", "--shards", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string run() { return *dir_ / "run"; }

  // Runs `provdb query --dir <run> args...` and expects success.
  static std::string Query(std::vector<std::string> args) {
    args.insert(args.begin(), {"query", "--dir", run()});
    const RunResult r = RunProvdb(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  // The total of a --count query.
  static int64_t Count(std::vector<std::string> args) {
    args.insert(args.end(), {"--count", "--format", "json"});
    const json rows = json::parse(Query(args));
    return rows.back().at("count").get<int64_t>();
  }

  static TempDir* dir_;
};

TempDir* QueryTest::dir_ = nullptr;

TEST_F(QueryTest, KnownFactsOfTheData) {
  EXPECT_EQ(Count({"anomalies"}), 2290);
  EXPECT_EQ(Count({"normalexecs"}), 4334);
  EXPECT_EQ(Count({"metadata"}), 1944);
  EXPECT_EQ(Count({"anomalies", "--where", "fid = 500"}), 12);
  EXPECT_EQ(Count({"anomalies", "--where", "runtime_exclusive > 100000"}), 24);
  EXPECT_EQ(Count({"metadata", "--where", "descr = 'GPU[0] Name'"}), 54);
}

TEST_F(QueryTest, JsonFormatsParse) {
  const json all = json::parse(Query({"anomalies", "--where", "fid = 500", "--format", "json"}));
  ASSERT_EQ(all.size(), 12u);
  for (const auto& doc : all) {
    EXPECT_EQ(doc.at("fid"), 500);
    EXPECT_TRUE(doc.contains("__id"));
    EXPECT_EQ(doc.at("__shard"), doc.at("rid"));  // two ranks, two shards
  }

  const auto lines = Lines(Query({"anomalies", "--where", "fid = 500", "--format", "jsonl"}));
  ASSERT_EQ(lines.size(), 12u);
  for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(json::parse(lines[i]), all[i]);
}

TEST_F(QueryTest, CsvHasHeaderAndNestedFields) {
  const std::string fields = "__shard,fid,gpu_location.device,call_stack[0].func";
  const auto lines = Lines(Query({"anomalies", "--where", "is_gpu_event", "--format", "csv",
                                  "--fields", fields}));
  ASSERT_GT(lines.size(), 1u);
  EXPECT_EQ(lines[0], fields);
  EXPECT_EQ(lines.size() - 1, 119u);  // the README's GPU anomalies
  for (std::size_t i = 1; i < lines.size(); ++i) {
    // shard, fid and device are numbers; the function name may be quoted.
    const std::size_t a = lines[i].find(',');
    const std::size_t b = lines[i].find(',', a + 1);
    const std::size_t c = lines[i].find(',', b + 1);
    ASSERT_NE(c, std::string::npos) << lines[i];
    EXPECT_GT(c, b + 1) << "a GPU event without a device: " << lines[i];
  }
}

TEST_F(QueryTest, TableIsAligned) {
  const auto lines = Lines(Query({"metadata", "--where", "descr = 'GPU[0] Name'", "--format",
                                  "table"}));
  ASSERT_EQ(lines.size(), 2u + 54u);
  EXPECT_EQ(lines[0].rfind("__shard", 0), 0u);
  EXPECT_EQ(lines[1].find_first_not_of("- "), std::string::npos);
  // Every column starts where its header starts.
  const std::size_t value_column = lines[0].find("value");
  ASSERT_NE(value_column, std::string::npos);
  for (const auto& line : lines) {
    ASSERT_GT(line.size(), value_column) << line;
    EXPECT_EQ(line[value_column - 1], ' ') << line;
    EXPECT_NE(line[value_column], ' ') << line;
    EXPECT_NE(line.back(), ' ') << "no trailing blanks: " << line;
  }
}

TEST_F(QueryTest, CrossShardAggregatesEqualTheSumOverShards) {
  const int64_t shard0 = Count({"--shard", "0", "normalexecs"});
  const int64_t shard1 = Count({"--shard", "1", "normalexecs"});
  EXPECT_EQ(shard0 + shard1, Count({"normalexecs"}));

  // Anomalies per function: per-shard counts merged with sum().
  const json merged = json::parse(Query(
      {"--sql", "SELECT fid, count(*) AS n FROM anomalies GROUP BY fid", "--merge",
       "SELECT fid, sum(n) AS n FROM result GROUP BY fid ORDER BY fid", "--format", "json"}));
  std::map<int64_t, int64_t> expected;
  for (const char* shard : {"0", "1"}) {
    const json part = json::parse(Query({"--shard", shard, "--sql",
                                         "SELECT fid, count(*) AS n FROM anomalies GROUP BY fid",
                                         "--format", "json"}));
    for (const auto& row : part) {
      EXPECT_EQ(row.at("shard"), std::stoi(shard));
      expected[row.at("fid").get<int64_t>()] += row.at("n").get<int64_t>();
    }
  }
  int64_t total = 0;
  ASSERT_EQ(merged.size(), expected.size());
  for (const auto& row : merged) {
    EXPECT_EQ(row.at("n").get<int64_t>(), expected.at(row.at("fid").get<int64_t>()));
    total += row.at("n").get<int64_t>();
  }
  EXPECT_EQ(total, 2290);
}

TEST_F(QueryTest, FetchById) {
  const json docs = json::parse(Query({"anomalies", "--id", "5", "--format", "json"}));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].at("__id"), 5);
  EXPECT_EQ(docs[0].at("__shard"), 0);
  EXPECT_EQ(docs[1].at("__shard"), 1);
}

TEST_F(QueryTest, GlobalDatabase) {
  const auto lines = Lines(Query({"--global", "func_stats", "--format", "jsonl"}));
  EXPECT_EQ(lines.size(), 404u);  // distinct functions in the normal executions
  const json top = json::parse(Query({"--global", "func_stats", "--where", "fid = 500",
                                      "--format", "json"}));
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].at("anomaly_metrics").at("anomaly_count"), 12);
  EXPECT_FALSE(top[0].contains("__shard"));
}

TEST_F(QueryTest, ErrorsSayWhatWentWrong) {
  TempDir empty;
  RunResult r = RunProvdb({"query", "--dir", empty / "missing", "anomalies"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;

  r = RunProvdb({"query", "--dir", empty.path().string(), "anomalies"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("holds no provdb database"), std::string::npos) << r.err;

  r = RunProvdb({"query", "--dir", run(), "--online", "anomalies", "--count"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no server is running"), std::string::npos) << r.err;

  r = RunProvdb({"query", "--dir", run(), "anomalies", "--where", "fid = = 3"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("query syntax"), std::string::npos) << r.err;

  r = RunProvdb({"query", "--dir", run(), "anomalys"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown collection 'anomalys'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("anomalies"), std::string::npos) << r.err;

  r = RunProvdb({"query", "--dir", run(), "--shard", "7", "anomalies"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has 2 shards"), std::string::npos) << r.err;
}

TEST_F(QueryTest, NegativeIdsAndShardsAreRefused) {
  RunResult r = RunProvdb({"query", "--dir", run(), "--id", "-5", "anomalies"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << "no records for a refused id";
  EXPECT_NE(r.err.find("--id -5 is not a record id"), std::string::npos) << r.err;

  r = RunProvdb({"query", "--dir", run(), "--shard", "-1", "anomalies", "--count"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("--shard -1 is not a shard"), std::string::npos) << r.err;

  r = RunProvdb({"export", "--dir", run(), "--shard", "-1", "anomalies"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("--shard -1 is not a shard"), std::string::npos) << r.err;

  // Id 0 is an id like any other.
  EXPECT_EQ(json::parse(Query({"anomalies", "--id", "0", "--format", "json"})).size(), 2u);
}

TEST_F(QueryTest, MergeOnlyReads) {
  TempDir tmp;
  const std::string sql = "SELECT fid, count(*) AS n FROM anomalies GROUP BY fid";
  const std::string attached = tmp / "attached.db";
  RunResult r = RunProvdb({"query", "--dir", run(), "--sql", sql, "--merge",
                           "ATTACH DATABASE '" + attached + "' AS e"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("query refused"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(attached));

  r = RunProvdb({"query", "--dir", run(), "--sql", sql, "--merge", "DELETE FROM result"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("it would delete from result"), std::string::npos) << r.err;
}

TEST_F(QueryTest, RunawayStatementsStopAtTheTimeLimit) {
  const std::string endless =
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--sql", endless},
           {"--sql", "SELECT 1 AS one", "--merge", endless}}) {
    std::vector<std::string> full = {"query", "--dir", run(), "--time-limit", "0.5"};
    full.insert(full.end(), args.begin(), args.end());
    const auto start = std::chrono::steady_clock::now();
    const RunResult r = RunProvdb(full);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("time limit of 500 ms"), std::string::npos) << r.err;
  }

  const RunResult r =
      RunProvdb({"query", "--dir", run(), "--time-limit", "0", "--sql", "SELECT 1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--time-limit is a number of seconds"), std::string::npos) << r.err;
}

TEST_F(QueryTest, AFileIsNotADirectory) {
  TempDir tmp;
  const std::string file = tmp / "records.jsonl";
  std::ofstream(file) << "{}\n";
  const RunResult r = RunProvdb({"query", "--dir", file, "anomalies"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is not a directory"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("does not exist"), std::string::npos) << r.err;
}

// Address files left behind by a server that died: the query must not hang
// and must say what to do.
TEST_F(QueryTest, DeadServerIsReported) {
  TempDir dir;
  std::ofstream(dir / "provider.address.0") << "tcp://127.0.0.1:9\n";
  std::ofstream(dir / "provider.map") << "0 0\nglobal 0\n";
  const RunResult r =
      RunProvdb({"query", "--dir", dir.path().string(), "--timeout", "1", "anomalies"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not answer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("provider.address"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace provdb::testing
