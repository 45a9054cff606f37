// Failures a client must report rather than hang on, and messages a server
// must answer rather than crash on.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "client/client.hpp"
#include "protocol/address_dir.hpp"
#include "protocol/protocol.hpp"
#include "server_process.hpp"

namespace provdb {
namespace {

using client::Client;
using testing::ServerProcess;
using testing::TempDir;

client::ClientOptions ShortTimeouts() {
  client::ClientOptions options;
  options.connect_timeout = std::chrono::milliseconds(300);
  options.request_timeout = std::chrono::milliseconds(300);
  return options;
}

template <typename F>
Error Catch(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error was thrown";
  return Error(ErrorCode::kInternal, "none");
}

TEST(ClientErrors, NoServerInTheDirectory) {
  TempDir dir;
  const Error e = Catch([&] { Client::ConnectRank(dir.path(), 0, ShortTimeouts()); });
  EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  EXPECT_NE(std::string(e.what()).find("provider.map"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(dir.path().string()), std::string::npos) << e.what();
}

TEST(ClientErrors, AddressFileOfAServerThatIsGone) {
  TempDir dir;
  // A port that was free a moment ago: nobody answers there.
  std::string endpoint;
  {
    zmq::context_t context;
    zmq::socket_t probe(context, zmq::socket_type::router);
    probe.bind("tcp://127.0.0.1:*");
    endpoint = probe.get(zmq::sockopt::last_endpoint);
  }
  protocol::WriteFileAtomically(dir.path() / "provider.map", "0 0\nglobal 0\n");
  protocol::WriteFileAtomically(dir.path() / protocol::AddressFileName(0), endpoint + "\n");

  // The port refuses connections, so the client gives up at once.
  const Error e = Catch([&] { Client::ConnectRank(dir.path(), 3, ShortTimeouts()); });
  EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  EXPECT_NE(std::string(e.what()).find(endpoint), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("not running"), std::string::npos) << e.what();
}

TEST(ClientErrors, RequestTimeoutNamesAddressAndRequest) {
  TempDir dir;
  // A stand-in server that answers hello and nothing else.
  zmq::context_t context;
  zmq::socket_t fake(context, zmq::socket_type::router);
  fake.bind("tcp://127.0.0.1:*");
  const std::string endpoint = fake.get(zmq::sockopt::last_endpoint);
  std::atomic<bool> done{false};
  std::thread server([&] {
    while (!done) {
      zmq::pollitem_t item{fake.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(fake, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
        continue;
      }
      auto header = nlohmann::json::parse(frames[1].to_string_view());
      if (header["op"] != "hello") continue;
      const std::string reply = protocol::OkHeader(header["id"].get<uint64_t>()).dump();
      std::vector<zmq::message_t> out;
      out.emplace_back(frames[0].data(), frames[0].size());
      out.emplace_back(reply.data(), reply.size());
      zmq::send_multipart(fake, out);
    }
  });
  protocol::WriteFileAtomically(dir.path() / "provider.map", "0 0\nglobal 0\n");
  protocol::WriteFileAtomically(dir.path() / protocol::AddressFileName(0), endpoint + "\n");

  {
    Client client = Client::ConnectRank(dir.path(), 0, ShortTimeouts());
    auto anomalies = client.database().collection("anomalies");
    const Error e = Catch([&] { anomalies.store(R"({"fid":1})"); });
    EXPECT_EQ(e.code(), ErrorCode::kTimeout);
    EXPECT_NE(std::string(e.what()).find(endpoint), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("store of 1 documents into shard 0"), std::string::npos)
        << e.what();

    auto pending = anomalies.store_async(R"({"fid":2})");
    EXPECT_EQ(Catch([&] { pending.wait(); }).code(), ErrorCode::kTimeout);
  }
  done = true;
  server.join();
}

TEST(ClientErrors, ServerKilledWithRequestsInFlight) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--shards", "1"});
  client::ClientOptions options;
  options.request_timeout = std::chrono::minutes(10);  // the loss must be seen, not timed out
  Client client = Client::ConnectRank(dir.path(), 0, options);
  auto anomalies = client.database().collection("anomalies");
  anomalies.store(R"({"fid":1})");

  // A frozen server takes the request but cannot answer it; then it dies.
  // SIGSTOP takes effect asynchronously: wait until the process is stopped.
  server.Signal(SIGSTOP);
  while (true) {
    std::ifstream stat("/proc/" + std::to_string(server.pid()) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    if (text.substr(text.rfind(')') + 2, 1) == "T") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto pending = anomalies.store_async(R"({"fid":2})");
  server.Signal(SIGKILL);
  const Error e = Catch([&] { pending.wait(); });
  EXPECT_EQ(e.code(), ErrorCode::kUnavailable) << e.what();
  EXPECT_NE(std::string(e.what()).find("lost the connection"), std::string::npos) << e.what();
  server.WaitExit();
}

// Raw bytes to a TCP port, then the connection closed.
void SendJunk(int port, const std::string& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  [[maybe_unused]] auto sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::close(fd);
}

// Sends `frames` on a DEALER and returns the reply header.
nlohmann::json Exchange(zmq::socket_t& dealer, const std::vector<std::string>& frames) {
  std::vector<zmq::message_t> out;
  for (const auto& f : frames) out.emplace_back(f.data(), f.size());
  zmq::send_multipart(dealer, out);
  std::vector<zmq::message_t> reply;
  if (!zmq::recv_multipart(dealer, std::back_inserter(reply))) return nullptr;
  return nlohmann::json::parse(reply.at(0).to_string_view());
}

int Code(const nlohmann::json& reply) { return reply.value("code", 0); }

TEST(ServerRobustness, GarbageOnThePortDoesNotCrashTheServer) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--shards", "1"});
  ASSERT_TRUE(testing::WaitForFile(dir.path() / protocol::AddressFileName(0)));
  const std::string endpoint = protocol::ParseAddress(
      protocol::WaitForFile(dir.path(), protocol::AddressFileName(0),
                            std::chrono::milliseconds(1000), "address"),
      "address file");
  const int port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));

  // Raw TCP junk: random bytes, then a ZMTP-like greeting gone wrong.
  std::mt19937 random(42);
  std::string junk(65536, '\0');
  for (auto& c : junk) c = static_cast<char>(random());
  SendJunk(port, junk);
  SendJunk(port, std::string("\xff\0\0\0\0\0\0\0\x01\x7f", 10) + std::string(4096, 'A'));
  SendJunk(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");

  // Well-formed ZeroMQ, malformed provdb.
  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::rcvtimeo, 10'000);
  dealer.connect(endpoint);
  const int protocol_error = static_cast<int>(ErrorCode::kProtocol);
  EXPECT_EQ(Code(Exchange(dealer, {"not json at all"})), protocol_error);
  EXPECT_EQ(Code(Exchange(dealer, {""})), protocol_error);
  EXPECT_EQ(Code(Exchange(dealer, {"[1,2,3]", "x"})), protocol_error);
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":5})"})), protocol_error);
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":-1,"op":"hello"})"})), protocol_error);
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":6,"op":"store","db":"0","coll":"anomalies"})", "{}"})),
            protocol_error);  // no hello yet
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":7,"op":"hello","version":99,"role":"tool"})"})),
            protocol_error);
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":8,"op":"hello","version":1,"role":"cat"})"})),
            protocol_error);

  auto hello = Exchange(dealer, {R"({"id":9,"op":"hello","version":1,"role":"tool"})"});
  ASSERT_TRUE(hello.value("ok", false)) << hello;
  EXPECT_EQ(hello["id"], 9);
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":10,"op":"launch"})"})), protocol_error);
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":11,"op":"store","db":"7","coll":"anomalies"})", "{}"})),
            static_cast<int>(ErrorCode::kNotFound));
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":12,"op":"store","db":"0","coll":"anomalies"})",
                                   "{}", "not json"})),
            static_cast<int>(ErrorCode::kBadDocument));
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":13,"op":"fetch","db":"0","coll":"anomalies",
                                      "ids":"x"})"})),
            protocol_error);
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":14,"op":"store","db":"0"})", "{}"})),
            protocol_error);
  EXPECT_EQ(Code(Exchange(dealer, {R"({"id":15,"op":"filter","db":"0","coll":"anomalies",
                                      "expr":"fid = 1","rows":"many"})"})),
            protocol_error);

  // A frame over the limit drops that connection only.
  {
    zmq::socket_t oversized(context, zmq::socket_type::dealer);
    oversized.set(zmq::sockopt::linger, 1000);
    oversized.connect(endpoint);
    const std::string frame(18u << 20, 'x');
    oversized.send(zmq::buffer(frame), zmq::send_flags::none);
  }
  EXPECT_TRUE(Exchange(dealer, {R"({"id":16,"op":"size","db":"0","coll":"anomalies"})"})
                  .value("ok", false));

  // The read endpoint told at hello takes reads only, after its own hello.
  const std::string read_endpoint = hello.value("read_endpoint", std::string());
  ASSERT_FALSE(read_endpoint.empty()) << hello;
  zmq::socket_t reader(context, zmq::socket_type::dealer);
  reader.set(zmq::sockopt::rcvtimeo, 10'000);
  reader.connect(read_endpoint);
  EXPECT_EQ(Code(Exchange(reader, {R"({"id":1,"op":"size","db":"0","coll":"anomalies"})"})),
            protocol_error);  // no hello yet
  EXPECT_EQ(Code(Exchange(reader, {R"({"id":2,"op":"hello","version":1,"role":"rank",
                                      "rank":0})"})),
            protocol_error);  // only readers say hello here
  EXPECT_TRUE(Exchange(reader, {R"({"id":3,"op":"hello","version":1,"role":"reader"})"})
                  .value("ok", false));
  EXPECT_EQ(Exchange(reader, {R"({"id":4,"op":"size","db":"0","coll":"anomalies"})"})["size"],
            0);
  EXPECT_EQ(Code(Exchange(reader, {R"({"id":5,"op":"store","db":"0","coll":"anomalies"})",
                                   "{}"})),
            protocol_error);
  EXPECT_EQ(Code(Exchange(reader, {R"({"id":6,"op":"stop"})"})), protocol_error);

  // Still serving: a store through the client works, and the bad batch above
  // stored nothing.
  {
    Client client = Client::ConnectTool(dir.path(), ShortTimeouts());
    auto anomalies = client.shard(0).collection("anomalies");
    EXPECT_EQ(anomalies.size(), 0);
    const int64_t id = anomalies.store(R"({"fid":500})");
    EXPECT_EQ(anomalies.last_record_id(), id);
  }
  server.Signal(SIGTERM);
  EXPECT_EQ(server.WaitExit(), 0) << server.LogText();
}

}  // namespace
}  // namespace provdb
