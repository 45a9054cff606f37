// provdb replay: a provenance run played back from recorded records. Each
// simulated rank runs on a thread of its own with its own client, as an
// anomaly-detection process would; a simulated parameter server then writes
// the global database. Without a running server, replay starts one (child
// processes) and waits for it to shut itself down when every client has left.
//
// Threads: the main thread loads the records, starts and stops everything and
// prints the summary; rank threads only read the shared records and write
// their own tally and client; the Progress thread draws.
#include <array>
#include <chrono>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "cli/replay_data.hpp"
#include "cli/replay_stats.hpp"
#include "cli/server_process.hpp"
#include "cli/source.hpp"
#include "client/client.hpp"
#include "common/error.hpp"

namespace provdb::cli {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct ReplayArgs {
  std::string dir;
  int ranks = 8;
  int shards = 4;
  int instances = 1;
  double interval = 0;
  std::size_t batch = 32;
  std::string data = PROVDB_DATA_DIR;
  std::string program = "provdb";
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// What one simulated rank does, and what it leaves behind.
struct RankRun {
  int rank = 0;
  const RecordedRank* source = nullptr;
  std::unique_ptr<client::Client> client;
  RankTally tally;
  uint64_t bytes = 0;
  std::exception_ptr error;
};

class RankSender {
 public:
  RankSender(RankRun& run, const ReplayArgs& args, Progress& progress)
      : run_(run), args_(args), progress_(progress) {}

  void Run() {
    run_.client = std::make_unique<client::Client>(
        client::Client::ConnectRank(args_.dir, run_.rank));
    client::Database& db = run_.client->database();
    const auto metadata = db.collection("metadata");
    const auto anomalies = db.collection("anomalies");
    const auto normalexecs = db.collection("normalexecs");

    Send(metadata, run_.source->metadata);
    for (const auto& [step, records] : run_.source->steps) {
      const auto start = Clock::now();
      run_.tally.add_step(step);
      for (const auto& r : records.anomalies) run_.tally.add_execution(r, true);
      for (const auto& r : records.normalexecs) run_.tally.add_execution(r, false);
      Send(anomalies, records.anomalies);
      Send(normalexecs, records.normalexecs);
      if (args_.interval > 0) {
        std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(args_.interval)));
      }
    }

    run_.client->wait_all();
    for (const auto& p : pending_) p.wait();
  }

 private:
  void Send(const client::Collection& collection, const std::vector<SourceRecord>& records) {
    for (std::size_t i = 0; i < records.size(); i += args_.batch) {
      const std::size_t end = std::min(records.size(), i + args_.batch);
      std::vector<std::string> docs;
      docs.reserve(end - i);
      for (std::size_t j = i; j < end; ++j) {
        docs.push_back(RewriteForRank(records[j], run_.rank));
        run_.bytes += docs.back().size();
      }
      pending_.push_back(collection.store_multi_async(std::move(docs)));
      progress_.add(end - i);
      // Acknowledged batches are checked as they come so that an error
      // stops the rank early instead of at the end.
      while (!pending_.empty() && pending_.front().ready()) {
        pending_.front().wait();
        pending_.pop_front();
      }
    }
  }

  RankRun& run_;
  const ReplayArgs& args_;
  Progress& progress_;
  std::deque<client::PendingIds> pending_;
};

void CheckArgs(const ReplayArgs& a) {
  if (a.ranks < 1 || a.shards < 1 || a.instances < 1 || a.instances > a.shards) {
    throw Error(ErrorCode::kInvalidArgument,
                "--ranks and --shards must be at least 1, and --instances between 1 and "
                "--shards (got ranks " + std::to_string(a.ranks) + ", shards " +
                    std::to_string(a.shards) + ", instances " + std::to_string(a.instances) + ")");
  }
  if (a.batch < 1) throw Error(ErrorCode::kInvalidArgument, "--batch must be at least 1");
  if (a.interval < 0) throw Error(ErrorCode::kInvalidArgument, "--interval cannot be negative");
}

