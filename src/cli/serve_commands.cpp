// provdb serve, stop and status: running a server instance, stopping every
// instance of a directory, and showing what each instance is doing.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "client/client.hpp"
#include "common/error.hpp"
#include "protocol/address_dir.hpp"
#include "server/server.hpp"

namespace provdb::cli {
namespace {

namespace fs = std::filesystem;

struct ServeArgs {
  std::string dir;
  int shards = 1;
  int instance = -1;
  int instances = -1;
  std::string address = "127.0.0.1";
  int port = 0;
  std::string durability = "fast";
  bool no_autoshutdown = false;
  int reader_threads = 2;
  int queue_mb = 16;
  double client_timeout_s = 10;
};

// Each client holds two TCP connections to its instance; hundreds of ranks
// per instance exceed the usual soft limit of 1024 open files.
void RaiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int RunServe(const ServeArgs& a) {
  server::ServerOptions options;
  options.dir = a.dir;
  options.num_shards = a.shards;
  options.address = a.address;
  options.port = a.port;
  options.durability =
      a.durability == "safe" ? storage::Durability::kSafe : storage::Durability::kFast;
  options.autoshutdown = !a.no_autoshutdown;
  options.reader_threads = static_cast<std::size_t>(a.reader_threads);
  options.queue_bytes = static_cast<std::size_t>(a.queue_mb) << 20;
  options.client_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(a.client_timeout_s * 1000));

  if ((a.instance < 0) != (a.instances < 0)) {
    throw Error(ErrorCode::kInvalidArgument, "give both --instance and --instances, or neither");
  }
  if (a.instance >= 0) {
    options.instance = a.instance;
    options.num_instances = a.instances;
  } else if (!server::InstanceFromEnvironment(options.instance, options.num_instances)) {
    options.instance = 0;
    options.num_instances = 1;
  }

  // Operators read the log on stderr; stdout stays free for scripts.
  auto logger = spdlog::stderr_color_mt("provdb");
  logger->set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S.%e] [provdb {}] [%l] %v", options.instance));
  spdlog::set_default_logger(logger);

  RaiseOpenFileLimit();
  server::Server server(std::move(options));
  server::InstallStopSignals(&server);
  server.Run();
  server::InstallStopSignals(nullptr);
  return 0;
}

client::ClientOptions ToolOptions(double timeout_s) {
  client::ClientOptions options;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  options.connect_timeout = timeout;
  options.request_timeout = timeout;
  return options;
}

int RunStop(const std::string& dir, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  const fs::path map_path = fs::path(dir) / std::string(protocol::kMapFileName);
  if (!fs::exists(map_path)) {
    std::cerr << "provdb stop: no server was started in " << dir << " (no " << map_path.string()
              << ")\n";
    return 0;
  }

  int instances = 0;
  int stopped = 0;
  {
    auto client = client::Client::ConnectTool(dir, ToolOptions(timeout_s));
    instances = client.num_instances();
    stopped = client.stop_servers();
  }

  // An instance is done when it has closed its databases and removed its
  // address file.
  for (int i = 0; i < instances; ++i) {
    const fs::path address = fs::path(dir) / protocol::AddressFileName(i);
    while (fs::exists(address)) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw Error(ErrorCode::kTimeout, "instance " + std::to_string(i) + " acknowledged the "
                                             "stop but " + address.string() +
                                             " is still there after " +
                                             std::to_string(timeout_s) + " s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::cout << "stopped " << stopped << " of " << instances << " instance"
            << (instances == 1 ? "" : "s") << " in " << dir << "\n";
  return 0;
}

std::string Bytes(double bytes) {
  if (bytes >= 1 << 20) return fmt::format("{:.1f} MiB", bytes / (1 << 20));
  if (bytes >= 1 << 10) return fmt::format("{:.1f} KiB", bytes / (1 << 10));
  return fmt::format("{:.0f} B", bytes);
}

void PrintStatus(const nlohmann::json& instances) {
  for (const auto& s : instances) {
    if (!s.value("running", true)) {
      std::cout << fmt::format("instance {} of {}: not running\n", s.at("instance").get<int>(),
                               s.at("instances").get<int>());
      continue;
    }
    const auto& c = s.at("clients");
    const auto& in = s.at("ingest");
    std::cout << fmt::format(
        "instance {} of {} at {} (pid {}): up {:.1f} s{}\n"
        "  clients: {} (ranks {}, parameter server {}, tools {}; ranks seen {}, vanished {})\n"
        "  ingest: {} records, {}; now {:.0f} records/s, {}/s; reader queue {}\n",
        s.at("instance").get<int>(), s.at("instances").get<int>(),
        s.at("endpoint").get<std::string>(), s.at("pid").get<int>(),
        s.at("uptime_s").get<double>(), s.at("stopping").get<bool>() ? ", stopping" : "",
        c.at("total").get<int>(), c.at("rank").get<int>(), c.at("ps").get<int>(),
        c.at("tool").get<int>(), c.at("ranks_seen").get<int>(), c.value("vanished", 0),
        in.at("records").get<uint64_t>(),
        Bytes(in.at("bytes").get<double>()), in.at("records_per_s").get<double>(),
        Bytes(in.at("bytes_per_s").get<double>()), s.at("reader_queue").get<int>());

    for (const auto& db : s.at("databases")) {
      const std::string name = db.at("name").get<std::string>();
      std::string counts;
      for (const auto& [coll, n] : db.at("collections").items()) {
        counts += fmt::format(" {} {}", coll, n.get<int64_t>());
      }
      std::cout << fmt::format("  {:<8}{}; write queue {} requests, {}\n",
                               name == "global" ? "global" : "shard " + name, counts,
                               db.at("queue_requests").get<int>(),
                               Bytes(db.at("queue_bytes").get<double>()));
    }
  }
}

int RunStatus(const std::string& dir, bool json, double timeout_s) {
  // Without a map no instance was ever ready here; waiting for one to write
  // it would only cost the timeout.
  const fs::path map_path = fs::path(dir) / std::string(protocol::kMapFileName);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error(ErrorCode::kNotFound, "directory " + dir + " does not exist; give the --dir " +
                                          "the servers were started with");
  }
  if (!fs::exists(map_path, ec)) {
    throw Error(ErrorCode::kNotFound, "no server was started in " + dir + " (no " +
                                          map_path.string() + "); start one with provdb serve " +
                                          "--dir " + dir);
  }
  auto client = client::Client::ConnectTool(dir, ToolOptions(timeout_s));
  const nlohmann::json status = client.status();
  if (json) {
    std::cout << status.dump(2) << "\n";
  } else {
    PrintStatus(status);
  }
  return 0;
}

}  // namespace

