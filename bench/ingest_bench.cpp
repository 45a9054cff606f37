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

// --- the embedded reference ---

double EmbeddedRate(const Data& data) {
  const fs::path dir = ScratchDir("embedded");
  double seconds = 0;
  {
    provdb::storage::Database db(dir / provdb::storage::ShardFileName(0));
    for (const char* name : {"anomalies", "normalexecs", "metadata"}) {
      db.create_collection(name, true);
    }
    const auto start = Clock::now();
    for (std::size_t i = 0; i < data.docs.size(); i += kBatch) {
      const std::size_t end = std::min(data.docs.size(), i + kBatch);
      // Batches never mix collections here: split where the collection changes.
      std::size_t j = i;
      while (j < end) {
        std::size_t k = j;
        std::vector<std::string_view> views;
        while (k < end && data.docs[k].first == data.docs[j].first) {
          views.push_back(data.docs[k].second);
          ++k;
        }
        db.store_multi(data.docs[j].first, views);
        j = k;
      }
    }
    seconds = Seconds(Clock::now() - start);
  }
  fs::remove_all(dir);
  return static_cast<double>(data.docs.size()) / seconds;
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
  std::vector<double> call_us;  // caller's time in each asynchronous store
};

// `clients` threads push `rounds` copies of the data set, split round-robin
// between them, in asynchronous batches of kBatch.
RunResult Ingest(const Data& data, int clients, int shards, int rounds) {
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

    start.arrive_and_wait();
    const auto t0 = Clock::now();
    for (auto& t : threads) t.join();
    result.seconds = Seconds(Clock::now() - t0);
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

}  // namespace

int main(int argc, char** argv) {
  int rss_rounds = 10;
  bool skip_rss = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--skip-rss") == 0) skip_rss = true;
    if (std::strcmp(argv[i], "--rss-rounds") == 0 && i + 1 < argc) rss_rounds = std::stoi(argv[++i]);
  }

  const Data data = LoadData();
  const double mb = static_cast<double>(data.bytes) / 1e6;
  std::printf("data set: %zu documents, %.1f MB; batches of %zu documents\n\n", data.docs.size(),
              mb, kBatch);

  const double embedded = EmbeddedRate(data);
  std::printf("embedded storage store_multi: %.0f docs/s, %.1f MB/s\n\n", embedded,
              embedded * mb / static_cast<double>(data.docs.size()));

  std::printf("| clients | shards | docs/s | MB/s | %% of embedded | server peak RSS MiB |"
              " call median us | call p99 us |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int clients : {1, 4, 16}) {
    for (int shards : {1, 2, 4}) {
      const RunResult r = Ingest(data, clients, shards, 1);
      const double rate = static_cast<double>(r.docs) / r.seconds;
      std::printf("| %d | %d | %.0f | %.1f | %.0f%% | %.0f | %.1f | %.1f |\n", clients, shards,
                  rate, static_cast<double>(r.bytes) / 1e6 / r.seconds, 100 * rate / embedded,
                  r.peak_rss_mib, Percentile(r.call_us, 0.5), Percentile(r.call_us, 0.99));
      std::fflush(stdout);
    }
  }

  const auto cost = AsyncCallCost(data, 300);
  std::printf("\nstore_async of one document, bursts of 32 within the window: "
              "median %.1f us, p99 %.1f us (%zu calls)\n",
              Percentile(cost, 0.5), Percentile(cost, 0.99), cost.size());

  if (!skip_rss) {
    const RunResult r = Ingest(data, 16, 2, rss_rounds);
    std::printf("\n16 clients, 2 shards, data set pushed %d times (%.0f MB): %.0f docs/s, "
                "%.1f MB/s, server peak RSS %.0f MiB\n",
                rss_rounds, static_cast<double>(r.bytes) / 1e6,
                static_cast<double>(r.docs) / r.seconds,
                static_cast<double>(r.bytes) / 1e6 / r.seconds, r.peak_rss_mib);
  }
  return 0;
}
