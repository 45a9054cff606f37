// A request as the server's IO thread hands it to a worker (a database writer
// or a reader), and the way a worker sends its reply back.
//
// Threads: the IO thread owns the ROUTER socket, so workers never touch it.
// Each worker owns a PUSH socket connected to the IO thread's inproc PULL
// socket; a reply is [client identity, header, record frames...], which the
// IO thread forwards to the ROUTER unchanged. A worker that exits sends one
// empty frame, so the IO thread knows when all replies are through.
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

struct Request {
  zmq::message_t identity;  // the ROUTER routing id of the client
  uint64_t id = 0;
  protocol::Op op = protocol::Op::kHello;
  std::string database;  // "<k>" or "global"
  nlohmann::json header;
  std::vector<zmq::message_t> payload;  // one frame per document
  std::size_t bytes = 0;                // header and payload, for queue accounting
};

// Sends [identity, header, frames...] on `socket` (a worker's PUSH or the
// ROUTER itself). Blocks only when the inproc pipe is full.
void SendReply(zmq::socket_t& socket, const zmq::message_t& identity,
               const nlohmann::json& header, std::vector<zmq::message_t> frames = {});

void SendError(zmq::socket_t& socket, const zmq::message_t& identity, uint64_t id,
               const Error& error);

// A PUSH socket connected to the IO thread's reply PULL socket.
zmq::socket_t ConnectReplySocket(zmq::context_t& context);

// Tells the IO thread that this worker has sent its last reply.
void SendWorkerDone(zmq::socket_t& socket);

// Accessors of header fields that throw Error(kProtocol) naming the field.
std::string HeaderString(const nlohmann::json& header, const char* field);
std::vector<int64_t> HeaderIds(const nlohmann::json& header);

}  // namespace provdb::server
