// What the simulated parameter server of a replay computes: each simulated
// rank tallies what it sent (as an anomaly-detection process summarizes its
// rank for the parameter server), and at the end the tallies are merged into
// the documents of the global database: func_stats, counter_stats, ad_model.
// A RankTally belongs to its rank's thread until that thread ends; merging
// happens afterwards on one thread.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cli/replay_data.hpp"
#include "cli/run_stats.hpp"

namespace provdb::cli {

struct FunctionKey {
  int64_t pid = 0;
  int64_t fid = 0;
  auto operator<=>(const FunctionKey&) const = default;
};

struct FunctionTally {
  std::string name;
  RunStats inclusive;
  RunStats exclusive;
  int64_t executions = 0;
  std::map<int64_t, int64_t> anomalies_by_step;
  // The statistics the most recent record was judged with, and when that
  // record ran (io step, entry time), to pick the latest over all ranks.
  std::string model;
  std::pair<int64_t, int64_t> model_time{INT64_MIN, INT64_MIN};
};

class RankTally {
 public:
  void add_step(int64_t step) { steps_.push_back(step); }
  void add_execution(const SourceRecord& record, bool anomaly);

  const std::map<FunctionKey, FunctionTally>& functions() const { return functions_; }
  const std::map<std::pair<int64_t, std::string>, RunStats>& counters() const {
    return counters_;
  }
  const std::vector<int64_t>& steps() const { return steps_; }

 private:
  std::map<FunctionKey, FunctionTally> functions_;
  std::map<std::pair<int64_t, std::string>, RunStats> counters_;
  std::vector<int64_t> steps_;
};

struct FunctionSummary {
  FunctionKey key;
  std::string name;
  int64_t anomalies = 0;
  int64_t executions = 0;
};

struct GlobalResults {
  std::vector<std::string> func_stats;
  std::vector<std::string> counter_stats;
  std::vector<std::string> ad_model;
  // Every function, most anomalies first.
  std::vector<FunctionSummary> functions;
};

// Merges the tallies of every rank. func_stats per (app, fid): name,
// runtime_profile {inclusive_runtime, exclusive_runtime}, anomaly_stats (the
// statistics of the anomaly count of each rank in each io step it replayed),
// anomaly_metrics {anomaly_count, first_io_step, last_io_step}.
// counter_stats per (app, counter): stats. ad_model per (pid, fid): func_name,
// model (as the latest record carried it), model_io_step.
GlobalResults ComputeGlobal(const std::vector<RankTally>& ranks);

}  // namespace provdb::cli
