// Tests of the Database: collections, writes, reads, ids, bad input,
// reopening and concurrent access, each on a real file in a fresh directory.
#include "storage/database.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include "common/error.hpp"
#include "error_code_of.hpp"
#include "temp_dir.hpp"

namespace provdb::storage {
namespace {

using testing::CodeOf;
using testing::TempDir;

nlohmann::json J(const std::string& text) { return nlohmann::json::parse(text); }

class DatabaseTest : public ::testing::Test {
 protected:
  std::filesystem::path File() const { return dir_ / "provdb.0.sqlite"; }

  TempDir dir_;
};

TEST(CollectionName, ChecksCharactersLengthAndPrefixes) {
  EXPECT_NO_THROW(CheckCollectionName("anomalies"));
  EXPECT_NO_THROW(CheckCollectionName("A_1"));
  EXPECT_NO_THROW(CheckCollectionName(std::string(64, 'a')));
  for (std::string bad : {"", "1abc", "a-b", "a b", "a\"b", "a;b", "sqlite_master",
                          "provdb_collections", "PROVDB_x", "é"}) {
    EXPECT_EQ(CodeOf([&] { CheckCollectionName(bad); }), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(CodeOf([] { CheckCollectionName(std::string(65, 'a')); }),
            ErrorCode::kInvalidArgument);
}

TEST(FileNames, FollowTheShardScheme) {
  EXPECT_EQ(ShardFileName(3), "provdb.3.sqlite");
  EXPECT_EQ(GlobalFileName(), "provdb.global.sqlite");
}

TEST_F(DatabaseTest, CreatesListsAndDropsCollections) {
  Database db(File());
  EXPECT_TRUE(db.list_collections().empty());
  db.create_collection("metadata");
  db.create_collection("anomalies");
  EXPECT_TRUE(db.collection_exists("anomalies"));
  EXPECT_FALSE(db.collection_exists("normalexecs"));
  EXPECT_EQ(db.list_collections(), (std::vector<std::string>{"anomalies", "metadata"}));
  EXPECT_EQ(db.indexed_fields("anomalies"), DefaultIndexedFields("anomalies"));
  EXPECT_EQ(db.indexed_fields("metadata"), (std::vector<std::string>{"rid", "descr"}));

  EXPECT_EQ(CodeOf([&] { db.create_collection("anomalies"); }), ErrorCode::kAlreadyExists);
  EXPECT_NO_THROW(db.create_collection("anomalies", true));
  EXPECT_EQ(CodeOf([&] { db.create_collection("bad name"); }), ErrorCode::kInvalidArgument);

  db.store("anomalies", R"({"fid":1})");
  db.drop_collection("anomalies");
  EXPECT_FALSE(db.collection_exists("anomalies"));
  EXPECT_EQ(db.list_collections(), (std::vector<std::string>{"metadata"}));
  EXPECT_EQ(CodeOf([&] { db.drop_collection("anomalies"); }), ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { db.size("anomalies"); }), ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { db.fetch("anomalies", 0); }), ErrorCode::kNotFound);

  // A collection created again starts over.
  db.create_collection("anomalies");
  EXPECT_EQ(db.size("anomalies"), 0);
  EXPECT_EQ(db.store("anomalies", "{}"), 0);
}

TEST_F(DatabaseTest, StoresAndFetchesWithIds) {
  Database db(File());
  db.create_collection("c");
  EXPECT_FALSE(db.last_record_id("c").has_value());
  EXPECT_EQ(db.store("c", R"({"a":1})"), 0);
  EXPECT_EQ(db.store_multi("c", {R"({"a":2})", R"({"a":3})"}), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(db.size("c"), 3);
  EXPECT_EQ(db.last_record_id("c"), 2);

  Record r = db.fetch("c", 1);
  EXPECT_EQ(r.id, 1);
  EXPECT_EQ(r.json, R"({"__id":1,"a":2})");
  EXPECT_EQ(CodeOf([&] { db.fetch("c", 3); }), ErrorCode::kNotFound);

  auto many = db.fetch_multi("c", {2, 9, 0});
  ASSERT_EQ(many.size(), 3u);
  EXPECT_EQ(J(many[0]->json), J(R"({"__id":2,"a":3})"));
  EXPECT_FALSE(many[1].has_value());
  EXPECT_EQ(many[2]->id, 0);

  auto all = db.all("c");
  ASSERT_EQ(all.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(J(all[i].json), J(R"({"a":)" + std::to_string(i + 1) +
                                                           R"(,"__id":)" + std::to_string(i) +
                                                           "}"));
}

TEST_F(DatabaseTest, ReplacesIncomingRecordId) {
  Database db(File());
  db.create_collection("c");
  int64_t id = db.store("c", R"({"__id":99,"x":{"__id":5}})");
  EXPECT_EQ(id, 0);
  EXPECT_EQ(J(db.fetch("c", 0).json), J(R"({"__id":0,"x":{"__id":5}})"));
  EXPECT_EQ(db.count("c", "__id = 0"), 1);
  EXPECT_EQ(db.count("c", "__id = 99"), 0);
}

TEST_F(DatabaseTest, UpdatesAndErases) {
  Database db(File());
  db.create_collection("anomalies");
  db.store_multi("anomalies", {R"({"fid":1})", R"({"fid":2})", R"({"fid":3})"});

  EXPECT_TRUE(db.update("anomalies", 1, R"({"fid":20,"__id":7})"));
  EXPECT_FALSE(db.update("anomalies", 5, R"({"fid":50})"));
  EXPECT_EQ(J(db.fetch("anomalies", 1).json), J(R"({"__id":1,"fid":20})"));
  EXPECT_EQ(db.count("anomalies", "fid = 20"), 1);
  EXPECT_EQ(db.count("anomalies", "fid = 2"), 0);

  auto updated = db.update_multi("anomalies", {{0, R"({"fid":10})"}, {8, "{}"}, {2, "{}"}});
  EXPECT_EQ(updated, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(db.count("anomalies", "fid IS NULL"), 1);

  EXPECT_TRUE(db.erase("anomalies", 2));
  EXPECT_FALSE(db.erase("anomalies", 2));
  EXPECT_EQ(db.erase_multi("anomalies", {0, 4}), (std::vector<bool>{true, false}));
  EXPECT_EQ(db.size("anomalies"), 1);
  EXPECT_EQ(db.all("anomalies").front().id, 1);
}

TEST_F(DatabaseTest, IdsAreNeverReused) {
  {
    Database db(File());
    db.create_collection("c");
    db.store_multi("c", {"{}", "{}", "{}"});
    db.erase_multi("c", {0, 1, 2});
    EXPECT_EQ(db.size("c"), 0);
    EXPECT_EQ(db.last_record_id("c"), 2);
    EXPECT_EQ(db.store("c", "{}"), 3);
    db.erase("c", 3);
  }
  Database db(File());
  EXPECT_EQ(db.last_record_id("c"), 3);
  EXPECT_EQ(db.store("c", "{}"), 4);
}

TEST_F(DatabaseTest, BadInputLeavesTheCollectionUnchanged) {
  Options options;
  options.max_document_bytes = 100;
  Database db(File(), options);
  db.create_collection("c");
  db.store_multi("c", {R"({"a":1})", R"({"a":2})"});
  auto before = db.all("c");

  std::string big = R"({"a":")" + std::string(200, 'x') + "\"}";
  std::vector<std::pair<std::string, std::vector<std::string_view>>> bad = {
      {"invalid JSON", {R"({"a":1,})"}},
      {"non-object", {"[1,2,3]"}},
      {"string", {R"("text")"}},
      {"empty", {""}},
      {"oversized", {big}},
      {"bad in the middle of a batch", {R"({"a":3})", R"({"a":4})", "{bad", R"({"a":5})"}},
  };
  for (const auto& [what, docs] : bad) {
    try {
      db.store_multi("c", docs);
      ADD_FAILURE() << what << " was stored";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBadDocument) << what;
      EXPECT_NE(std::string(e.what()).find("of " + std::to_string(docs.size())),
                std::string::npos)
          << e.what();
    }
  }
  try {
    db.store_multi("c", {"{}", "{}", "[]"});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("document 2 of 3: not a JSON object"),
              std::string::npos)
        << e.what();
  }

  EXPECT_EQ(CodeOf([&] { db.store("missing", "{}"); }), ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { db.store("bad-name", "{}"); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { db.update("c", 0, "[]"); }), ErrorCode::kBadDocument);
  EXPECT_EQ(CodeOf([&] { db.update_multi("c", {{0, "{}"}, {1, "nope"}}); }),
            ErrorCode::kBadDocument);

  PreparedBatch good{"c", PrepareBatch({R"({"a":9})"}, {}, 100)};
  PreparedBatch unknown{"missing", PrepareBatch({"{}"}, {}, 100)};
  EXPECT_EQ(CodeOf([&] { db.store_batches({good, unknown}); }), ErrorCode::kNotFound);

  auto after = db.all("c");
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].json, before[i].json);
  EXPECT_EQ(db.last_record_id("c"), 1);
  EXPECT_EQ(db.store("c", "{}"), 2) << "refused input must not consume ids";
}

