// What provdb query prints of unusual documents: a "__shard" of their own,
// terminal escapes and wide characters in the data, and quoted field names.
// Each test imports its few documents into a directory of its own.
#include <gtest/gtest.h>

#include <fstream>

#include "cli_test_util.hpp"

namespace provdb::testing {
namespace {

using nlohmann::json;

// Imports `lines` as collection "misc" into a fresh directory under `tmp`.
std::string ImportLines(const TempDir& tmp, const std::vector<std::string>& lines) {
  const std::string file = tmp / "docs.jsonl";
  std::ofstream out(file);
  for (const auto& l : lines) out << l << "\n";
  out.close();
  const std::string dir = tmp / "db";
  const RunResult r = RunProvdb({"import", "--dir", dir, "--shards", "2", "misc", file});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return dir;
}

RunResult Query(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {"query", "--dir", dir, "misc"});
  return RunProvdb(args);
}

// Terminal cells of test text: ASCII and the three-byte CJK characters used
// here, which take two cells each.
std::size_t Cells(const std::string& s) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    n += c < 0x80 ? 1 : 2;
    i += c < 0x80 ? 1 : 3;
  }
  return n;
}

TEST(OutputTest, TheToolsShardReplacesADocumentsOwn) {
  TempDir tmp;
  // rid 1 puts the document into shard 1.
  const std::string dir = ImportLines(tmp, {R"({"rid":1,"__shard":7,"x":1})"});
  for (const char* format : {"json", "jsonl"}) {
    const RunResult r = Query(dir, {"--format", format});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.find("__shard\":7"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("\"__shard\": 7"), std::string::npos) << r.out;
    const json doc = std::string(format) == "json" ? json::parse(r.out)[0] : json::parse(r.out);
    EXPECT_EQ(doc.at("__shard"), 1) << r.out;
    EXPECT_EQ(doc.at("x"), 1) << r.out;
  }
  const RunResult table = Query(dir, {"--format", "csv", "--fields", "__shard,x"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(Lines(table.out).at(1), "1,1");
}

TEST(OutputTest, TableEscapesControlsAndAlignsWideText) {
  TempDir tmp;
  const std::string wide = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e";  // three CJK characters
  const std::string dir = ImportLines(
      tmp, {R"({"rid":0,"name":"\u001b[2J\u001b[31mred","v":1})",
            R"({"rid":0,"name":")" + wide + R"(","v":22})",
            R"({"rid":0,"name":"plain","v":333})"});
  const RunResult r = Query(dir, {"--format", "table", "--fields", "name,v"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "escape reached the terminal";
  EXPECT_NE(r.out.find("\\u001b[2J\\u001b[31mred"), std::string::npos) << r.out;

  // The numbers are right-aligned, so every line ends at the same cell.
  const auto lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u);
  for (std::size_t i = 2; i < lines.size(); ++i) {
    EXPECT_EQ(Cells(lines[i]), Cells(lines[1])) << lines[i];
  }
}

TEST(OutputTest, AQuotedFieldIsPrintedUnderItsName) {
  TempDir tmp;
  const std::string dir = ImportLines(tmp, {R"({"rid":0,"weird key":5})"});
  RunResult r = Query(dir, {"--format", "jsonl", "--fields", "\"weird key\""});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), json({{"weird key", 5}}));

  r = RunProvdb({"query", "--dir", dir, "--format", "csv", "--fields", "\"weird key\"", "--sql",
                 "SELECT doc ->> '$.\"weird key\"' AS \"weird key\" FROM misc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out), (std::vector<std::string>{"weird key", "5"}));
}

}  // namespace
}  // namespace provdb::testing
