// Tests of the read-only query paths: filters, raw SELECTs, what they refuse,
// and their time and row limits.
#include <gtest/gtest.h>

#include <functional>

#include "common/error.hpp"
#include "storage/database.hpp"
#include "temp_dir.hpp"

namespace provdb::storage {
namespace {

using testing::TempDir;

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<Database>(dir_ / "provdb.0.sqlite");
    db_->create_collection("anomalies");
    db_->create_collection("metadata");
    db_->store_multi("anomalies",
                     {R"({"fid":500,"rid":0,"call_stack":[{"func":"a"},{"func":"MPI_Send"}]})",
                      R"({"fid":501,"rid":1,"call_stack":[{"func":"b"}]})",
                      R"({"fid":500,"rid":1,"gpu_location":{"device":0,"stream":7}})"});
    db_->store_multi("metadata", {R"({"rid":1,"descr":"GPU[0] Name","value":"V100"})"});
  }

  // The error a query gives: its code and message.
  std::pair<ErrorCode, std::string> Failure(const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return {e.code(), e.what()};
    }
    return {ErrorCode::kInternal, "no error"};
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(QueryTest, FilterSelectsRecordsInIdOrder) {
  auto records = db_->filter("anomalies", "fid = 500");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].id, 0);
  EXPECT_EQ(records[1].id, 2);
  EXPECT_EQ(records[1].json.rfind("{\"__id\":2,", 0), 0u);

  EXPECT_EQ(db_->count("anomalies", "fid = 500 AND rid % 2 = 1"), 1);
  EXPECT_EQ(db_->count("anomalies", "gpu_location.device = 0"), 1);
  EXPECT_EQ(db_->count("anomalies", "gpu_location.stream = 7 AND rid = 1"), 1);
  EXPECT_EQ(db_->count("anomalies", "call_stack[1].func = 'MPI_Send'"), 1);
  EXPECT_EQ(db_->count("anomalies", "missing_field = 1"), 0);
  EXPECT_EQ(db_->count("anomalies",
                       "EXISTS (SELECT 1 FROM json_each(call_stack) AS f "
                       "WHERE f.value ->> 'func' LIKE 'MPI%')"),
            1);
  EXPECT_EQ(db_->count("metadata", "\"descr\" = 'GPU[0] Name' AND value = 'V100'"), 1);
  EXPECT_EQ(db_->count("anomalies", "rid IN (SELECT rid FROM metadata WHERE descr LIKE 'GPU%')"),
            2);
}

TEST_F(QueryTest, IndexedFilterUsesTheIndex) {
  QueryResult plan = db_->query(
      "EXPLAIN QUERY PLAN SELECT \"__id\", doc FROM anomalies WHERE (\"fid\" = 500) "
      "ORDER BY \"__id\"");
  std::string details;
  for (const auto& row : plan.rows) details += std::get<std::string>(row.back()) + "\n";
  EXPECT_NE(details.find("USING INDEX"), std::string::npos) << details;
  EXPECT_EQ(details.find("SCAN"), std::string::npos) << details;
}

TEST_F(QueryTest, RawSelectReturnsTypedColumns) {
  QueryResult r = db_->query(
      "SELECT fid, count(*) AS n, avg(rid) AS mean, max(doc ->> '$.call_stack[0].func') "
      "FROM anomalies GROUP BY fid ORDER BY fid");
  EXPECT_EQ(r.columns, (std::vector<std::string>{"fid", "n", "mean",
                                                 "max(doc ->> '$.call_stack[0].func')"}));
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(std::get<int64_t>(r.rows[0][0]), 500);
  EXPECT_EQ(std::get<int64_t>(r.rows[0][1]), 2);
  EXPECT_DOUBLE_EQ(std::get<double>(r.rows[0][2]), 0.5);
  EXPECT_EQ(std::get<std::string>(r.rows[0][3]), "a");
  EXPECT_TRUE(std::holds_alternative<std::string>(r.rows[1][3]));

  QueryResult joined = db_->query(
      "SELECT a.__id, m.doc ->> 'value' FROM anomalies a JOIN metadata m ON a.rid = m.rid "
      "ORDER BY a.__id;  ");
  EXPECT_EQ(joined.rows.size(), 2u);

  QueryResult frames = db_->query(
      "WITH f AS (SELECT value ->> 'func' AS func FROM anomalies, json_each(doc, "
      "'$.call_stack')) SELECT func FROM f ORDER BY func");
  EXPECT_EQ(frames.rows.size(), 3u);
}