// Refuses to mix a new run into the files of an earlier one.
void CheckFreshDir(const ReplayArgs& a, const DirState& state) {
  if (state.shard_files == 0 && !state.global_file) return;
  throw Error(ErrorCode::kAlreadyExists,
              "'" + a.dir + "' already holds the database of an earlier run (" +
                  (state.shard_files > 0 ? storage::ShardFileName(0) : storage::GlobalFileName()) +
                  "); replaying into it would mix two runs. Remove it (rm -r " + a.dir +
                  ") or choose another --dir");
}

std::vector<RankRun> PlanRanks(const ReplayArgs& a, const RecordedRun& recorded) {
  if (recorded.ranks.empty()) {
    throw Error(ErrorCode::kNotFound, "no records in '" + a.data + "'; check --data");
  }
  std::vector<RankRun> runs(static_cast<std::size_t>(a.ranks));
  for (int r = 0; r < a.ranks; ++r) {
    runs[r].rank = r;
    runs[r].source = &recorded.ranks[static_cast<std::size_t>(r) % recorded.ranks.size()];
  }
  return runs;
}

void SendAll(std::vector<RankRun>& runs, const ReplayArgs& a, uint64_t total) {
  Progress progress("replay", total, "records");
  std::vector<std::thread> threads;
  for (auto& run : runs) {
    threads.emplace_back([&run, &a, &progress] {
      try {
        RankSender(run, a, progress).Run();
      } catch (...) {
        run.error = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  progress.finish();
  for (auto& run : runs) {
    if (!run.error) continue;
    // Every rank leaves before the error is reported, so that the server
    // is not kept waiting for their goodbyes.
    for (auto& r : runs) r.client.reset();
    std::rethrow_exception(run.error);
  }
}

void StoreAll(client::Client& ps, const char* collection, const std::vector<std::string>& docs) {
  constexpr std::size_t kBatch = 256;
  const auto c = ps.database().collection(collection);
  for (std::size_t i = 0; i < docs.size(); i += kBatch) {
    std::vector<std::string> batch(docs.begin() + static_cast<std::ptrdiff_t>(i),
                                   docs.begin() + static_cast<std::ptrdiff_t>(
                                                      std::min(docs.size(), i + kBatch)));
    c.store_multi(batch);
  }
}

GlobalResults WriteGlobal(client::Client& ps, const std::vector<RankRun>& runs) {
  std::vector<RankTally> tallies;
  for (const auto& r : runs) tallies.push_back(r.tally);
  GlobalResults global = ComputeGlobal(tallies);
  StoreAll(ps, "func_stats", global.func_stats);
  StoreAll(ps, "counter_stats", global.counter_stats);
  StoreAll(ps, "ad_model", global.ad_model);
  return global;
}

// --- summary ---

struct Timings {
  Clock::time_point start;
  double load = 0;
  double startup = 0;
  double send = 0;
  double global = 0;
  double shutdown = 0;
};

struct StoredCounts {
  Table table;
  int shards = 0;
  bool match = true;
  std::string verdict;
};

// The records per collection per shard, and whether they are what the ranks
// sent. Read while the ranks are still connected: a server that was already
// running may shut itself down as soon as they leave.
StoredCounts CountStored(Source& source, const std::vector<RankRun>& runs) {
  const char* names[] = {"anomalies", "normalexecs", "metadata"};
  const int shards = source.num_shards();
  std::vector<std::array<int64_t, 3>> sent(static_cast<std::size_t>(shards), {0, 0, 0});
  for (const auto& r : runs) {
    auto& s = sent[static_cast<std::size_t>(r.rank % shards)];
    s[2] += static_cast<int64_t>(r.source->metadata.size());
    for (const auto& [step, recs] : r.source->steps) {
      s[0] += static_cast<int64_t>(recs.anomalies.size());
      s[1] += static_cast<int64_t>(recs.normalexecs.size());
    }
  }

  StoredCounts out;
  out.shards = shards;
  Table& table = out.table;
  table.columns = {"shard", "anomalies", "normalexecs", "metadata"};
  std::array<int64_t, 3> total{0, 0, 0};
  std::array<int64_t, 3> expected{0, 0, 0};
  bool& match = out.match;
  for (const auto& t : source.shards()) {
    auto& row = table.rows.emplace_back();
    row.push_back(t.shard);
    for (int c = 0; c < 3; ++c) {
      const int64_t n = source.size(t, names[c]);
      row.push_back(n);
      total[c] += n;
      expected[c] += sent[t.shard][c];
      match = match && n == sent[t.shard][c];
    }
  }
  table.rows.push_back({"all", total[0], total[1], total[2]});
  out.verdict = match ? "Stored counts match what the ranks sent."
                      : "The stored counts differ from what the ranks sent (" +
                            std::to_string(expected[0]) + " anomalies, " +
                            std::to_string(expected[1]) + " normal executions, " +
                            std::to_string(expected[2]) + " metadata).";
  return out;
}

void PrintCounts(const StoredCounts& counts) {
  std::cout << "\nRecords stored, per shard:\n\n";
  WriteTable(std::cout, counts.table, Format::kTable);
  std::cout << "\n" << counts.verdict << "\n";
}

void PrintTopFunctions(const GlobalResults& global) {
  Table table;
  table.columns = {"anomalies", "executions", "app", "fid", "function"};
  for (std::size_t i = 0; i < global.functions.size() && i < 10; ++i) {
    const auto& f = global.functions[i];
    table.rows.push_back({f.anomalies, f.executions, f.key.pid, f.key.fid, f.name});
  }
  std::cout << "\nFunctions with most anomalies (all ranks):\n\n";
  WriteTable(std::cout, table, Format::kTable);
}

void PrintTimings(const Timings& t, uint64_t records, uint64_t bytes) {
  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf("\nReplayed %s records (%.1f MB) in %.2f s: %s records/s, %.1f MB/s\n",
              WithThousands(records).c_str(), mb, t.send,
              WithThousands(static_cast<uint64_t>(static_cast<double>(records) / t.send)).c_str(),
              mb / t.send);
  std::printf("(loading records %.2f s, server start and connections %.2f s, "
              "parameter server %.2f s, shutdown %.2f s; %.2f s in all)\n",
              t.load, t.startup, t.global, t.shutdown, Seconds(Clock::now() - t.start));
  std::fflush(stdout);
}

void PrintFiles(const ReplayArgs& a, int shards, const std::vector<fs::path>& logs) {
  std::cout << "\nFiles in " << a.dir << ":\n";
  std::error_code ec;
  auto show = [&](const fs::path& p) {
    const auto size = fs::file_size(p, ec);
    std::printf("  %-40s %8.1f MB\n", p.string().c_str(), ec ? 0.0 : size / 1e6);
  };
  for (int k = 0; k < shards; ++k) show(fs::path(a.dir) / storage::ShardFileName(k));
  show(fs::path(a.dir) / storage::GlobalFileName());
  for (const auto& l : logs) std::cout << "  " << l.string() << "  (server log)\n";
}

void PrintNext(const ReplayArgs& a, const GlobalResults& global) {
  const std::string p = a.program + " query --dir " + a.dir;
  const std::string fid =
      global.functions.empty() ? "500" : std::to_string(global.functions.front().key.fid);
  std::cout << "\nTry next:\n"
            << "  " << p << " anomalies --where 'fid = " << fid << "' --format table\n"
            << "  " << p << " --global func_stats --format table\n"
            << "  " << p << " --sql \"SELECT json_extract(doc, '$.func') AS func, count(*) AS n "
               "FROM anomalies GROUP BY func\" \\\n"
            << "      --merge 'SELECT func, sum(n) AS n FROM result GROUP BY func "
               "ORDER BY n DESC LIMIT 5' --format table\n";
}

int RunReplay(ReplayArgs a) {
  CheckArgs(a);
  Timings t;
  t.start = Clock::now();

  // Use the servers of the directory if they run, else start our own.
  const DirState state = InspectDir(a.dir);
  if (!state.live()) CheckFreshDir(a, state);

  std::cerr << "Loading recorded records from " << a.data << " ...\n";
  const RecordedRun recorded = LoadRecordedRun(a.data);
  std::vector<RankRun> runs = PlanRanks(a, recorded);
  uint64_t total = 0;
  for (const auto& r : runs) total += r.source->record_count();
  t.load = Seconds(Clock::now() - t.start);

  fs::create_directories(a.dir);
  std::unique_ptr<ServerProcesses> servers;
  auto mark = Clock::now();
  if (state.live()) {
    std::cerr << "Using the server running in " << a.dir << "\n";
  } else {
    std::cerr << "Starting a server: " << a.shards << " shards, " << a.instances
              << " instance(s), files in " << a.dir << "\n";
    servers = std::make_unique<ServerProcesses>(a.dir, a.shards, a.instances);
    servers->wait_ready(std::chrono::seconds(60));
  }

  // The parameter server connects first and leaves last, so that the server
  // does not shut itself down between the ranks' goodbyes and its writes.
  auto ps = std::make_unique<client::Client>(client::Client::ConnectGlobal(a.dir));
  t.startup = Seconds(Clock::now() - mark);
  std::cerr << "Replaying " << a.ranks << " ranks into " << ps->num_shards() << " shards\n";

  mark = Clock::now();
  SendAll(runs, a, total);
  t.send = Seconds(Clock::now() - mark);

  mark = Clock::now();
  const GlobalResults global = WriteGlobal(*ps, runs);
  t.global = Seconds(Clock::now() - mark);

  const StoredCounts counts = CountStored(*OpenSource(a.dir), runs);

  mark = Clock::now();
  uint64_t bytes = 0;
  for (auto& r : runs) {
    bytes += r.bytes;
    r.client.reset();
  }
  ps.reset();
  if (servers) servers->wait_exit(std::chrono::seconds(120));
  t.shutdown = Seconds(Clock::now() - mark);

  std::cout << "\nprovdb replay: " << a.ranks << " ranks, records of " << recorded.ranks.size()
            << " recorded ranks from " << a.data << "\n";
  PrintCounts(counts);
  std::cout << "Global database: " << global.func_stats.size() << " func_stats, "
            << global.counter_stats.size() << " counter_stats, " << global.ad_model.size()
            << " ad_model records.\n";
  PrintTimings(t, total, bytes);
  PrintTopFunctions(global);
  PrintFiles(a, counts.shards, servers ? servers->logs() : std::vector<fs::path>{});
  PrintNext(a, global);
  // Against a server that already held records the counts cannot match.
  return counts.match || !servers ? 0 : 1;
}

}  // namespace

void AddReplayCommand(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ReplayArgs>();
  CLI::App* cmd = app.add_subcommand(
      "replay", "Replay a recorded run: simulated ranks, then the parameter server");
  cmd->add_option("--dir", a->dir, "Database directory (the running server's, or a new one)")
      ->required();
  cmd->add_option("--ranks", a->ranks, "Simulated ranks; rank r replays recorded rank r mod 2")
      ->capture_default_str();
  cmd->add_option("--shards", a->shards, "Shards of the server replay starts")
      ->capture_default_str();
  cmd->add_option("--instances", a->instances, "Server instances replay starts")
      ->capture_default_str();
  cmd->add_option("--interval", a->interval,
                  "Seconds per io step for each rank (0: as fast as possible)")
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "Records per asynchronous store")->capture_default_str();
  cmd->add_option("--data", a->data, "Directory of the recorded records")
      ->capture_default_str();
  cmd->callback([a, &app, &exit_code] {
    ReplayArgs args = *a;
    args.program = app.get_name().empty() ? "provdb" : app.get_name();
    exit_code = RunReplay(args);
  });
}

}  // namespace provdb::cli