void AddServeCommands(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ServeArgs>();
  auto* serve = app.add_subcommand("serve", "Run one server instance (see docs/server.md)");
  serve->add_option("--dir", args->dir, "Directory of the database and address files")
      ->required();
  serve->add_option("--shards", args->shards, "Total number of anomaly database shards")
      ->check(CLI::PositiveNumber);
  serve->add_option("--instance", args->instance,
                    "Index of this instance (default: from MPI/Slurm, else 0)");
  serve->add_option("--instances", args->instances,
                    "Number of instances (default: from MPI/Slurm, else 1)");
  serve->add_option("--address", args->address,
                    "Interface to listen on; 0.0.0.0 for all (advertises the host name)")
      ->capture_default_str();
  serve->add_option("--port", args->port, "TCP port (default: a free port)");
  serve->add_option("--durability", args->durability, "fast (default) or safe (fsync commits)")
      ->check(CLI::IsMember({"fast", "safe"}));
  serve->add_flag("--no-autoshutdown", args->no_autoshutdown,
                  "Keep running after every rank and the parameter server left");
  serve->add_option("--reader-threads", args->reader_threads, "Threads answering reads")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve->add_option("--queue-mb", args->queue_mb,
                    "Write requests queued per database before backpressure, in MiB")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve->add_option("--client-timeout", args->client_timeout_s,
                    "Seconds of silence after which a client counts as vanished (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->callback([args, &exit_code] { exit_code = RunServe(*args); });

  auto stop_dir = std::make_shared<std::string>();
  auto stop_timeout = std::make_shared<double>(60);
  auto* stop = app.add_subcommand("stop", "Stop every server instance of a directory");
  stop->add_option("--dir", *stop_dir, "Directory the servers were started with")->required();
  stop->add_option("--timeout", *stop_timeout, "Seconds to wait for the instances to finish")
      ->capture_default_str();
  stop->callback([stop_dir, stop_timeout, &exit_code] {
    exit_code = RunStop(*stop_dir, *stop_timeout);
  });

  auto status_dir = std::make_shared<std::string>();
  auto status_json = std::make_shared<bool>(false);
  auto status_timeout = std::make_shared<double>(10);
  auto* status = app.add_subcommand("status", "Show what each server instance is doing");
  status->add_option("--dir", *status_dir, "Directory the servers were started with")
      ->required();
  status->add_flag("--json", *status_json, "Print JSON instead of text");
  status->add_option("--timeout", *status_timeout, "Seconds to wait for each instance")
      ->capture_default_str();
  status->callback([status_dir, status_json, status_timeout, &exit_code] {
    exit_code = RunStatus(*status_dir, *status_json, *status_timeout);
  });
}

}  // namespace provdb::cli
