// provdb replay: a provenance run played back from recorded records. Each
// simulated rank runs on a thread of its own with its own client, as an
// anomaly-detection process would; a simulated parameter server then writes
// the global database. Without a running server, replay starts one (child
// processes) and waits for it to shut itself down when every client has left.
//
// Threads: the main thread loads the records, starts and stops everything and
// prints the summary; rank threads only read the shared records and write
// their own tally and client; the Progress thread draws.
#include <algorithm>
#include <array>
#include <atomic>
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

// Set by the first rank that fails, so that the others stop too instead of
// sending into a server that may be gone.
class StopFlag {
 public:
  void raise() { raised_.store(true, std::memory_order_relaxed); }
  bool raised() const { return raised_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> raised_{false};
};

// Thrown by a rank that stops because another one failed; the other rank's
// error is the one reported.
struct Stopped {};

class RankSender {
 public:
  RankSender(RankRun& run, const ReplayArgs& args, Progress& progress, const StopFlag& stop)
      : run_(run), args_(args), progress_(progress), stop_(stop) {}

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
        const auto until = start + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(args_.interval));
        while (Clock::now() < until) {
          if (stop_.raised()) StopNow();
          std::this_thread::sleep_for(
              std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
        }
      }
    }

    // The acknowledgements are awaited one by one, so that each counts on
    // the progress bar and the first failure ends the wait.
    while (!pending_.empty()) {
      while (!pending_.front().ids.ready()) {
        if (stop_.raised()) StopNow();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      Acknowledge();
    }
  }

 private:
  struct Batch {
    client::PendingIds ids;
    std::size_t records = 0;
  };

  void Send(const client::Collection& collection, const std::vector<SourceRecord>& records) {
    for (std::size_t i = 0; i < records.size(); i += args_.batch) {
      if (stop_.raised()) StopNow();
      const std::size_t end = std::min(records.size(), i + args_.batch);
      std::vector<std::string> docs;
      docs.reserve(end - i);
      for (std::size_t j = i; j < end; ++j) {
        docs.push_back(RewriteForRank(records[j], run_.rank));
        run_.bytes += docs.back().size();
      }
      pending_.push_back({collection.store_multi_async(std::move(docs)), end - i});
      // Acknowledged batches are checked as they come so that an error
      // stops the rank early instead of at the end.
      while (!pending_.empty() && pending_.front().ids.ready()) Acknowledge();
    }
  }

  // Counts what has been acknowledged so far, then leaves.
  [[noreturn]] void StopNow() {
    while (!pending_.empty() && pending_.front().ids.ready()) Acknowledge();
    throw Stopped{};
  }

  // Takes the oldest batch, which is ready: rethrows its error, or counts
  // its records as stored.
  void Acknowledge() {
    pending_.front().ids.wait();
    progress_.add(pending_.front().records);
    pending_.pop_front();
  }

  RankRun& run_;
  const ReplayArgs& args_;
  Progress& progress_;
  const StopFlag& stop_;
  std::deque<Batch> pending_;
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

// Whether every address file that was there at the start still is. A
// server that stops removes its own, so a missing one means the server
// is gone, whatever its clients have noticed.
bool ServerStillThere(const ReplayArgs& a, const std::vector<int>& instances) {
  const DirState now = InspectDir(a.dir);
  for (int i : instances) {
    if (std::find(now.live_instances.begin(), now.live_instances.end(), i) ==
        now.live_instances.end()) {
      return false;
    }
  }
  return true;
}

// The progress bar counts records the server has acknowledged, so that it
// shows what is stored, not what was handed to the client. The first rank
// to fail, or the server going away, stops every rank.
// Limitation: a rank waiting for room among its requests in flight (the
// client's max_outstanding) only notices when the client gives up on one.
void SendAll(std::vector<RankRun>& runs, const ReplayArgs& a, uint64_t total) {
  Progress progress("replay", total, "record");
  StopFlag stop;
  std::atomic<std::size_t> running{runs.size()};
  std::vector<std::thread> threads;
  for (auto& run : runs) {
    threads.emplace_back([&run, &a, &progress, &stop, &running] {
      try {
        RankSender(run, a, progress, stop).Run();
      } catch (const Stopped&) {
        // Another rank's error, or the server's going, is reported.
      } catch (...) {
        run.error = std::current_exception();
        stop.raise();
      }
      running.fetch_sub(1);
    });
  }
  const std::vector<int> instances = InspectDir(a.dir).live_instances;
  bool server_gone = false;
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!server_gone && !ServerStillThere(a, instances)) {
      server_gone = true;
      stop.raise();
    }
  }
  for (auto& t : threads) t.join();
  progress.finish();

  const auto failed =
      std::find_if(runs.begin(), runs.end(), [](const RankRun& r) { return r.error != nullptr; });
  if (failed == runs.end() && !server_gone) return;
  const std::string stopped = "the replay stopped after " +
                              CountOf(progress.done(), "acknowledged record") + " of " +
                              WithThousands(total);
  if (server_gone) {
    // Saying goodbye to a server that is gone would only wait out the
    // client's request timeout; the process ends right after the error.
    for (auto& r : runs) static_cast<void>(r.client.release());
    throw Error(ErrorCode::kUnavailable,
                "the server of " + a.dir + " stopped during the replay (its address files "
                "are gone), so " + stopped + "; see its log for why it stopped, and replay "
                "into a new directory");
  }
  // Every rank leaves before the error is reported, so that the server
  // is not kept waiting for their goodbyes.
  for (auto& r : runs) r.client.reset();
  try {
    std::rethrow_exception(failed->error);
  } catch (const Error& e) {
    throw Error(e.code(), "rank " + std::to_string(failed->rank) +
                              " could not store its records, so " + stopped + ": " + e.what() +
                              (e.code() == ErrorCode::kUnavailable ||
                                       e.code() == ErrorCode::kTimeout
                                   ? "; check that the server of " + a.dir +
                                         " is still running (provdb status --dir " + a.dir +
                                         ") and its log"
                                   : ""));
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
  RefuseNonDirectory(a.dir, state);
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
  try {
    SendAll(runs, a, total);
  } catch (const Error&) {
    // As for the ranks: no goodbye to a server that is gone.
    if (!InspectDir(a.dir).live()) static_cast<void>(ps.release());
    throw;
  }
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
