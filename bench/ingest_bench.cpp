// Ingest through the server: the bundled real records pushed by 1, 4 and 16
// client threads into `provdb serve` with 1, 2 and 4 shards, beside the
// embedded storage store rate measured in the same run; the caller's cost of
// an asynchronous store; and the server's peak memory while 16 clients push
// the data set many times. Prints Markdown tables.
//
// Threads: one thread per simulated client, each with its own Client; the
// server is a child process (the provdb binary this was built with).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/resource.h>
#include <string>
#include <thread>
#include <vector>

#include "client/client.hpp"
#include "protocol/address_dir.hpp"
#include "storage/database.hpp"
#include "test_data.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using provdb::client::Client;

// Documents per asynchronous store: about one AD step's worth.
constexpr std::size_t kBatch = 100;

struct Data {
  std::vector<std::pair<std::string, std::string>> docs;  // collection, JSON
  std::size_t bytes = 0;
};

Data LoadData() {
  Data data;
  for (const char* name : {"anomalies", "normalexecs", "metadata"}) {
    for (auto& line : provdb::testing::LoadRecords(name)) {
      data.bytes += line.size();
      data.docs.emplace_back(name, std::move(line));
    }
  }
  return data;
}

fs::path ScratchDir(const std::string& what) {
  fs::path dir = fs::temp_directory_path() /
                 ("provdb-ingest-bench-" + what + "-" + std::to_string(std::random_device()()));
  fs::create_directories(dir);
  return dir;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU time (user + system) of this process so far, in seconds.
double ProcessCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// --- the embedded reference ---

double EmbeddedRate(const Data& data, int rounds) {
  // The same batches as one client sends: up to kBatch documents of one
  // collection.
  std::vector<std::pair<std::string, std::vector<std::string_view>>> batches;
  for (const auto& [name, json] : data.docs) {
    if (batches.empty() || batches.back().first != name ||
        batches.back().second.size() == kBatch) {
      batches.emplace_back(name, std::vector<std::string_view>{});
    }
    batches.back().second.push_back(json);
  }

  const fs::path dir = ScratchDir("embedded");
  double seconds = 0;
  {
    provdb::storage::Database db(dir / provdb::storage::ShardFileName(0));
    for (const char* name : {"anomalies", "normalexecs", "metadata"}) {
      db.create_collection(name, true);
    }
    const auto start = Clock::now();
    const double cpu0 = ProcessCpuSeconds();
    for (int round = 0; round < rounds; ++round) {
      for (const auto& [name, views] : batches) db.store_multi(name, views);
    }
    seconds = Seconds(Clock::now() - start);
    std::printf("embedded store used %.2f s of CPU in %.2f s\n", ProcessCpuSeconds() - cpu0,
                seconds);
  }
  fs::remove_all(dir);
  return static_cast<double>(data.docs.size()) * rounds / seconds;
}

// --- the server process ---

class Server {
 public:
  Server(const fs::path& dir, int shards) : dir_(dir) {
    std::vector<std::string> args{PROVDB_BINARY, "serve", "--dir", dir.string(), "--shards",
                                  std::to_string(shards), "--no-autoshutdown"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    const std::string log = (dir / "serve.log").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (posix_spawn(&pid_, PROVDB_BINARY, &actions, nullptr, argv.data(), environ) != 0) {
      throw std::runtime_error("cannot start " + std::string(PROVDB_BINARY));
    }
    posix_spawn_file_actions_destroy(&actions);
  }

  ~Server() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }

  // CPU time (user + system) the server process used so far, in seconds.
  double CpuSeconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command name, which is in parentheses: utime is the
    // 12th and stime the 13th of them.
    std::istringstream rest(text.substr(text.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int i = 1; i <= 13 && rest >> field; ++i) {
      if (i >= 12) ticks += std::stod(field);
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

  // Peak resident memory of the server process, in MiB (VmHWM).
  double PeakRssMiB() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    }
    return 0;
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
};

// --- clients ---

struct RunResult {
  double seconds = 0;
  std::size_t docs = 0;
  std::size_t bytes = 0;
  double peak_rss_mib = 0;
  double server_cpu_s = 0;
  double client_cpu_s = 0;
  std::vector<double> call_us;   // caller's time in each asynchronous store
  std::vector<double> fetch_ms;  // latency of a tool's fetch during the ingest
};

// `clients` threads push `rounds` copies of the data set, split round-robin
// between them, in asynchronous batches of kBatch.
RunResult Ingest(const Data& data, int clients, int shards, int rounds, bool probe_reads) {
  const fs::path dir = ScratchDir(std::to_string(clients) + "x" + std::to_string(shards));
  RunResult result;
  {
    Server server(dir, shards);

    // Each client's batches, built before the clock starts.
    std::vector<std::vector<std::pair<std::string, std::vector<std::string>>>> work(clients);
    for (int c = 0; c < clients; ++c) {
      std::vector<std::pair<std::string, std::vector<std::string>>>& batches = work[c];
      for (std::size_t i = c; i < data.docs.size(); i += clients) {
        const auto& [name, json] = data.docs[i];
        if (batches.empty() || batches.back().first != name ||
            batches.back().second.size() == kBatch) {
          batches.emplace_back(name, std::vector<std::string>{});
        }
        batches.back().second.push_back(json);
      }
    }

    std::vector<std::unique_ptr<Client>> connected(clients);
    for (int c = 0; c < clients; ++c) {
      connected[c] = std::make_unique<Client>(Client::ConnectRank(dir, c));
    }

    std::barrier start(clients + 1);
    std::vector<std::vector<double>> call_us(clients);
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        auto& db = connected[c]->database();
        start.arrive_and_wait();
        for (int round = 0; round < rounds; ++round) {
          for (const auto& [name, docs] : work[c]) {
            std::vector<std::string> copy = docs;  // the store takes its documents
            const auto t0 = Clock::now();
            db.collection(name).store_multi_nowait(std::move(copy));
            call_us[c].push_back(Seconds(Clock::now() - t0) * 1e6);
          }
        }
        connected[c]->wait_all();
      });
    }

    // A tool fetching one record every 20 ms while the ranks push: how long
    // a read waits behind the ingest.
    std::atomic<bool> ingesting{true};
    std::thread prober;
    if (probe_reads) {
      connected[0]->database().collection("metadata").store("{}");
      prober = std::thread([&] {
        Client tool = Client::ConnectTool(dir);
        auto metadata = tool.shard(0).collection("metadata");
        while (ingesting) {
          const auto t0 = Clock::now();
          metadata.fetch(0);
          result.fetch_ms.push_back(Seconds(Clock::now() - t0) * 1e3);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      });
    }

    start.arrive_and_wait();
    const auto t0 = Clock::now();
    const double server_cpu0 = server.CpuSeconds();
    const double client_cpu0 = ProcessCpuSeconds();
    for (auto& t : threads) t.join();
    ingesting = false;
    if (prober.joinable()) prober.join();
    result.seconds = Seconds(Clock::now() - t0);
    result.server_cpu_s = server.CpuSeconds() - server_cpu0;
    result.client_cpu_s = ProcessCpuSeconds() - client_cpu0;
    result.peak_rss_mib = server.PeakRssMiB();
    result.docs = data.docs.size() * rounds;
    result.bytes = data.bytes * rounds;
    for (auto& v : call_us) result.call_us.insert(result.call_us.end(), v.begin(), v.end());

    std::size_t failed = 0;
    for (auto& c : connected) failed += c->failed_sends();
    if (failed > 0) std::fprintf(stderr, "warning: %zu failed sends\n", failed);
    connected.clear();
  }
  fs::remove_all(dir);
  return result;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(p * static_cast<double>(values.size() - 1))];
}

