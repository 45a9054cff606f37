// Client leases: a rank that is killed, or whose node hangs, never says
// goodbye; the server drops it once its lease runs out, logs it, and shuts
// down by itself with every acknowledged record in the files. A live client
// that is merely idle keeps its lease, and a client that was dropped is told
// to connect anew.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "client/client.hpp"
#include "server_process.hpp"
#include "storage/database.hpp"

namespace provdb {
namespace {

namespace fs = std::filesystem;
using client::Client;
using testing::ReadFile;
using testing::ServerProcess;
using testing::TempDir;

// Waits until `text` appears in the file at `path`; false after `timeout`.
bool WaitForText(const fs::path& path, const std::string& text,
                 std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (ReadFile(path).find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// A lease_rank process (tests/server/lease_rank.cpp), killed and reaped when
// the test is done with it.
class RankProcess {
 public:
  RankProcess(const TempDir& dir, int rank, int records)
      : log_(dir.path() / ("rank." + std::to_string(rank) + ".log")) {
    pid_ = testing::StartProcess(LEASE_RANK_BINARY,
                                 {dir.path().string(), std::to_string(rank),
                                  std::to_string(records)},
                                 log_);
  }
  ~RankProcess() { Kill(); }
  RankProcess(const RankProcess&) = delete;
  RankProcess& operator=(const RankProcess&) = delete;

  // The records it reported as acknowledged, once it has; -1 if it has not
  // within the bound.
  int WaitStored() const {
    if (!WaitForText(log_, "stored ")) return -1;
    const std::string text = ReadFile(log_);
    return std::stoi(text.substr(text.find("stored ") + 7));
  }
  void Signal(int signo) const { ::kill(pid_, signo); }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::string LogText() const { return ReadFile(log_); }

 private:
  fs::path log_;
  int pid_ = -1;
};

int64_t StoredAnomalies(const fs::path& file) {
  storage::Options read_only;
  read_only.read_only = true;
  read_only.create = false;
  return storage::Database(file, read_only).size("anomalies");
}

TEST(Leases, VanishedRanksAreDroppedAndTheServerShutsDown) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--shards", "2", "--client-timeout", "1"});

  RankProcess killed(dir, 0, 300);
  RankProcess hung(dir, 1, 200);
  const int stored_killed = killed.WaitStored();
  const int stored_hung = hung.WaitStored();
  ASSERT_EQ(stored_killed, 300) << killed.LogText();
  ASSERT_EQ(stored_hung, 200) << hung.LogText();

  // A killed process: the kernel closes its connections. A stopped one
  // stands for a hung node: its connections stay open, it just goes silent.
  killed.Kill();
  hung.Signal(SIGSTOP);

  const auto exit_code = server.WaitExit(std::chrono::seconds(30));
  hung.Kill();
  ASSERT_EQ(exit_code, 0) << server.LogText();

  const std::string log = server.LogText();
  EXPECT_NE(log.find("rank 0 vanished"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1 vanished"), std::string::npos) << log;
  EXPECT_NE(log.find("2 of them vanished"), std::string::npos) << log;

  EXPECT_EQ(StoredAnomalies(dir.path() / storage::ShardFileName(0)), stored_killed);
  EXPECT_EQ(StoredAnomalies(dir.path() / storage::ShardFileName(1)), stored_hung);
}

TEST(Leases, IdleClientKeepsItsLease) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--shards", "1", "--client-timeout", "1.5"});

  client::ClientOptions options;
  options.heartbeat_interval = std::chrono::milliseconds(200);
  Client rank = Client::ConnectRank(dir.path(), 0, options);
  auto anomalies = rank.database().collection("anomalies");
  anomalies.store(R"({"fid":1})");

  // Idle for more than three client timeouts.
  std::this_thread::sleep_for(std::chrono::seconds(5));

  anomalies.store(R"({"fid":2})");
  EXPECT_EQ(anomalies.size(), 2);
  {
    Client tool = Client::ConnectTool(dir.path(), options);
    const auto status = tool.status().at(0);
    EXPECT_EQ(status.at("clients").at("rank"), 1) << status;
    EXPECT_EQ(status.at("clients").at("vanished"), 0) << status;
  }
  EXPECT_EQ(server.LogText().find("vanished"), std::string::npos) << server.LogText();

  rank.disconnect();
  ASSERT_EQ(server.WaitExit(std::chrono::seconds(30)), 0) << server.LogText();
  EXPECT_NE(server.LogText().find("every rank and the parameter server left"),
            std::string::npos)
      << server.LogText();
}

TEST(Leases, DroppedClientIsToldToConnectAnew) {
  TempDir dir;
  ServerProcess server(dir.path(),
                       {"--shards", "1", "--client-timeout", "1", "--no-autoshutdown"});

  client::ClientOptions silent;
  silent.heartbeat_interval = std::chrono::milliseconds(0);
  Client dropped = Client::ConnectRank(dir.path(), 0, silent);
  auto anomalies = dropped.database().collection("anomalies");
  anomalies.store(R"({"fid":1})");
  ASSERT_TRUE(WaitForText(server.log(), "rank 0 vanished", std::chrono::seconds(30)))
      << server.LogText();

  try {
    anomalies.store(R"({"fid":2})");
    ADD_FAILURE() << "a dropped client could still store";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kProtocol) << e.what();
    EXPECT_NE(std::string(e.what()).find("connect anew"), std::string::npos) << e.what();
  }

  // Connecting anew works, and the record stored before the drop is there.
  Client again = Client::ConnectRank(dir.path(), 0);
  auto fresh = again.database().collection("anomalies");
  fresh.store(R"({"fid":3})");
  EXPECT_EQ(fresh.size(), 2);
  {
    Client tool = Client::ConnectTool(dir.path());
    EXPECT_EQ(tool.status().at(0).at("clients").at("vanished"), 1);
  }

  server.Signal(SIGTERM);
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(30)), 0) << server.LogText();
}

}  // namespace
}  // namespace provdb
