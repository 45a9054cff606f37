// The recorded run that `provdb replay` plays back: the anomalies, normal
// executions and metadata of each recorded rank, grouped by io step, each
// record kept as its original JSON text plus the few values the replay needs
// (where rid and event_id sit in the text, and what the simulated parameter
// server aggregates). Loaded once, then read by every rank thread: immutable
// after loading, so safe to share.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace provdb::cli {

struct CounterSample {
  int64_t pid = 0;
  std::string name;
  double value = 0;
};

struct SourceRecord {
  std::string json;

  // Where the value of the top-level "rid" sits in `json`, and where the rank
  // part of the top-level "event_id" (before its first ':') sits; nullopt
  // when the record lacks them.
  std::optional<std::pair<std::size_t, std::size_t>> rid_span;
  std::optional<std::pair<std::size_t, std::size_t>> event_rank_span;

  // What the parameter server needs of a function execution.
  int64_t rid = 0;
  int64_t pid = 0;
  std::optional<int64_t> fid;
  std::string func;
  std::optional<double> runtime_total;
  std::optional<double> runtime_exclusive;
  std::optional<int64_t> io_step;
  int64_t entry = 0;
  std::vector<CounterSample> counters;
  // The JSON text of the statistics the record was judged with: "func_stats"
  // in older records, "algo_params" in newer ones; empty when absent.
  std::string model;
};

struct ReplayStep {
  std::vector<SourceRecord> anomalies;
  std::vector<SourceRecord> normalexecs;
};

// The records of one recorded rank.
struct RecordedRank {
  int64_t rid = 0;
  std::vector<SourceRecord> metadata;
  // By io step; records without an io step come first, under key -1.
  std::map<int64_t, ReplayStep> steps;

  std::size_t record_count() const;
};

struct RecordedRun {
  // Sorted by rid.
  std::vector<RecordedRank> ranks;
  uint64_t bytes = 0;
};

// Loads DIR/{anomalies,normalexecs,metadata}.jsonl, each optionally ending in
// .xz. Throws Error(kNotFound) for a missing file and Error(kBadDocument)
// naming file and line for a line that is not a JSON object.
RecordedRun LoadRecordedRun(const std::filesystem::path& dir);

// Parses one record line. `which` (file and line) prefixes error messages.
SourceRecord ParseSourceRecord(std::string_view line, std::string_view which);

// The record as simulated rank `rank` sends it: the value of "rid" and the
// rank part of "event_id" replaced by `rank`, every other byte unchanged.
std::string RewriteForRank(const SourceRecord& record, int rank);

}  // namespace provdb::cli