TEST_F(QueryTest, RefusesWhatIsNotOneRead) {
  struct Case {
    std::string sql;
    ErrorCode code;
    std::string says;
  };
  std::vector<Case> cases = {
      {"INSERT INTO anomalies(doc) VALUES ('{}')", ErrorCode::kQueryRefused, "insert"},
      {"DELETE FROM anomalies", ErrorCode::kQueryRefused, "delete"},
      {"UPDATE anomalies SET doc = '{}'", ErrorCode::kQueryRefused, "update"},
      {"DROP TABLE anomalies", ErrorCode::kQueryRefused, "schema"},
      {"CREATE TABLE t(x)", ErrorCode::kQueryRefused, "schema"},
      {"ATTACH DATABASE ':memory:' AS other", ErrorCode::kQueryRefused, "attach"},
      {"PRAGMA journal_mode = DELETE", ErrorCode::kQueryRefused, "PRAGMA"},
      {"PRAGMA table_info(anomalies)", ErrorCode::kQueryRefused, "PRAGMA"},
      {"BEGIN", ErrorCode::kQueryRefused, "transaction"},
      {"SELECT 1; DELETE FROM anomalies", ErrorCode::kQueryRefused, "more than one statement"},
      {"SELECT 1; SELECT 2", ErrorCode::kQueryRefused, "more than one statement"},
      {"WITH x AS (SELECT 1) DELETE FROM anomalies", ErrorCode::kQueryRefused, "delete"},
      {"WITH x AS (DELETE FROM anomalies RETURNING 1) SELECT * FROM x",
       ErrorCode::kQuerySyntax, "does not compile"},
      {"SELEKT 1", ErrorCode::kQuerySyntax, "does not compile"},
      {"SELECT nope FROM anomalies", ErrorCode::kQuerySyntax, "no such column"},
      {"   ", ErrorCode::kQuerySyntax, "empty"},
  };
  for (const Case& c : cases) {
    auto [code, message] = Failure([&] { db_->query(c.sql); });
    EXPECT_EQ(code, c.code) << c.sql << ": " << message;
    EXPECT_NE(message.find(c.says), std::string::npos) << c.sql << ": " << message;
  }
  EXPECT_EQ(db_->size("anomalies"), 3);
  EXPECT_NO_THROW(db_->query("SELECT 1; -- trailing comment"));
}

TEST_F(QueryTest, FilterRefusesWhatIsNotAnExpression) {
  auto [code, message] = Failure([&] { db_->filter("anomalies", "1; DROP TABLE anomalies"); });
  EXPECT_EQ(code, ErrorCode::kQueryRefused) << message;
  EXPECT_NE(message.find("';'"), std::string::npos) << message;

  std::tie(code, message) = Failure([&] { db_->filter("anomalies", "fid = = 1"); });
  EXPECT_EQ(code, ErrorCode::kQuerySyntax) << message;
  EXPECT_NE(message.find("fid = = 1"), std::string::npos) << message;

  std::tie(code, message) = Failure([&] { db_->filter("nothing", "fid = 1"); });
  EXPECT_EQ(code, ErrorCode::kNotFound) << message;

  std::tie(code, message) =
      Failure([&] { db_->filter("anomalies", "fid = 1) UNION SELECT 1, 2 --"); });
  EXPECT_NE(code, ErrorCode::kInternal) << message;
  EXPECT_EQ(db_->size("anomalies"), 3);
}

TEST_F(QueryTest, TimeLimitStopsARunawayQuery) {
  QueryLimits limits;
  limits.time_limit = std::chrono::milliseconds(200);
  auto [code, message] = Failure([&] {
    db_->query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT count(*) FROM n",
               limits);
  });
  EXPECT_EQ(code, ErrorCode::kQueryLimit) << message;
  EXPECT_NE(message.find("time limit of 200 ms"), std::string::npos) << message;

  std::tie(code, message) = Failure([&] {
    // Three records joined with themselves twenty times: 3^20 rows to count.
    std::string joins = "SELECT count(*) FROM anomalies AS a0";
    for (int i = 1; i < 20; ++i) joins += " JOIN anomalies AS a" + std::to_string(i);
    db_->count("anomalies", "fid IN (" + joins + ")", limits);
  });
  EXPECT_EQ(code, ErrorCode::kQueryLimit) << message;

  // The connection is usable again afterwards.
  EXPECT_EQ(db_->count("anomalies", "fid = 500"), 2);
}

TEST_F(QueryTest, RowLimitStopsAHugeResult) {
  QueryLimits limits;
  limits.row_limit = 1000;
  auto [code, message] = Failure([&] {
    db_->query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT i FROM n",
               limits);
  });
  EXPECT_EQ(code, ErrorCode::kQueryLimit) << message;
  EXPECT_NE(message.find("row limit of 1000"), std::string::npos) << message;

  limits.row_limit = 1;
  std::tie(code, message) = Failure([&] { db_->filter("anomalies", "fid = 500", limits); });
  EXPECT_EQ(code, ErrorCode::kQueryLimit) << message;
  EXPECT_EQ(db_->filter("anomalies", "fid = 501", limits).size(), 1u);

  Options options;
  options.query_row_limit = 2;
  db_.reset();
  Database db(dir_ / "provdb.0.sqlite", options);
  EXPECT_EQ(Failure([&] { db.all("anomalies"); }).first, ErrorCode::kInternal)
      << "all() is not a query and has no row limit";
  EXPECT_EQ(Failure([&] { db.query("SELECT * FROM anomalies"); }).first, ErrorCode::kQueryLimit);
}

TEST_F(QueryTest, HugeValuesAndResultsAreRefused) {
  // One value far larger than any document: SQLite refuses to build it.
  auto [code, message] = Failure([&] { db_->query("SELECT zeroblob(1000000000)"); });
  EXPECT_EQ(code, ErrorCode::kQuerySyntax) << message;
  EXPECT_NE(message.find("too big"), std::string::npos) << message;

  // Many rows, each small, adding up past the byte limit.
  Options options;
  options.query_byte_limit = 1 << 20;
  db_.reset();
  Database db(dir_ / "provdb.0.sqlite", options);
  std::tie(code, message) = Failure([&] {
    db.query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
             "SELECT printf('%.100c', 'x') FROM n");
  });
  EXPECT_EQ(code, ErrorCode::kQueryLimit) << message;
  EXPECT_NE(message.find("1 MiB"), std::string::npos) << message;
  EXPECT_EQ(db.count("anomalies", "fid = 500"), 2);
}

}  // namespace
}  // namespace provdb::storage
