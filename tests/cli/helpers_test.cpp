// Unit tests of the helpers behind the command line: running statistics,
// rewriting a record for another rank, field paths, the --merge stage, and
// text for the terminal.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <numeric>

#include "cli/merge.hpp"
#include "cli/output.hpp"
#include "cli/replay_data.hpp"
#include "cli/run_stats.hpp"
#include "cli/terminal_text.hpp"
#include "cli_test_util.hpp"
#include "common/error.hpp"

namespace provdb::cli {
namespace {

using nlohmann::json;

TEST(RunStatsTest, MatchesTwoPassFormulas) {
  const std::vector<double> xs = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9};
  RunStats s;
  for (double x : xs) s.push(x);

  const double n = static_cast<double>(xs.size());
  const double mean = std::accumulate(xs.begin(), xs.end(), 0.0) / n;
  double m2 = 0, m3 = 0, m4 = 0;
  for (double x : xs) {
    const double d = x - mean;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
  }
  EXPECT_EQ(s.count(), 15);
  EXPECT_DOUBLE_EQ(s.mean(), mean);
  EXPECT_DOUBLE_EQ(s.sum(), 77);
  EXPECT_EQ(s.minimum(), 1);
  EXPECT_EQ(s.maximum(), 9);
  EXPECT_NEAR(s.stddev(), std::sqrt(m2 / (n - 1)), 1e-12);
  EXPECT_NEAR(s.skewness(), std::sqrt(n) * m3 / std::pow(m2, 1.5), 1e-12);
  EXPECT_NEAR(s.kurtosis(), n * m4 / (m2 * m2) - 3, 1e-12);
}

TEST(RunStatsTest, MergeEqualsPushingEverything) {
  RunStats all, a, b;
  for (int i = 0; i < 100; ++i) {
    const double x = std::sin(i) * 100 + i;
    all.push(x);
    (i % 3 == 0 ? a : b).push(x);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_NEAR(a.mean(), all.mean(), 1e-9);
  EXPECT_NEAR(a.stddev(), all.stddev(), 1e-9);
  EXPECT_NEAR(a.skewness(), all.skewness(), 1e-9);
  EXPECT_NEAR(a.kurtosis(), all.kurtosis(), 1e-9);
  EXPECT_EQ(a.minimum(), all.minimum());
  EXPECT_EQ(a.maximum(), all.maximum());
}

TEST(RunStatsTest, ConstantSeriesHasNoSpread) {
  RunStats s;
  for (int i = 0; i < 5; ++i) s.push(7);
  EXPECT_EQ(s.stddev(), 0);
  EXPECT_EQ(s.skewness(), 0);
  EXPECT_EQ(s.kurtosis(), 0);
  EXPECT_EQ(s.ToJson()["accumulate"], 35.0);
}

// Every real record, rewritten for rank 37, differs from the original in
// rid and in the rank part of event_id only.
TEST(RewriteTest, ChangesOnlyRidAndEventRank) {
  for (const char* collection : {"anomalies", "metadata"}) {
    for (const auto& line : testing::BundledRecords(collection)) {
      const SourceRecord rec = ParseSourceRecord(line, "test");
      json rewritten = json::parse(RewriteForRank(rec, 37));
      json original = json::parse(line);
      ASSERT_EQ(rewritten["rid"], 37);
      if (original.contains("event_id")) {
        const std::string id = original["event_id"];
        ASSERT_EQ(rewritten["event_id"], "37" + id.substr(id.find(':')));
        original["event_id"] = rewritten["event_id"];
      }
      original["rid"] = 37;
      ASSERT_EQ(rewritten, original);
    }
  }
}

TEST(RewriteTest, KeepsRecordsWithoutThoseFields) {
  const SourceRecord rec = ParseSourceRecord(R"({"a": {"rid": 5}, "event_id": "x"})", "test");
  EXPECT_EQ(RewriteForRank(rec, 3), R"({"a": {"rid": 5}, "event_id": "x"})");
  EXPECT_THROW(ParseSourceRecord("[1, 2]", "test"), Error);
}

TEST(PathTest, NestedFieldsAndIndexes) {
  const nlohmann::ordered_json doc = nlohmann::ordered_json::parse(
      R"({"a": {"b": [10, {"c": "x"}]}, "GPU[0] Name": "V100", "n": null})");
  EXPECT_EQ(ValueAtPath(doc, "a.b[0]"), 10);
  EXPECT_EQ(ValueAtPath(doc, "a.b[1].c"), "x");
  EXPECT_EQ(ValueAtPath(doc, "\"GPU[0] Name\""), "V100");
  EXPECT_TRUE(ValueAtPath(doc, "a.missing.deeper").is_null());
  EXPECT_TRUE(ValueAtPath(doc, "a.b[7]").is_null());
  EXPECT_THROW(ValueAtPath(doc, "a.b[x]"), Error);
  EXPECT_THROW(ValueAtPath(doc, "missing["), Error);
  EXPECT_THROW(ValueAtPath(doc, "a..b"), Error);
  EXPECT_EQ(SplitFields("a, b.c,d[0].e,\"x,y\""),
            (std::vector<std::string>{"a", "b.c", "d[0].e", "\"x,y\""}));
}

TEST(MergeTest, SumsPerShardCounts) {
  Table rows;
  rows.columns = {"shard", "func", "n"};
  rows.rows = {{0, "f", 2}, {1, "f", 3}, {1, "g", 4}};
  const auto limit = std::chrono::seconds(10);
  const Table merged = MergeResults(
      rows, "SELECT func, sum(n) AS n FROM result GROUP BY func ORDER BY func", limit);
  ASSERT_EQ(merged.columns, (std::vector<std::string>{"func", "n"}));
  ASSERT_EQ(merged.rows.size(), 2u);
  EXPECT_EQ(merged.rows[0][1], 5);
  EXPECT_EQ(merged.rows[1][1], 4);
  EXPECT_THROW(MergeResults(rows, "SELECT nope FROM result", limit), Error);
  EXPECT_THROW(MergeResults(rows, "SELECT 1; SELECT 2", limit), Error);
}

TEST(TerminalTextTest, EscapesControlsAndMeasuresCells) {
  EXPECT_EQ(Printable("red \x1b[31mX\x1b[0m"), "red \\u001b[31mX\\u001b[0m");
  EXPECT_EQ(Printable("a\tb\nc"), "a b c");
  EXPECT_EQ(Printable("\xc2\x9b" "2J"), "\\u009b2J");  // C1 control sequence introducer
  EXPECT_EQ(Printable("bad \xff byte"), "bad \xef\xbf\xbd byte");

  EXPECT_EQ(DisplayWidth("abc"), 3u);
  EXPECT_EQ(DisplayWidth("\xc3\xa9t\xc3\xa9"), 3u);             // été
  EXPECT_EQ(DisplayWidth("\xe6\x97\xa5\xe6\x9c\xac"), 4u);     // 日本
  EXPECT_EQ(DisplayWidth("e\xcc\x81"), 1u);                      // e + combining acute
  EXPECT_EQ(DisplayWidth("\xf0\x9f\x94\xa5"), 2u);              // fire emoji

  EXPECT_EQ(Shorten("abcdef", 6), "abcdef");
  EXPECT_EQ(Shorten("abcdefg", 6), "abc...");
  // A wide character that would overflow is left out whole.
  EXPECT_EQ(Shorten("ab\xe6\x97\xa5\xe6\x9c\xac" "c", 6), "ab...");
}

TEST(FieldLabelTest, OneQuotedNameLosesItsQuotes) {
  EXPECT_EQ(FieldLabel("\"weird key\""), "weird key");
  EXPECT_EQ(FieldLabel("\"GPU[0] Name\""), "GPU[0] Name");
  EXPECT_EQ(FieldLabel("a.\"b c\""), "a.\"b c\"");
  EXPECT_EQ(FieldLabel("call_stack[0].func"), "call_stack[0].func");
}

}  // namespace
}  // namespace provdb::cli
