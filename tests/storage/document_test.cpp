// Tests of document validation, indexed value extraction and id splicing.
#include "storage/document.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "error_code_of.hpp"

namespace provdb::storage {
namespace {

using testing::CodeOf;

TEST(Document, KeepsTextAsReceived) {
  std::string json = R"({ "a" : 1,  "b":[1, 2] })";
  PreparedDocument doc = PrepareDocument(json, {}, 1000);
  EXPECT_EQ(doc.json, json);
  EXPECT_TRUE(doc.indexed.empty());
}

TEST(Document, ExtractsIndexedValuesLikeJsonExtract) {
  std::string json =
      R"({"i":-5,"d":2.5,"s":"x\"y","t":true,"f":false,"n":null,"a":[1, {"b" : 2}],)"
      R"("o":{"k": "v"},"big":18446744073709551615})";
  PreparedDocument doc =
      PrepareDocument(json, {"i", "d", "s", "t", "f", "n", "a", "o", "missing", "big"}, 1000);
  ASSERT_EQ(doc.indexed.size(), 10u);
  EXPECT_EQ(std::get<int64_t>(doc.indexed[0]), -5);
  EXPECT_DOUBLE_EQ(std::get<double>(doc.indexed[1]), 2.5);
  EXPECT_EQ(std::get<std::string>(doc.indexed[2]), "x\"y");
  EXPECT_EQ(std::get<int64_t>(doc.indexed[3]), 1);
  EXPECT_EQ(std::get<int64_t>(doc.indexed[4]), 0);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(doc.indexed[5]));
  EXPECT_EQ(std::get<std::string>(doc.indexed[6]), R"([1,{"b":2}])");
  EXPECT_EQ(std::get<std::string>(doc.indexed[7]), R"({"k":"v"})");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(doc.indexed[8]));
  EXPECT_DOUBLE_EQ(std::get<double>(doc.indexed[9]), 18446744073709551615.0);
}

TEST(Document, RemovesTopLevelRecordIdOnly) {
  PreparedDocument first = PrepareDocument(R"({"__id":7,"a":{"__id":1},"b":2})", {}, 1000);
  EXPECT_EQ(nlohmann::json::parse(first.json), nlohmann::json::parse(R"({"a":{"__id":1},"b":2})"));

  PreparedDocument last = PrepareDocument(R"({"a":1, "__id" : "x" })", {}, 1000);
  EXPECT_EQ(nlohmann::json::parse(last.json), nlohmann::json::parse(R"({"a":1})"));

  PreparedDocument only = PrepareDocument(R"({"__id":[1,2]})", {}, 1000);
  EXPECT_EQ(nlohmann::json::parse(only.json), nlohmann::json::object());

  PreparedDocument escaped = PrepareDocument(R"({"\u005f_id":3,"a":1})", {}, 1000);
  EXPECT_EQ(nlohmann::json::parse(escaped.json), nlohmann::json::parse(R"({"a":1})"));
}

TEST(Document, RefusesBadInputSayingWhy) {
  EXPECT_EQ(CodeOf([] { PrepareDocument("{\"a\":", {}, 1000); }), ErrorCode::kBadDocument);
  EXPECT_EQ(CodeOf([] { PrepareDocument("[1,2]", {}, 1000); }), ErrorCode::kBadDocument);
  EXPECT_EQ(CodeOf([] { PrepareDocument("42", {}, 1000); }), ErrorCode::kBadDocument);
  EXPECT_EQ(CodeOf([] { PrepareDocument("", {}, 1000); }), ErrorCode::kBadDocument);
  EXPECT_EQ(CodeOf([] { PrepareDocument("{} {}", {}, 1000); }), ErrorCode::kBadDocument);
  EXPECT_EQ(CodeOf([] { PrepareDocument(R"({"a":"12345"})", {}, 10); }),
            ErrorCode::kBadDocument);

  try {
    PrepareDocument("[]", {}, 1000, "document 3 of 9");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("document 3 of 9"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("not a JSON object"), std::string::npos);
  }
}

TEST(Document, RefusesDuplicateTopLevelKeys) {
  try {
    PrepareDocument(R"({"rid":1,"fid":2,"rid":2})", {"rid"}, 1000);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadDocument);
    EXPECT_NE(std::string(e.what()).find("\"rid\" appears twice"), std::string::npos)
        << e.what();
  }

  // Equal keys in different nested objects are fine.
  auto doc = PrepareDocument(R"({"a":{"x":1},"b":{"x":2},"x":3})", {"x"}, 1000);
  EXPECT_EQ(std::get<int64_t>(doc.indexed[0]), 3);
}

TEST(Document, BatchNamesTheBadDocument) {
  std::vector<std::string_view> docs = {"{}", "{\"a\":1}", "{oops}", "{}"};
  try {
    PrepareBatch(docs, {}, 1000);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadDocument);
    EXPECT_NE(std::string(e.what()).find("document 2 of 4"), std::string::npos) << e.what();
  }
}

TEST(Document, SplicesRecordIdFirst) {
  EXPECT_EQ(WithRecordId(R"({"a":1})", 5), R"({"__id":5,"a":1})");
  EXPECT_EQ(WithRecordId("{}", 0), R"({"__id":0})");
  EXPECT_EQ(WithRecordId(" { } ", 0), R"({"__id":0 } )");
  EXPECT_EQ(nlohmann::json::parse(WithRecordId("  {\n \"b\": [] }\n", 12)),
            nlohmann::json::parse(R"({"__id":12,"b":[]})"));
}

}  // namespace
}  // namespace provdb::storage
