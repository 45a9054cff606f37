// Tests of the translation of filter expressions into SQL.
#include "storage/filter.hpp"

#include <gtest/gtest.h>

#include "common/error.hpp"

namespace provdb::storage {
namespace {

const std::vector<std::string> kIndexed = {"pid", "rid", "fid", "event_id"};

std::string T(std::string_view expression) { return TranslateFilter(expression, kIndexed); }

ErrorCode CodeOf(std::string_view expression) {
  try {
    T(expression);
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

TEST(Filter, IndexedFieldsStayColumns) {
  EXPECT_EQ(T("fid = 500"), "\"fid\" = 500");
  EXPECT_EQ(T("__id >= 3 AND rid % 4 = 1"), "\"__id\" >= 3 AND \"rid\" % 4 = 1");
  EXPECT_EQ(T("\"fid\"=1"), "\"fid\"=1");
}

TEST(Filter, OtherFieldsBecomeJsonExtract) {
  EXPECT_EQ(T("runtime_exclusive > 100000"),
            "json_extract(doc, '$.\"runtime_exclusive\"') > 100000");
  EXPECT_EQ(T("is_gpu_event = true"), "json_extract(doc, '$.\"is_gpu_event\"') = true");
  EXPECT_EQ(T("gpu_location.device = 0"),
            "json_extract(doc, '$.\"gpu_location\".\"device\"') = 0");
  EXPECT_EQ(T("call_stack[0].func"), "json_extract(doc, '$.\"call_stack\"[0].\"func\"')");
  EXPECT_EQ(T("\"GPU[0] Name\" IS NOT NULL"),
            "json_extract(doc, '$.\"GPU[0] Name\"') IS NOT NULL");
  EXPECT_EQ(T("\"it's\" = 1"), "json_extract(doc, '$.\"it''s\"') = 1");
  EXPECT_EQ(T("fid.x = 1"), "json_extract(doc, '$.\"fid\".\"x\"') = 1");
  EXPECT_EQ(T("gpu_location.\"device\" = 0"),
            "json_extract(doc, '$.\"gpu_location\".\"device\"') = 0");
}

TEST(Filter, KeepsKeywordsLiteralsAndFunctions) {
  EXPECT_EQ(T("func LIKE 'MPI_%' AND length(func) > 3"),
            "json_extract(doc, '$.\"func\"') LIKE 'MPI_%' AND length(json_extract(doc, "
            "'$.\"func\"')) > 3");
  EXPECT_EQ(T("descr = 'it''s a \"name\"'"),
            "json_extract(doc, '$.\"descr\"') = 'it''s a \"name\"'");
  EXPECT_EQ(T("x BETWEEN 1.5e3 AND 0x10"),
            "json_extract(doc, '$.\"x\"') BETWEEN 1.5e3 AND 0x10");
  EXPECT_EQ(T("CAST(value AS INTEGER) > 2"),
            "CAST(json_extract(doc, '$.\"value\"') AS INTEGER) > 2");
  EXPECT_EQ(T("func COLLATE NOCASE = 'a'"),
            "json_extract(doc, '$.\"func\"') COLLATE NOCASE = 'a'");
  EXPECT_EQ(T("gpu_parent IS NULL"), "json_extract(doc, '$.\"gpu_parent\"') IS NULL");
}

TEST(Filter, SubqueryAliasesAreKept) {
  EXPECT_EQ(T("EXISTS (SELECT 1 FROM json_each(call_stack) AS f WHERE f.value ->> 'fid' = 1)"),
            "EXISTS (SELECT 1 FROM json_each(json_extract(doc, '$.\"call_stack\"')) AS f "
            "WHERE f.value ->> 'fid' = 1)");
  EXPECT_EQ(T("json_each.value"), "json_each.value");
}

TEST(Filter, RefusesHiddenStatements) {
  EXPECT_EQ(CodeOf("fid = 1; DROP TABLE anomalies"), ErrorCode::kQueryRefused);
  EXPECT_EQ(CodeOf("fid = 1 -- comment"), ErrorCode::kQueryRefused);
  EXPECT_EQ(CodeOf("fid = 1 /* c */"), ErrorCode::kQueryRefused);
  EXPECT_EQ(CodeOf("func = 'a;b'"), ErrorCode::kInternal) << "a ';' in a string is fine";
}

TEST(Filter, ReportsSyntaxErrors) {
  EXPECT_EQ(CodeOf("func = 'open"), ErrorCode::kQuerySyntax);
  EXPECT_EQ(CodeOf("\"open = 1"), ErrorCode::kQuerySyntax);
  EXPECT_EQ(CodeOf("(fid = 1"), ErrorCode::kQuerySyntax);
  EXPECT_EQ(CodeOf("fid = 1)"), ErrorCode::kQuerySyntax);
  EXPECT_EQ(CodeOf("a[x] = 1"), ErrorCode::kQuerySyntax);
  EXPECT_EQ(CodeOf(""), ErrorCode::kQuerySyntax);
  EXPECT_EQ(CodeOf("\"say \"\"hi\"\"\" = 1"), ErrorCode::kQuerySyntax)
      << "a JSON path cannot name a field holding a double quote";
  EXPECT_EQ(CodeOf("  \n"), ErrorCode::kQuerySyntax);
}

}  // namespace
}  // namespace provdb::storage