// The caller's cost of store_async of single documents, as an AD instance
// sends them: bursts well within the window of outstanding requests, so the
// call measures the hand-off, not the server.
std::vector<double> AsyncCallCost(const Data& data, int bursts) {
  const fs::path dir = ScratchDir("call-cost");
  std::vector<double> call_us;
  {
    Server server(dir, 1);
    Client client = Client::ConnectRank(dir, 0);
    auto anomalies = client.database().collection("anomalies");
    constexpr std::size_t kBurst = 32;
    std::size_t next = 0;
    for (int b = 0; b < bursts; ++b) {
      std::vector<std::string> docs;
      for (std::size_t i = 0; i < kBurst; ++i) {
        docs.push_back(data.docs[next++ % data.docs.size()].second);
      }
      for (auto& doc : docs) {
        const auto t0 = Clock::now();
        anomalies.store_async(std::move(doc));
        call_us.push_back(Seconds(Clock::now() - t0) * 1e6);
      }
      client.wait_all();
    }
  }
  fs::remove_all(dir);
  return call_us;
}

// Latencies of reads over the network from a tool on an idle server holding
// the real anomalies: what a visualization or an analyst sees.
void RemoteReads(const Data& data) {
  const fs::path dir = ScratchDir("reads");
  {
    Server server(dir, 1);
    {
      Client rank = Client::ConnectRank(dir, 0);
      std::vector<std::string> anomalies;
      for (const auto& [name, json] : data.docs) {
        if (name == "anomalies") anomalies.push_back(json);
      }
      rank.database().collection("anomalies").store_multi(anomalies);
    }

    Client tool = Client::ConnectTool(dir);
    auto anomalies = tool.shard(0).collection("anomalies");
    const int64_t size = anomalies.size();
    std::mt19937 random(42);
    auto time_ms = [](auto&& call, int times, std::size_t& found) {
      std::vector<double> ms;
      for (int i = 0; i < times; ++i) {
        const auto t0 = Clock::now();
        found = call();
        ms.push_back(Seconds(Clock::now() - t0) * 1e3);
      }
      return ms;
    };
    std::size_t found = 0;
    auto report = [&](const char* what, auto&& call, int times) {
      const std::vector<double> ms = time_ms(call, times, found);
      std::printf("| %s | %zu | %.3f | %.3f |\n", what, found, Percentile(ms, 0.5),
                  Percentile(ms, 0.99));
    };

    std::printf("\n| read from a tool, idle server, %lld anomalies | records | median ms |"
                " p99 ms |\n| --- | ---: | ---: | ---: |\n",
                static_cast<long long>(size));
    auto fetch = [&] {
      return anomalies.fetch(std::uniform_int_distribution<int64_t>(0, size - 1)(random))
          .json.size() > 0 ? std::size_t{1} : std::size_t{0};
    };
    report("fetch by id", fetch, 2000);
    auto indexed = [&] { return anomalies.filter("fid = 500").size(); };
    report("filter `fid = 500` (indexed)", indexed, 200);
    auto scan = [&] { return anomalies.filter("runtime_exclusive > 100000").size(); };
    report("filter `runtime_exclusive > 100000` (scan)", scan, 20);
    auto everything = [&] { return anomalies.all().size(); };
    report("all records (25 MB)", everything, 10);
  }
  fs::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  // --only C S: a single configuration (C clients, S shards); --skip-rss:
  // no long run; --rss-rounds R: copies of the data set in the long run;
  // --reads-only: only the latencies of reads from a tool.
  int rss_rounds = 10;
  int rounds = 3;
  bool skip_rss = false;
  bool reads_only = false;
  std::vector<int> client_counts{1, 4, 16};
  std::vector<int> shard_counts{1, 2, 4};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--skip-rss") == 0) skip_rss = true;
    if (std::strcmp(argv[i], "--reads-only") == 0) reads_only = true;
    if (std::strcmp(argv[i], "--rss-rounds") == 0 && i + 1 < argc) {
      rss_rounds = std::stoi(argv[++i]);
    }
    if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = std::stoi(argv[++i]);
    if (std::strcmp(argv[i], "--only") == 0 && i + 2 < argc) {
      client_counts = {std::stoi(argv[++i])};
      shard_counts = {std::stoi(argv[++i])};
    }
  }

  const Data data = LoadData();
  if (reads_only) {
    RemoteReads(data);
    return 0;
  }
  const double mb = static_cast<double>(data.bytes) / 1e6;
  std::printf("data set: %zu documents, %.1f MB; batches of %zu documents; "
              "each measurement stores the data set %d times\n\n",
              data.docs.size(), mb, kBatch, rounds);

  const double embedded = EmbeddedRate(data, rounds);
  std::printf("embedded storage store_multi, one thread: %.0f docs/s, %.1f MB/s\n\n", embedded,
              embedded * mb / static_cast<double>(data.docs.size()));

  std::printf("| clients | shards | docs/s | MB/s | %% of embedded | server peak RSS MiB |"
              " server CPU s | client CPU s | call median us | call p99 us |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int clients : client_counts) {
    for (int shards : shard_counts) {
      const RunResult r = Ingest(data, clients, shards, rounds, false);
      const double rate = static_cast<double>(r.docs) / r.seconds;
      std::printf("| %d | %d | %.0f | %.1f | %.0f%% | %.0f | %.2f | %.2f | %.1f | %.1f |\n",
                  clients, shards, rate, static_cast<double>(r.bytes) / 1e6 / r.seconds,
                  100 * rate / embedded, r.peak_rss_mib, r.server_cpu_s, r.client_cpu_s,
                  Percentile(r.call_us, 0.5), Percentile(r.call_us, 0.99));
      std::fflush(stdout);
    }
  }

  const auto cost = AsyncCallCost(data, 300);
  std::printf("\nstore_async of one document, bursts of 32 within the window: "
              "median %.1f us, p99 %.1f us (%zu calls)\n",
              Percentile(cost, 0.5), Percentile(cost, 0.99), cost.size());

  RemoteReads(data);

  if (!skip_rss) {
    const RunResult r = Ingest(data, 16, 2, rss_rounds, true);
    std::printf("\n16 clients, 2 shards, data set pushed %d times (%.0f MB): %.0f docs/s, "
                "%.1f MB/s, server peak RSS %.0f MiB\n",
                rss_rounds, static_cast<double>(r.bytes) / 1e6,
                static_cast<double>(r.docs) / r.seconds,
                static_cast<double>(r.bytes) / 1e6 / r.seconds, r.peak_rss_mib);
    std::printf("a tool's fetch of one record meanwhile: median %.1f ms, p99 %.1f ms, max %.1f ms"
                " (%zu fetches)\n",
                Percentile(r.fetch_ms, 0.5), Percentile(r.fetch_ms, 0.99),
                Percentile(r.fetch_ms, 1.0), r.fetch_ms.size());
  }
  return 0;
}