TEST_F(DatabaseTest, LargeBatchWithABadDocumentStoresNothing) {
  // Large enough to be validated while it is inserted.
  Database db(File());
  db.create_collection("anomalies");
  std::string doc = R"({"fid":1,"pad":")" + std::string(20'000, 'p') + "\"}";
  std::vector<std::string_view> batch(200, doc);
  batch[150] = R"({"fid":1,"pad":)";
  try {
    db.store_multi("anomalies", batch);
    FAIL() << "a batch with an invalid document was stored";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadDocument);
    EXPECT_NE(std::string(e.what()).find("document 150 of 200"), std::string::npos) << e.what();
  }
  EXPECT_EQ(db.size("anomalies"), 0);
  EXPECT_FALSE(db.last_record_id("anomalies").has_value());

  batch[150] = doc;
  auto ids = db.store_multi("anomalies", batch);
  ASSERT_EQ(ids.size(), 200u);
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(ids.back(), 199);
  EXPECT_EQ(db.count("anomalies", "fid = 1"), 200);
}

TEST_F(DatabaseTest, StoresBatchesOfSeveralCollections) {
  Database db(File());
  db.create_collection("anomalies");
  db.create_collection("metadata");
  std::vector<PreparedBatch> batches;
  batches.push_back({"anomalies", PrepareBatch({R"({"fid":1})", R"({"fid":2})"},
                                               db.indexed_fields("anomalies"), 1000)});
  batches.push_back(
      {"metadata", PrepareBatch({R"({"descr":"x"})"}, db.indexed_fields("metadata"), 1000)});
  // Prepared without the indexed fields: the database fills them in.
  batches.push_back({"anomalies", PrepareBatch({R"({"fid":3})"}, {}, 1000)});
  auto ids = db.store_batches(std::move(batches));
  EXPECT_EQ(ids, (std::vector<std::vector<int64_t>>{{0, 1}, {0}, {2}}));
  EXPECT_EQ(db.count("anomalies", "fid = 3"), 1);
  EXPECT_EQ(db.count("metadata", "descr = 'x'"), 1);
}

