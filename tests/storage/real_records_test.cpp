// Tests on the bundled real records of XGC on Summit: what is stored is what
// was read, ids follow file order, and the facts of the data README hold.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "storage/database.hpp"
#include "storage/filter.hpp"
#include "temp_dir.hpp"
#include "test_data.hpp"

namespace provdb::storage {
namespace {

using testing::TempDir;

class RealRecords : public ::testing::Test {
 protected:
  // Decompressing and storing is the slow part; done once for the suite,
  // into a file the tests only read.
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    db_ = new Database(*dir_ / ShardFileName(0));
    for (const char* name : {"anomalies", "normalexecs", "metadata"}) {
      lines_[name] = provdb::testing::LoadRecords(name);
      db_->create_collection(name);
      std::vector<std::string_view> docs(lines_[name].begin(), lines_[name].end());
      // Batches of 500, as an AD instance would send them over time.
      for (std::size_t at = 0; at < docs.size(); at += 500) {
        std::vector<std::string_view> batch(
            docs.begin() + long(at), docs.begin() + long(std::min(at + 500, docs.size())));
        auto ids = db_->store_multi(name, batch);
        for (std::size_t i = 0; i < ids.size(); ++i) ids_ok_ &= ids[i] == int64_t(at + i);
      }
    }
  }

  static void TearDownTestSuite() {
    delete db_;
    delete dir_;
    lines_.clear();
  }

  static TempDir* dir_;
  static Database* db_;
  static std::map<std::string, std::vector<std::string>> lines_;
  static bool ids_ok_;
};

TempDir* RealRecords::dir_ = nullptr;
Database* RealRecords::db_ = nullptr;
std::map<std::string, std::vector<std::string>> RealRecords::lines_;
bool RealRecords::ids_ok_ = true;

TEST_F(RealRecords, CountsAndIdsFollowTheFiles) {
  EXPECT_TRUE(ids_ok_);
  EXPECT_EQ(db_->size("anomalies"), 2290);
  EXPECT_EQ(db_->size("normalexecs"), 4334);
  EXPECT_EQ(db_->size("metadata"), 1944);
  EXPECT_EQ(db_->last_record_id("anomalies"), 2289);
  EXPECT_EQ(db_->last_record_id("normalexecs"), 4333);
  EXPECT_EQ(db_->last_record_id("metadata"), 1943);
}

TEST_F(RealRecords, RecordsReadBackEqualTheirLines) {
  for (const auto& [name, lines] : lines_) {
    auto records = db_->all(name);
    ASSERT_EQ(records.size(), lines.size()) << name;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      nlohmann::json expected = nlohmann::json::parse(lines[i]);
      expected["__id"] = i;
      ASSERT_EQ(nlohmann::json::parse(records[i].json), expected) << name << " record " << i;
    }
  }

  Record r = db_->fetch("anomalies", 1234);
  nlohmann::json expected = nlohmann::json::parse(lines_["anomalies"][1234]);
  expected["__id"] = 1234;
  EXPECT_EQ(nlohmann::json::parse(r.json), expected);
  EXPECT_EQ(r.json.rfind("{\"__id\":1234,", 0), 0u);
}

TEST_F(RealRecords, ReadmeFactsHold) {
  EXPECT_EQ(db_->filter("anomalies", "fid = 500").size(), 12u);
  EXPECT_EQ(db_->count("anomalies", "runtime_exclusive > 100000"), 24);
  EXPECT_EQ(db_->count("metadata", "descr = 'GPU[0] Name'"), 54);
  EXPECT_EQ(db_->count("anomalies", "is_gpu_event = true"), 119);
  EXPECT_EQ(db_->count("normalexecs", "is_gpu_event"), 101);
  QueryResult distinct = db_->query("SELECT count(DISTINCT fid) FROM anomalies");
  EXPECT_EQ(std::get<int64_t>(distinct.rows[0][0]), 240);
}

TEST_F(RealRecords, FiltersMatchACountInCpp) {
  auto count_lines = [](const std::vector<std::string>& lines, auto&& pred) {
    int64_t n = 0;
    for (const auto& line : lines) n += pred(nlohmann::json::parse(line)) ? 1 : 0;
    return n;
  };
  const auto& anomalies = lines_["anomalies"];

  int64_t on_device0 = count_lines(anomalies, [](const nlohmann::json& j) {
    return j.contains("gpu_location") && j["gpu_location"].is_object() &&
           j["gpu_location"].value("device", -1) == 0;
  });
  EXPECT_GT(on_device0, 0);
  EXPECT_EQ(db_->count("anomalies", "gpu_location.device = 0"), on_device0);

  int64_t rank1_step3 = count_lines(anomalies, [](const nlohmann::json& j) {
    return j["rid"] == 1 && j["io_step"] == 3;
  });
  EXPECT_EQ(db_->count("anomalies", "rid = 1 AND io_step = 3"), rank1_step3);

  int64_t mpi_top = count_lines(anomalies, [](const nlohmann::json& j) {
    return j["call_stack"].size() > 1 &&
           j["call_stack"][1]["func"].get<std::string>().rfind("MPI_", 0) == 0;
  });
  EXPECT_EQ(db_->count("anomalies", "call_stack[1].func LIKE 'MPI\\_%' ESCAPE '\\'"), mpi_top);
}

TEST_F(RealRecords, IndexedFilterDoesNotScan) {
  // The statement filter() runs, with the filter translated the same way.
  std::string where = TranslateFilter("fid = 500", db_->indexed_fields("anomalies"));
  QueryResult plan = db_->query("EXPLAIN QUERY PLAN SELECT \"__id\", doc FROM \"anomalies\" "
                                "WHERE (" + where + ") ORDER BY \"__id\"");
  std::string details;
  for (const auto& row : plan.rows) details += std::get<std::string>(row.back()) + "\n";
  EXPECT_NE(details.find("SEARCH anomalies USING INDEX provdb_idx:anomalies:fid"),
            std::string::npos)
      << details;
  EXPECT_EQ(details.find("SCAN"), std::string::npos) << details;
}

}  // namespace
}  // namespace provdb::storage
