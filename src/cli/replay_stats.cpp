// Tallies of the simulated ranks and their merge into the global database.
#include "cli/replay_stats.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace provdb::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct Merged {
  std::string name;
  RunStats inclusive;
  RunStats exclusive;
  int64_t executions = 0;
  int64_t anomalies = 0;
  std::optional<int64_t> first_step;
  std::optional<int64_t> last_step;
  RunStats anomaly_stats;
  std::string model;
  std::pair<int64_t, int64_t> model_time{INT64_MIN, INT64_MIN};
};

void MergeFunction(const FunctionTally& t, Merged& m) {
  if (m.name.empty()) m.name = t.name;
  m.inclusive.merge(t.inclusive);
  m.exclusive.merge(t.exclusive);
  m.executions += t.executions;
  for (const auto& [step, n] : t.anomalies_by_step) {
    m.anomalies += n;
    m.first_step = std::min(m.first_step.value_or(step), step);
    m.last_step = std::max(m.last_step.value_or(step), step);
  }
  if (!t.model.empty() && t.model_time > m.model_time) {
    m.model = t.model;
    m.model_time = t.model_time;
  }
}

// Each rank contributes one value per io step it replayed: how many
// anomalies of the function it found in that step (often none).
void AddAnomalySamples(const RankTally& rank, const FunctionKey& key, Merged& m) {
  auto it = rank.functions().find(key);
  for (int64_t step : rank.steps()) {
    int64_t n = 0;
    if (it != rank.functions().end()) {
      auto s = it->second.anomalies_by_step.find(step);
      if (s != it->second.anomalies_by_step.end()) n = s->second;
    }
    m.anomaly_stats.push(static_cast<double>(n));
  }
}

ojson OptionalStep(const std::optional<int64_t>& step) {
  return step ? ojson(*step) : ojson(nullptr);
}

std::string FuncStatsDoc(const FunctionKey& key, const Merged& m) {
  ojson doc = {{"app", key.pid}, {"fid", key.fid}, {"name", m.name}};
  doc["runtime_profile"] = {{"inclusive_runtime", m.inclusive.ToJson()},
                            {"exclusive_runtime", m.exclusive.ToJson()}};
  doc["anomaly_stats"] = m.anomaly_stats.ToJson();
  doc["anomaly_metrics"] = {{"anomaly_count", m.anomalies},
                            {"first_io_step", OptionalStep(m.first_step)},
                            {"last_io_step", OptionalStep(m.last_step)}};
  return doc.dump();
}

std::string AdModelDoc(const FunctionKey& key, const Merged& m) {
  ojson doc = {{"pid", key.pid}, {"fid", key.fid}, {"func_name", m.name}};
  ojson model = ojson::parse(m.model, nullptr, /*allow_exceptions=*/false);
  doc["model"] = model.is_discarded() ? ojson(m.model) : std::move(model);
  doc["model_io_step"] = m.model_time.first;
  return doc.dump();
}

}  // namespace

void RankTally::add_execution(const SourceRecord& r, bool anomaly) {
  for (const auto& c : r.counters) counters_[{c.pid, c.name}].push(c.value);
  if (!r.fid) return;

  FunctionTally& f = functions_[FunctionKey{r.pid, *r.fid}];
  if (f.name.empty()) f.name = r.func;
  ++f.executions;
  if (r.runtime_total) f.inclusive.push(*r.runtime_total);
  if (r.runtime_exclusive) f.exclusive.push(*r.runtime_exclusive);
  if (anomaly) ++f.anomalies_by_step[r.io_step.value_or(-1)];

  const std::pair<int64_t, int64_t> when{r.io_step.value_or(-1), r.entry};
  if (!r.model.empty() && when >= f.model_time) {
    f.model = r.model;
    f.model_time = when;
  }
}

GlobalResults ComputeGlobal(const std::vector<RankTally>& ranks) {
  std::map<FunctionKey, Merged> functions;
  std::map<std::pair<int64_t, std::string>, RunStats> counters;
  for (const auto& rank : ranks) {
    for (const auto& [key, t] : rank.functions()) MergeFunction(t, functions[key]);
    for (const auto& [key, s] : rank.counters()) counters[key].merge(s);
  }

  GlobalResults out;
  for (auto& [key, m] : functions) {
    for (const auto& rank : ranks) AddAnomalySamples(rank, key, m);
    out.func_stats.push_back(FuncStatsDoc(key, m));
    if (!m.model.empty()) out.ad_model.push_back(AdModelDoc(key, m));
    out.functions.push_back(FunctionSummary{key, m.name, m.anomalies, m.executions});
  }
  for (const auto& [key, s] : counters) {
    ojson doc = {{"app", key.first}, {"counter", key.second}, {"stats", s.ToJson()}};
    out.counter_stats.push_back(doc.dump());
  }

  std::stable_sort(out.functions.begin(), out.functions.end(),
                   [](const FunctionSummary& a, const FunctionSummary& b) {
                     return a.anomalies > b.anomalies;
                   });
  return out;
}

}  // namespace provdb::cli
