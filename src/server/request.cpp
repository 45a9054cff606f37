// Reply sending and header field access for server workers.
#include "server/request.hpp"

namespace provdb::server {

void SendReply(zmq::socket_t& push, const Request& request, const nlohmann::json& header,
               std::vector<zmq::message_t> frames) {
  const auto route = static_cast<uint8_t>(request.route);
  zmq::message_t route_frame(&route, 1);
  push.send(route_frame, zmq::send_flags::sndmore);

  zmq::message_t identity(request.identity.data(), request.identity.size());
  push.send(identity, zmq::send_flags::sndmore);

  const std::string text = protocol::DumpHeader(header);
  zmq::message_t head(text.data(), text.size());
  push.send(head, frames.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);

  for (std::size_t i = 0; i < frames.size(); ++i) {
    const bool last = i + 1 == frames.size();
    push.send(frames[i], last ? zmq::send_flags::none : zmq::send_flags::sndmore);
  }
}

void SendError(zmq::socket_t& push, const Request& request, const Error& error) {
  SendReply(push, request, protocol::ErrorHeader(request.id, error.code(), error.what()));
}

void SendDirect(zmq::socket_t& router, const zmq::message_t& identity,
                const nlohmann::json& header) {
  zmq::message_t id_copy(identity.data(), identity.size());
  router.send(id_copy, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  const std::string text = protocol::DumpHeader(header);
  zmq::message_t head(text.data(), text.size());
  router.send(head, zmq::send_flags::dontwait);
}

zmq::socket_t ConnectReplySocket(zmq::context_t& context) {
  zmq::socket_t socket(context, zmq::socket_type::push);
  // Replies must never be dropped: a full pipe blocks the worker instead,
  // which is itself bounded by the queues in front of it.
  socket.set(zmq::sockopt::sndhwm, 0);
  socket.set(zmq::sockopt::linger, -1);
  socket.connect(kReplyEndpoint);
  return socket;
}

void SendWorkerDone(zmq::socket_t& socket) {
  zmq::message_t empty;
  socket.send(empty, zmq::send_flags::none);
}

std::string HeaderString(const nlohmann::json& header, const char* field) {
  auto it = header.find(field);
  if (it == header.end() || !it->is_string()) {
    throw Error(ErrorCode::kProtocol,
                std::string("request header lacks the string field \"") + field + "\"");
  }
  return it->get<std::string>();
}

std::vector<int64_t> HeaderIds(const nlohmann::json& header) {
  auto it = header.find("ids");
  if (it == header.end() || !it->is_array()) {
    throw Error(ErrorCode::kProtocol, "request header lacks the array field \"ids\"");
  }

  std::vector<int64_t> ids;
  ids.reserve(it->size());
  for (const auto& v : *it) {
    if (!v.is_number_integer()) {
      throw Error(ErrorCode::kProtocol, "field \"ids\" holds a value that is not an integer");
    }
    ids.push_back(v.get<int64_t>());
  }
  return ids;
}

}  // namespace provdb::server