TEST_F(DatabaseTest, CreateIndexFillsStoredRecords) {
  Database db(File());
  db.create_collection("c");
  db.store_multi("c", {R"({"k":1,"o":{"a":[1, 2]}})", R"({"k":true})", R"({"z":1})"});
  db.create_index("c", "k");
  db.create_index("c", "o");
  db.create_index("c", "k");
  EXPECT_EQ(db.indexed_fields("c"), (std::vector<std::string>{"k", "o"}));
  EXPECT_EQ(CodeOf([&] { db.create_index("c", "a.b"); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { db.create_index("c", "doc"); }), ErrorCode::kInvalidArgument);

  db.store("c", R"({"k":1,"o":{"a":[1,2]}})");
  EXPECT_EQ(db.count("c", "k = 1"), 3);
  EXPECT_EQ(db.count("c", "o = '{\"a\":[1,2]}'"), 2);
  QueryResult r = db.query("SELECT k, o FROM c ORDER BY __id");
  ASSERT_EQ(r.rows.size(), 4u);
  EXPECT_EQ(r.rows[0], r.rows[3]) << "values filled on store equal those filled by SQLite";
}

TEST_F(DatabaseTest, IndexedAndUnindexedFiltersAgree) {
  Database db(File());
  db.create_collection("anomalies");
  db.create_collection("plain");
  std::vector<std::string_view> docs = {
      R"({"fid":1,"rid":true,"pid":1.5,"tid":"t","io_step":[1,2],"event_id":{"a":1}})",
      R"({"fid":"1","rid":false,"pid":null,"tid":18446744073709551615})",
      R"({"x":1})",
  };
  db.store_multi("anomalies", docs);
  db.store_multi("plain", docs);
  for (std::string expr : {"fid = 1", "fid = '1'", "rid = 1", "rid = true", "rid = 0",
                           "pid = 1.5", "pid IS NULL", "tid = 't'", "tid > 1e19",
                           "io_step = '[1,2]'", "event_id ->> 'a' = 1", "fid IS NOT NULL"}) {
    EXPECT_EQ(db.count("anomalies", expr), db.count("plain", expr)) << expr;
  }
}

TEST_F(DatabaseTest, ReopenKeepsEverything) {
  {
    Database db(File());
    db.create_collection("anomalies");
    db.store_multi("anomalies", {R"({"fid":500})", R"({"fid":7})"});
  }
  EXPECT_TRUE(std::filesystem::exists(File()));
  std::filesystem::path wal = File().string() + "-wal";
  EXPECT_TRUE(!std::filesystem::exists(wal) || std::filesystem::file_size(wal) == 0)
      << "closing folds the WAL back into the file";

  {
    Database db(File());
    EXPECT_EQ(db.list_collections(), (std::vector<std::string>{"anomalies"}));
    EXPECT_EQ(db.size("anomalies"), 2);
    EXPECT_EQ(db.count("anomalies", "fid = 500"), 1);
    EXPECT_EQ(db.store("anomalies", "{}"), 2);
  }

  Options read_only;
  read_only.read_only = true;
  Database db(File(), read_only);
  EXPECT_EQ(db.size("anomalies"), 3);
  EXPECT_EQ(CodeOf([&] { db.store("anomalies", "{}"); }), ErrorCode::kInvalidArgument);
}

TEST_F(DatabaseTest, OpeningChecksTheFile) {
  Options no_create;
  no_create.create = false;
  EXPECT_EQ(CodeOf([&] { Database db(File(), no_create); }), ErrorCode::kNotFound);
  Options read_only;
  read_only.read_only = true;
  EXPECT_EQ(CodeOf([&] { Database db(File(), read_only); }), ErrorCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(File()));

  std::filesystem::create_directories(dir_ / "a-directory");
  EXPECT_EQ(CodeOf([&] { Database db(dir_ / "a-directory"); }), ErrorCode::kStorage);

  {
    std::ofstream junk(dir_ / "junk.sqlite");
    junk << "this is not an SQLite file, and it is long enough to have a header............"
         << std::string(200, 'x');
  }
  EXPECT_EQ(CodeOf([&] { Database db(dir_ / "junk.sqlite"); }), ErrorCode::kStorage);
}

TEST_F(DatabaseTest, CommittedRecordsSurviveAKilledProcess) {
  {
    Database db(File());
    db.create_collection("anomalies");
    db.store("anomalies", R"({"fid":1})");
  }

  // The child stores and dies without closing: no destructor, no final
  // checkpoint, the WAL left behind as after a crash.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto* db = new Database(File());
    db->store_multi("anomalies", {R"({"fid":2})", R"({"fid":3})"});
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  Database db(File());
  EXPECT_EQ(db.size("anomalies"), 3);
  EXPECT_EQ(db.count("anomalies", "fid = 3"), 1);
  EXPECT_EQ(db.store("anomalies", "{}"), 3);
}

TEST_F(DatabaseTest, CheckpointFoldsTheWalIntoTheFile) {
  Database db(File());
  db.create_collection("c");
  auto before = std::filesystem::file_size(File());
  std::string doc = R"({"pad":")" + std::string(100'000, 'p') + "\"}";
  db.store_multi("c", std::vector<std::string_view>(20, doc));
  db.checkpoint();
  EXPECT_GT(std::filesystem::file_size(File()), before + 2'000'000);
  EXPECT_EQ(db.size("c"), 20);
}

