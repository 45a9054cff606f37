// Read operations: each turns header fields into one storage call and its
// result into a reply header and record frames.
#include "server/operations.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace provdb::server {

using protocol::Op;

namespace {

zmq::message_t Frame(std::string text) {
  // The record text moves into a heap string that ZeroMQ frees once sent.
  auto* owned = new std::string(std::move(text));
  return zmq::message_t(
      owned->data(), owned->size(),
      [](void*, void* hint) { delete static_cast<std::string*>(hint); }, owned);
}

// The limits a client asked for, never above the database's own: the reader
// threads are shared by every client, so one client must not be able to
// hold them longer than the server allows.
storage::QueryLimits Limits(const storage::Database& db, const nlohmann::json& header) {
  const storage::Options& options = db.options();
  int64_t time_ms = header.value("time_ms", int64_t{0});
  int64_t rows = header.value("rows", int64_t{0});

  storage::QueryLimits limits;
  limits.time_limit = options.query_time_limit;
  if (time_ms > 0 && time_ms < options.query_time_limit.count()) {
    limits.time_limit = std::chrono::milliseconds(time_ms);
  }
  limits.row_limit = options.query_row_limit;
  if (rows > 0 && std::size_t(rows) < options.query_row_limit) limits.row_limit = rows;
  return limits;
}

// Records as frames, their ids in the header.
void AddRecords(std::vector<storage::Record> records, nlohmann::json& header,
                std::vector<zmq::message_t>& frames) {
  nlohmann::json ids = nlohmann::json::array();
  frames.reserve(records.size());
  for (auto& record : records) {
    ids.push_back(record.id);
    frames.push_back(Frame(std::move(record.json)));
  }
  header["ids"] = std::move(ids);
}

void Execute(storage::Database& db, Request& request, nlohmann::json& header,
             std::vector<zmq::message_t>& frames) {
  switch (request.op) {
    case Op::kFetch: {
      const std::string collection = HeaderString(request.header, "coll");
      auto records = db.fetch_multi(collection, HeaderIds(request.header));
      // One frame per requested id; an empty frame stands for a missing
      // record, since a stored record is never empty.
      for (auto& record : records) {
        frames.push_back(record ? Frame(std::move(record->json)) : zmq::message_t());
      }
      return;
    }
    case Op::kAll:
      AddRecords(db.all(HeaderString(request.header, "coll")), header, frames);
      return;
    case Op::kFilter:
      AddRecords(db.filter(HeaderString(request.header, "coll"),
                           HeaderString(request.header, "expr"), Limits(db, request.header)),
                 header, frames);
      return;
    case Op::kCount:
      header["count"] = db.count(HeaderString(request.header, "coll"),
                                 HeaderString(request.header, "expr"), Limits(db, request.header));
      return;
    case Op::kSize:
      header["size"] = db.size(HeaderString(request.header, "coll"));
      return;
    case Op::kLastId: {
      auto last = db.last_record_id(HeaderString(request.header, "coll"));
      header["last_id"] = last ? nlohmann::json(*last) : nlohmann::json(nullptr);
      return;
    }
    case Op::kListCollections:
      header["collections"] = db.list_collections();
      return;
    case Op::kQuery: {
      auto result = db.query(HeaderString(request.header, "sql"), Limits(db, request.header));
      nlohmann::json rows = nlohmann::json::array();
      for (const auto& row : result.rows) {
        nlohmann::json values = nlohmann::json::array();
        for (const auto& value : row) values.push_back(protocol::SqlValueToJson(value));
        rows.push_back(std::move(values));
      }
      header["columns"] = std::move(result.columns);
      header["rows"] = std::move(rows);
      return;
    }
    default:
      throw Error(ErrorCode::kInternal, "reader got a request that is not a read");
  }
}

}  // namespace

void ExecuteRead(storage::Database& db, Request& request, zmq::socket_t& replies) {
  try {
    nlohmann::json header = protocol::OkHeader(request.id);
    std::vector<zmq::message_t> frames;
    Execute(db, request, header, frames);
    SendReply(replies, request, header, std::move(frames));
  } catch (const Error& e) {
    SendError(replies, request, e);
  } catch (const nlohmann::json::exception& e) {
    SendError(replies, request,
              Error(ErrorCode::kProtocol, std::string("malformed request header: ") + e.what()));
  } catch (const std::exception& e) {
    SendError(replies, request,
              Error(ErrorCode::kInternal,
                    std::string(protocol::OpName(request.op)) + " failed: " + e.what()));
  }
}

}  // namespace provdb::server
