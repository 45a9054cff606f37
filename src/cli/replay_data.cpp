// Loading the recorded run with simdjson's on-demand parser, which also tells
// where each value sits in the text, so that a rank's copy of a record is
// made by splicing two values instead of re-serializing 8 KB of JSON.
#include "cli/replay_data.hpp"

#include <algorithm>
#include <charconv>

#include <simdjson.h>

#include "cli/line_reader.hpp"
#include "common/error.hpp"

namespace provdb::cli {
namespace {

namespace od = simdjson::ondemand;

// The token as it sits in the text, without the whitespace simdjson keeps
// after it.
std::string_view Token(od::value& v) {
  std::string_view t = v.raw_json_token();
  while (!t.empty() && (t.back() == ' ' || t.back() == '\n' || t.back() == '\r' ||
                        t.back() == '\t')) {
    t.remove_suffix(1);
  }
  return t;
}

std::optional<int64_t> ParseInt(std::string_view t) {
  int64_t x = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
  if (ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
  return x;
}

std::optional<double> Number(od::value& v) {
  double x = 0;
  if (v.get_double().get(x) != simdjson::SUCCESS) return std::nullopt;
  return x;
}

void ReadCounters(od::value& v, SourceRecord& rec) {
  od::array events;
  if (v.get_array().get(events) != simdjson::SUCCESS) return;
  for (auto item : events) {
    od::object event;
    if (item.get_object().get(event) != simdjson::SUCCESS) continue;
    CounterSample sample;
    bool has_value = false;
    for (auto field : event) {
      std::string_view key = field.unescaped_key();
      od::value fv = field.value();
      if (key == "counter_name") {
        std::string_view name;
        if (fv.get_string().get(name) == simdjson::SUCCESS) sample.name = name;
      } else if (key == "counter_value") {
        has_value = fv.get_double().get(sample.value) == simdjson::SUCCESS;
      } else if (key == "pid") {
        int64_t pid = 0;
        if (fv.get_int64().get(pid) == simdjson::SUCCESS) sample.pid = pid;
      }
    }
    if (has_value && !sample.name.empty()) rec.counters.push_back(std::move(sample));
  }
}

// Finds the rank part of an event id token such as "1:0:11291" (quotes
// included in the token), relative to the start of the record.
void FindEventRank(std::string_view token, std::size_t token_pos, SourceRecord& rec) {
  if (token.size() < 2 || token.front() != '"') return;
  const std::size_t colon = token.find(':');
  if (colon == std::string_view::npos || colon < 2) return;
  rec.event_rank_span = std::make_pair(token_pos + 1, colon - 1);
}

void ReadField(std::string_view key, od::value& v, std::string_view line, SourceRecord& rec) {
  if (key == "rid") {
    std::string_view t = Token(v);
    const std::optional<int64_t> rid = ParseInt(t);
    if (!rid) return;  // not an integer: left as it is, and the record counts as rank 0
    rec.rid = *rid;
    rec.rid_span = std::make_pair(static_cast<std::size_t>(t.data() - line.data()), t.size());
  } else if (key == "event_id") {
    std::string_view t = Token(v);
    FindEventRank(t, static_cast<std::size_t>(t.data() - line.data()), rec);
  } else if (key == "pid") {
    rec.pid = ParseInt(Token(v)).value_or(0);
  } else if (key == "fid") {
    rec.fid = ParseInt(Token(v));
  } else if (key == "func") {
    std::string_view name;
    if (v.get_string().get(name) == simdjson::SUCCESS) rec.func = name;
  } else if (key == "io_step") {
    rec.io_step = ParseInt(Token(v));
  } else if (key == "entry") {
    rec.entry = ParseInt(Token(v)).value_or(0);
  } else if (key == "runtime_total") {
    rec.runtime_total = Number(v);
  } else if (key == "runtime_exclusive") {
    rec.runtime_exclusive = Number(v);
  } else if (key == "counter_events") {
    ReadCounters(v, rec);
  } else if (key == "func_stats" || (key == "algo_params" && rec.model.empty())) {
    std::string_view raw;
    if (simdjson::to_json_string(v).get(raw) == simdjson::SUCCESS) rec.model = raw;
  }
}

std::filesystem::path FindRecordFile(const std::filesystem::path& dir, const std::string& name) {
  for (const char* ext : {".jsonl", ".jsonl.xz"}) {
    std::filesystem::path p = dir / (name + ext);
    std::error_code ec;
    if (std::filesystem::is_regular_file(p, ec)) return p;
  }
  throw Error(ErrorCode::kNotFound, "no " + name + ".jsonl or " + name + ".jsonl.xz in '" +
                                        dir.string() +
                                        "'; give --data a directory of recorded records");
}

RecordedRank& RankFor(RecordedRun& run, int64_t rid) {
  for (auto& r : run.ranks) {
    if (r.rid == rid) return r;
  }
  run.ranks.push_back(RecordedRank{});
  run.ranks.back().rid = rid;
  return run.ranks.back();
}

void LoadCollection(const std::filesystem::path& dir, const std::string& name,
                    RecordedRun& run) {
  LineReader reader(FindRecordFile(dir, name));
  std::string line;
  while (reader.next(line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string which =
        reader.path().string() + " line " + std::to_string(reader.line_number());
    SourceRecord rec = ParseSourceRecord(line, which);
    run.bytes += line.size();
    RecordedRank& rank = RankFor(run, rec.rid);
    if (name == "metadata") {
      rank.metadata.push_back(std::move(rec));
      continue;
    }
    ReplayStep& step = rank.steps[rec.io_step.value_or(-1)];
    (name == "anomalies" ? step.anomalies : step.normalexecs).push_back(std::move(rec));
  }
}

}  // namespace

std::size_t RecordedRank::record_count() const {
  std::size_t n = metadata.size();
  for (const auto& [step, s] : steps) n += s.anomalies.size() + s.normalexecs.size();
  return n;
}

SourceRecord ParseSourceRecord(std::string_view line, std::string_view which) {
  thread_local od::parser parser;
  simdjson::padded_string padded(line);
  SourceRecord rec;
  rec.json.assign(line);

  auto fail = [&](simdjson::error_code e) {
    throw Error(ErrorCode::kBadDocument, std::string(which) + ": not a JSON object (" +
                                             simdjson::error_message(e) +
                                             "); fix or remove that line");
  };
  od::document doc;
  if (auto e = parser.iterate(padded).get(doc); e) fail(e);
  od::object obj;
  if (auto e = doc.get_object().get(obj); e) fail(e);

  // Offsets come from the padded copy; they are the same in the original.
  const std::string_view text(padded.data(), padded.size());
  for (auto field : obj) {
    std::string_view key;
    if (auto e = field.unescaped_key().get(key); e) fail(e);
    od::value v;
    if (auto e = field.value().get(v); e) fail(e);
    ReadField(key, v, text, rec);
  }
  return rec;
}

std::string RewriteForRank(const SourceRecord& record, int rank) {
  const std::string r = std::to_string(rank);
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  if (record.rid_span) spans.push_back(*record.rid_span);
  if (record.event_rank_span) spans.push_back(*record.event_rank_span);
  std::sort(spans.begin(), spans.end());

  std::string out;
  out.reserve(record.json.size() + 16);
  std::size_t at = 0;
  for (const auto& [pos, len] : spans) {
    out.append(record.json, at, pos - at);
    out += r;
    at = pos + len;
  }
  out.append(record.json, at, std::string::npos);
  return out;
}

RecordedRun LoadRecordedRun(const std::filesystem::path& dir) {
  RecordedRun run;
  for (const char* name : {"metadata", "anomalies", "normalexecs"}) {
    LoadCollection(dir, name, run);
  }
  std::sort(run.ranks.begin(), run.ranks.end(),
            [](const RecordedRank& a, const RecordedRank& b) { return a.rid < b.rid; });
  return run;
}

}  // namespace provdb::cli