TEST_F(DatabaseTest, WalIsFoldedBackInTheBackground) {
  Database db(File());
  db.create_collection("c");
  std::string doc = R"({"pad":")" + std::string(100'000, 'p') + "\"}";
  // About 8 MB in small commits: past the WAL size that asks for a
  // checkpoint, with nobody calling checkpoint().
  for (int i = 0; i < 80; ++i) db.store("c", doc);

  // The background thread copies pages into the file while the database
  // stays open; wait for it generously, this is no timing test.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::filesystem::file_size(File()) < 2'000'000 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(std::filesystem::file_size(File()), 2'000'000u);
  EXPECT_EQ(db.size("c"), 80);
}

TEST_F(DatabaseTest, ExplicitCheckpointsMeetBackgroundOnes) {
  Database db(File());
  db.create_collection("c");
  std::string doc = R"({"pad":")" + std::string(100'000, 'p') + "\"}";
  for (int i = 0; i < 80; ++i) {
    db.store("c", doc);
    EXPECT_NO_THROW(db.checkpoint());
  }
  EXPECT_EQ(db.size("c"), 80);
}

TEST_F(DatabaseTest, SafeDurabilityOpensAndStores) {
  Options safe;
  safe.durability = Durability::kSafe;
  {
    Database db(File(), safe);
    db.create_collection("c");
    db.store("c", R"({"a":1})");
  }
  Database db(File(), safe);
  EXPECT_EQ(db.size("c"), 1);
  QueryResult r = db.query("SELECT count(*) FROM c");
  EXPECT_EQ(std::get<int64_t>(r.rows[0][0]), 1);
}

