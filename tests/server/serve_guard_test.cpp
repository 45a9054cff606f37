// What `provdb serve` refuses before it touches a directory, and how quickly
// tools give up on servers that are not there: each test runs real servers
// on loopback in a temporary directory.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <zmq.hpp>

#include "protocol/address_dir.hpp"
#include "server_process.hpp"

namespace provdb {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::RunProvdb;
using testing::ServerProcess;
using testing::TempDir;

// Waits until the server's log says it is ready; false if it exited first.
bool WaitReady(ServerProcess& server) {
  while (server.LogText().find("ready at") == std::string::npos) {
    if (server.WaitExit(std::chrono::seconds(0))) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ServeGuard, SecondInstanceOnTheSameDirectoryIsRefused) {
  TempDir dir;
  ServerProcess first(dir.path(), {"--shards", "2", "--no-autoshutdown"});
  ASSERT_TRUE(WaitReady(first)) << first.LogText();
  const fs::path address_file = dir.path() / protocol::AddressFileName(0);
  const std::string address = ReadFile(address_file);

  std::string output;
  EXPECT_NE(RunProvdb({"serve", "--dir", dir.path().string(), "--shards", "2"}, output), 0);
  EXPECT_TRUE(Contains(output, "already served")) << output;
  EXPECT_TRUE(Contains(output, "pid " + std::to_string(first.pid()))) << output;
  EXPECT_TRUE(Contains(output, dir.path().string())) << output;

  // The first instance keeps its address file and still answers.
  EXPECT_EQ(ReadFile(address_file), address);
  EXPECT_EQ(RunProvdb({"status", "--dir", dir.path().string()}), 0);

  // The kernel drops the lock of a killed instance: the directory can be
  // served again at once.
  first.Signal(SIGKILL);
  ASSERT_TRUE(first.WaitExit());
  ServerProcess second(dir.path(), {"--shards", "2", "--no-autoshutdown"});
  ASSERT_TRUE(WaitReady(second)) << second.LogText();
  EXPECT_EQ(RunProvdb({"stop", "--dir", dir.path().string()}), 0);
  EXPECT_EQ(second.WaitExit(), 0);
}

TEST(ServeGuard, ShardCountOfAnEarlierRunIsKept) {
  TempDir dir;
  const std::string d = dir.path().string();
  {
    ServerProcess first(dir.path(), {"--shards", "4", "--no-autoshutdown"});
    ASSERT_TRUE(WaitReady(first)) << first.LogText();
    EXPECT_EQ(RunProvdb({"stop", "--dir", d}), 0);
    EXPECT_EQ(first.WaitExit(), 0);
  }

  auto refused = [&](const std::string& shards) {
    std::string output;
    EXPECT_NE(RunProvdb({"serve", "--dir", d, "--shards", shards}, output), 0);
    EXPECT_TRUE(Contains(output, d + " holds a run with 4 shards")) << output;
    EXPECT_TRUE(Contains(output, "--shards 4")) << output;
    EXPECT_FALSE(fs::exists(dir.path() / "provdb.4.sqlite"));
  };
  refused("2");
  refused("8");

  // The shard files alone tell the count as well.
  fs::remove(dir.path() / std::string(protocol::kMapFileName));
  refused("2");
  refused("8");

  ServerProcess again(dir.path(), {"--shards", "4", "--no-autoshutdown"});
  ASSERT_TRUE(WaitReady(again)) << again.LogText();
  EXPECT_EQ(RunProvdb({"stop", "--dir", d}), 0);
  EXPECT_EQ(again.WaitExit(), 0);
}

TEST(ServeGuard, BadOrTakenPortIsRefusedBeforeAnyFileIsCreated) {
  TempDir dir;
  const fs::path run = dir.path() / "run";
  for (const std::string port : {"99999", "-1", "65536"}) {
    std::string output;
    EXPECT_NE(RunProvdb({"serve", "--dir", run.string(), "--port=" + port}, output), 0);
    EXPECT_TRUE(Contains(output, "--port " + port + " is not a TCP port")) << output;
    EXPECT_FALSE(fs::exists(run));
  }

  zmq::context_t context;
  zmq::socket_t holder(context, zmq::socket_type::router);
  holder.bind("tcp://127.0.0.1:*");
  const std::string endpoint = holder.get(zmq::sockopt::last_endpoint);
  const std::string port = endpoint.substr(endpoint.rfind(':') + 1);
  std::string output;
  EXPECT_NE(RunProvdb({"serve", "--dir", run.string(), "--port", port}, output), 0);
  EXPECT_TRUE(Contains(output, "port " + port + " is taken")) << output;
  EXPECT_FALSE(fs::exists(run));
}

TEST(ServeGuard, ToolsGiveUpAtOnceOnAKilledOrAbsentServer) {
  TempDir dir;
  const std::string d = dir.path().string();
  ServerProcess server(dir.path(), {"--no-autoshutdown"});
  ASSERT_TRUE(WaitReady(server)) << server.LogText();
  server.Signal(SIGKILL);
  ASSERT_TRUE(server.WaitExit());
  const std::string stale = (dir.path() / protocol::AddressFileName(0)).string();
  ASSERT_TRUE(fs::exists(stale));

  // Well under the 10 s and 60 s timeouts, which a refused port must not cost.
  const auto limit = std::chrono::seconds(5);
  for (const std::string command : {"status", "stop"}) {
    const auto start = std::chrono::steady_clock::now();
    std::string output;
    EXPECT_NE(RunProvdb({command, "--dir", d}, output), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - start, limit) << command;
    EXPECT_TRUE(Contains(output, "not running")) << output;
    EXPECT_TRUE(Contains(output, "remove the stale " + stale)) << output;
  }

  for (const std::string& missing : {d + "/never-served", d + "/absent/dir"}) {
    if (missing.ends_with("never-served")) fs::create_directory(missing);
    const auto start = std::chrono::steady_clock::now();
    std::string output;
    EXPECT_NE(RunProvdb({"status", "--dir", missing}, output), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - start, limit) << missing;
    EXPECT_TRUE(Contains(output, missing)) << output;
  }
}

}  // namespace
}  // namespace provdb
