// The wire protocol between provdb clients and servers (docs/protocol.md).
// A request is one ZeroMQ multipart message: a JSON header frame, then one
// frame per document exactly as the client serialized it. A reply has the
// same shape: a JSON header frame (ok, or an error code and message), then
// one frame per record. Shared by the server and the client.
// Pure functions and constants: safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "storage/document.hpp"

namespace provdb::protocol {

// Raised whenever a header field changes meaning or a new operation needs
// something an older peer cannot give. Checked at hello.
inline constexpr int kVersion = 1;

// No single frame may be larger: a document at the storage limit plus room.
// Set as ZMQ_MAXMSGSIZE, so a larger frame drops the connection before it is
// buffered in memory.
inline constexpr std::size_t kMaxFrameBytes = storage::kDefaultMaxDocumentBytes + (1u << 20);
// The sum of the frames of one request; larger requests get an error reply.
inline constexpr std::size_t kMaxRequestBytes = 256u << 20;

// Name of the global database on the wire; shard k is "<k>".
inline constexpr std::string_view kGlobalDatabase = "global";

std::string ShardDatabaseName(int shard);
// Returns the shard index, or -1 for the global database. Throws
// Error(kInvalidArgument) for anything else.
int ParseDatabaseName(std::string_view name);

enum class Op {
  kHello,
  kGoodbye,
  kStop,
  kStatus,
  kPing,  // keep-alive: renews the connection's lease, gets no reply
  kStore,
  kUpdate,
  kErase,
  kCreateCollection,
  kDropCollection,
  kFetch,
  kAll,
  kFilter,
  kCount,
  kSize,
  kLastId,
  kListCollections,
  kQuery,
};

std::string_view OpName(Op op);
std::optional<Op> ParseOp(std::string_view name);
// Writes go to the database's writer queue, in arrival order.
bool IsWrite(Op op);
// Reads go to the reader pool.
bool IsRead(Op op);

// Roles told at hello. Ranks and the parameter server count for autoshutdown.
inline constexpr std::string_view kRoleRank = "rank";
inline constexpr std::string_view kRoleParameterServer = "ps";
inline constexpr std::string_view kRoleTool = "tool";
// The second connection of a client, to the read endpoint told at hello.
inline constexpr std::string_view kRoleReader = "reader";

// The header of an error reply to request `id`.
nlohmann::json ErrorHeader(uint64_t id, ErrorCode code, std::string_view message);
// The header of a successful reply to request `id`, to which results are added.
nlohmann::json OkHeader(uint64_t id);
// Rebuilds the error carried by an error reply header. Unknown codes become
// kProtocol.
Error ErrorFromHeader(const nlohmann::json& header);

// SQLite values as JSON: null, integer, real or string.
nlohmann::json SqlValueToJson(const storage::SqlValue& value);
storage::SqlValue SqlValueFromJson(const nlohmann::json& value);

}  // namespace provdb::protocol

namespace provdb::protocol {

// Serializes a header. Invalid UTF-8 (say, in an error message quoting a
// malformed request) is replaced rather than thrown on.
std::string DumpHeader(const nlohmann::json& header);

}  // namespace provdb::protocol