TEST_F(DatabaseTest, ReadersRunWhileAWriterWrites) {
  Database db(File());
  db.create_collection("anomalies");
  db.store("anomalies", R"({"fid":500,"n":0})");

  constexpr int kBatches = 50;
  constexpr int kBatchSize = 20;
  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::atomic<int> reads{0};

  std::thread writer([&] {
    std::string doc = R"({"fid":500,"pad":")" + std::string(2000, 'p') + "\"}";
    std::vector<std::string_view> batch(kBatchSize, doc);
    for (int b = 0; b < kBatches; ++b) db.store_multi("anomalies", batch);
    writing = false;
  });

  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      int64_t last = 0;
      do {
        int64_t n = db.count("anomalies", "fid = 500");
        int64_t size = db.size("anomalies");
        auto first = db.fetch("anomalies", 0);
        // Batches commit whole: a reader sees a multiple of the batch size.
        if (n < last || (n - 1) % kBatchSize != 0 || size < n || first.id != 0) ++failures;
        last = n;
        ++reads;
      } while (writing);
    });
  }
  writer.join();
  for (auto& t : readers) t.join();

  EXPECT_EQ(failures, 0);
  EXPECT_GT(reads, 0);
  EXPECT_EQ(db.size("anomalies"), 1 + kBatches * kBatchSize);
  EXPECT_EQ(db.last_record_id("anomalies"), kBatches * kBatchSize);
}

TEST_F(DatabaseTest, ConcurrentWritersGetDistinctIds) {
  Database db(File());
  db.create_collection("c");
  std::vector<std::thread> writers;
  std::vector<std::vector<int64_t>> ids(4);
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 25; ++i) {
        auto got = db.store_multi("c", {R"({"w":1})", R"({"w":2})"});
        ids[w].insert(ids[w].end(), got.begin(), got.end());
      }
    });
  }
  for (auto& t : writers) t.join();

  std::vector<int64_t> merged;
  for (auto& v : ids) merged.insert(merged.end(), v.begin(), v.end());
  std::sort(merged.begin(), merged.end());
  ASSERT_EQ(merged.size(), 200u);
  for (int64_t i = 0; i < 200; ++i) EXPECT_EQ(merged[i], i);
}

}  // namespace
}  // namespace provdb::storage
