// A request as the server's IO thread hands it to a worker (a database writer
// or a reader), and the way a worker sends its reply back.
//
// Threads: the IO thread owns the ROUTER sockets, so workers never touch
// them. Each worker owns a PUSH socket connected to the IO thread's inproc
// PULL socket; a reply is [route, client identity, header, record frames...];
// the IO thread drops the route frame and forwards the rest to the ROUTER the
// route names. A worker that exits sends one empty frame, so the IO thread
// knows when all replies are through.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "common/error.hpp"
#include "protocol/protocol.hpp"

namespace provdb::server {

inline constexpr char kReplyEndpoint[] = "inproc://provdb-replies";

// Which ROUTER socket a request came in on: the main one (every request), or
// the read one, which the IO thread keeps reading while writes wait for room
// in a full queue, so that reads are not held up by write backpressure.
enum class Route : uint8_t { kMain = 1, kReads = 2 };

struct Request {
  Route route = Route::kMain;
  zmq::message_t identity;  // the ROUTER routing id of the client
  uint64_t id = 0;
  protocol::Op op = protocol::Op::kHello;
  std::string database;  // "<k>" or "global"
  nlohmann::json header;
  std::vector<zmq::message_t> payload;  // one frame per document
  std::size_t bytes = 0;                // header and payload, for queue accounting
};

// Worker side: sends the reply to `request` to the IO thread on `push`.
void SendReply(zmq::socket_t& push, const Request& request, const nlohmann::json& header,
               std::vector<zmq::message_t> frames = {});
void SendError(zmq::socket_t& push, const Request& request, const Error& error);

// IO thread side: sends [identity, header] straight on a ROUTER socket.
void SendDirect(zmq::socket_t& router, const zmq::message_t& identity,
                const nlohmann::json& header);

// A PUSH socket connected to the IO thread's reply PULL socket.
zmq::socket_t ConnectReplySocket(zmq::context_t& context);

// Tells the IO thread that this worker has sent its last reply.
void SendWorkerDone(zmq::socket_t& socket);

// Accessors of header fields that throw Error(kProtocol) naming the field.
std::string HeaderString(const nlohmann::json& header, const char* field);
std::vector<int64_t> HeaderIds(const nlohmann::json& header);

}  // namespace provdb::server
