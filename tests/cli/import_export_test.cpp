// provdb import and export: the real records go in, come back out as JSON
// lines and as one SQLite file, and a round trip keeps every document.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <fstream>

#include "cli_test_util.hpp"

namespace provdb::testing {
namespace {

using nlohmann::json;

// Documents as compared after a round trip: parsed, without the record id
// the database assigns.
std::vector<json> Comparable(const std::vector<std::string>& lines) {
  std::vector<json> out;
  for (const auto& l : lines) {
    json doc = json::parse(l);
    doc.erase("__id");
    out.push_back(std::move(doc));
  }
  std::sort(out.begin(), out.end());
  return out;
}

RunResult Export(const std::string& dir, const std::string& collection) {
  return RunProvdb({"export", "--dir", dir, collection});
}

TEST(ImportExportTest, RoundTripKeepsEveryDocument) {
  TempDir tmp;
  const std::string first = tmp / "first";
  const std::string second = tmp / "second";
  const std::string file = (DataDir() / "anomalies.jsonl.xz").string();

  RunResult r = RunProvdb({"import", "--dir", first, "--shards", "2", "anomalies", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("imported 2,290 records"), std::string::npos) << r.out;

  // Spread by rid: each recorded rank's records are in shard rid mod 2.
  r = RunProvdb({"query", "--dir", first, "anomalies", "--count", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto per_rank = BundledCountsByRank("anomalies");
  const json counts = json::parse(r.out);
  EXPECT_EQ(counts[0].at("count"), per_rank.at(0));
  EXPECT_EQ(counts[1].at("count"), per_rank.at(1));

  const RunResult exported = Export(first, "anomalies");
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const auto original = Comparable(BundledRecords("anomalies"));
  ASSERT_EQ(Comparable(Lines(exported.out)), original);

  // Exported lines carry "__id"; importing them gives the same documents.
  const std::string exported_file = tmp / "anomalies.jsonl";
  std::ofstream(exported_file) << exported.out;
  r = RunProvdb({"import", "--dir", second, "--shards", "2", "anomalies", exported_file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const RunResult again = Export(second, "anomalies");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, exported.out);
}

TEST(ImportExportTest, JsonArrayIntoOneShard) {
  TempDir tmp;
  const auto records = BundledRecords("metadata");
  std::ofstream out(tmp / "metadata.json");
  out << "[\n";
  for (std::size_t i = 0; i < 100; ++i) out << (i > 0 ? ",\n" : "") << records[i];
  out << "\n]\n";
  out.close();

  const std::string dir = tmp / "db";
  RunResult r = RunProvdb({"import", "--dir", dir, "--shards", "3", "metadata",
                           (DataDir() / "metadata.jsonl.xz").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunProvdb({"import", "--dir", dir, "--shard", "2", "metadata", tmp / "metadata.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = RunProvdb({"query", "--dir", dir, "--shard", "2", "metadata", "--count", "--format",
                 "csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).at(1), "2,100");  // recorded ranks 0 and 1 go to shards 0 and 1
}

TEST(ImportExportTest, BadLineStopsItsBatch) {
  TempDir tmp;
  const auto records = BundledRecords("normalexecs");
  std::ofstream out(tmp / "bad.jsonl");
  out << records[0] << "\n" << records[1] << "\n" << records[2] << "\n{\"rid\": 1, oops\n"
      << records[3] << "\n";
  out.close();

  const std::string dir = tmp / "db";
  RunResult r = RunProvdb({"import", "--dir", dir, "--batch", "2", "normalexecs",
                           tmp / "bad.jsonl"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.jsonl line 4"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 3 was stored"), std::string::npos) << r.err;

  // Lines 1 and 2 made a full batch; line 3 shared its batch with line 4.
  r = RunProvdb({"query", "--dir", dir, "normalexecs", "--count", "--format", "csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).at(1), "0,2");
}

TEST(ImportExportTest, ImportRefusesALiveServer) {
  TempDir tmp;
  std::ofstream(tmp / "provider.address.0") << "tcp://127.0.0.1:9\n";
  const RunResult r = RunProvdb({"import", "--dir", tmp.path().string(), "metadata",
                                 (DataDir() / "metadata.jsonl.xz").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("stop it first"), std::string::npos) << r.err;
}

TEST(ImportExportTest, ShardOptionsAreCheckedWithAdviceThatWorks) {
  TempDir tmp;
  const std::string file = tmp / "one.jsonl";
  std::ofstream(file) << R"({"rid":0,"x":1})" << "\n";
  const std::string dir = tmp / "db";

  RunResult r = RunProvdb({"import", "--dir", dir, "--shard", "-1", "misc", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--shard -1 is not a shard"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("shard -1"), std::string::npos) << r.out;
  r = RunProvdb({"import", "--dir", dir, "--shards", "0", "misc", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--shards 0 is not a number of shards"), std::string::npos) << r.err;

  // The advice for a shard of a new directory is a command that works.
  r = RunProvdb({"import", "--dir", dir, "--shard", "3", "misc", file});
  EXPECT_EQ(r.exit_code, 1);
  const std::string advice = "--shards 4 misc - < /dev/null";
  ASSERT_NE(r.err.find(advice), std::string::npos) << r.err;
  const RunResult make = RunProvdb({"import", "--dir", dir, "--shards", "4", "misc", "-"});
  ASSERT_EQ(make.exit_code, 0) << make.err;
  r = RunProvdb({"import", "--dir", dir, "--shard", "3", "misc", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("imported 1 record into misc (shard 3)"), std::string::npos) << r.out;

  // Once made, the number of shards is fixed; the advice says so.
  r = RunProvdb({"import", "--dir", dir, "--shard", "9", "misc", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("choose a shard below 4"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("--shards N"), std::string::npos) << r.err;

  r = RunProvdb({"import", "--dir", file, "misc", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is not a directory"), std::string::npos) << r.err;
}

TEST(ImportExportTest, TruncatedXzIsReportedAsSuch) {
  TempDir tmp;
  std::ifstream in(DataDir() / "normalexecs.jsonl.xz", std::ios::binary);
  std::string bytes(20000, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const std::string file = tmp / "cut.jsonl.xz";
  std::ofstream(file, std::ios::binary) << bytes;

  const RunResult r = RunProvdb({"import", "--dir", tmp / "db", "normalexecs", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is truncated or corrupt"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Unexpected end of input"), std::string::npos) << "xz's own words: "
                                                                       << r.err;
  EXPECT_EQ(r.err.find("not valid JSON"), std::string::npos) << r.err;
}

TEST(ImportExportTest, ArrayElementsCountFromOneAndAByteOrderMarkIsSkipped) {
  TempDir tmp;
  const std::string array = tmp / "array.json";
  std::ofstream(array) << "\xEF\xBB\xBF[{\"a\":1},{\"b\":2},3]\n";
  RunResult r = RunProvdb({"import", "--dir", tmp / "db", "misc", array});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("array.json element 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("starting at " + (tmp / "array.json") + " element 1"),
            std::string::npos) << r.err;

  const std::string lines = tmp / "bom.jsonl";
  std::ofstream(lines) << "\xEF\xBB\xBF{\"a\":1}\n{\"a\":2}\n";
  r = RunProvdb({"import", "--dir", tmp / "db", "misc", lines});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("imported 2 records into misc (1 shard)"), std::string::npos) << r.out;
}

int64_t SqliteCount(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
  int64_t n = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) n = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return n;
}

TEST(ImportExportTest, OneSqliteFileWithShardColumn) {
  TempDir tmp;
  const std::string dir = tmp / "run";
  RunResult r = RunProvdb({"replay", "--dir", dir, "--ranks", "2", "--shards", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const std::string file = tmp / "all.sqlite";
  r = RunProvdb({"export", "--dir", dir, "--sqlite", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunProvdb({"export", "--dir", dir, "--sqlite", file});
  EXPECT_EQ(r.exit_code, 1) << "an existing file is kept unless --force";

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  EXPECT_EQ(SqliteCount(db, "SELECT count(*) FROM anomalies"), 2290);
  EXPECT_EQ(SqliteCount(db, "SELECT count(*) FROM anomalies WHERE shard = rid"), 2290);
  EXPECT_EQ(SqliteCount(db, "SELECT count(*) FROM metadata WHERE shard = 1"), 972);
  EXPECT_EQ(SqliteCount(db, "SELECT count(*) FROM anomalies "
                            "WHERE json_extract(doc, '$.fid') = 500"), 12);
  EXPECT_EQ(SqliteCount(db, "SELECT count(*) FROM func_stats"), 404);
  sqlite3_close(db);
}

}  // namespace
}  // namespace provdb::testing
