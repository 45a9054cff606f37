// Names of operations and databases, and the reply header helpers.
#include "protocol/protocol.hpp"

#include <array>
#include <charconv>
#include <utility>

namespace provdb::protocol {

namespace {

constexpr std::array<std::pair<Op, std::string_view>, 18> kOpNames{{
    {Op::kHello, "hello"},
    {Op::kGoodbye, "goodbye"},
    {Op::kStop, "stop"},
    {Op::kStatus, "status"},
    {Op::kPing, "ping"},
    {Op::kStore, "store"},
    {Op::kUpdate, "update"},
    {Op::kErase, "erase"},
    {Op::kCreateCollection, "create_collection"},
    {Op::kDropCollection, "drop_collection"},
    {Op::kFetch, "fetch"},
    {Op::kAll, "all"},
    {Op::kFilter, "filter"},
    {Op::kCount, "count"},
    {Op::kSize, "size"},
    {Op::kLastId, "last_id"},
    {Op::kListCollections, "list_collections"},
    {Op::kQuery, "query"},
}};

}  // namespace

std::string ShardDatabaseName(int shard) { return std::to_string(shard); }

int ParseDatabaseName(std::string_view name) {
  if (name == kGlobalDatabase) return -1;

  int shard = -1;
  const char* end = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(name.data(), end, shard);
  if (name.empty() || ec != std::errc() || ptr != end || shard < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "bad database name '" + std::string(name) +
                    "': expected a shard index such as \"0\" or \"global\"");
  }
  return shard;
}

std::string_view OpName(Op op) {
  for (const auto& [o, name] : kOpNames) {
    if (o == op) return name;
  }
  return "unknown";
}

std::optional<Op> ParseOp(std::string_view name) {
  for (const auto& [op, n] : kOpNames) {
    if (n == name) return op;
  }
  return std::nullopt;
}

bool IsWrite(Op op) {
  switch (op) {
    case Op::kStore:
    case Op::kUpdate:
    case Op::kErase:
    case Op::kCreateCollection:
    case Op::kDropCollection:
      return true;
    default:
      return false;
  }
}

bool IsRead(Op op) {
  switch (op) {
    case Op::kFetch:
    case Op::kAll:
    case Op::kFilter:
    case Op::kCount:
    case Op::kSize:
    case Op::kLastId:
    case Op::kListCollections:
    case Op::kQuery:
      return true;
    default:
      return false;
  }
}

nlohmann::json ErrorHeader(uint64_t id, ErrorCode code, std::string_view message) {
  return nlohmann::json{{"id", id},
                        {"ok", false},
                        {"code", static_cast<int>(code)},
                        {"error", std::string(message)}};
}

nlohmann::json OkHeader(uint64_t id) { return nlohmann::json{{"id", id}, {"ok", true}}; }

Error ErrorFromHeader(const nlohmann::json& header) {
  int code = header.value("code", static_cast<int>(ErrorCode::kProtocol));
  std::string message = header.value("error", std::string("error reply without a message"));
  if (code < static_cast<int>(ErrorCode::kInvalidArgument) ||
      code > static_cast<int>(ErrorCode::kInternal)) {
    return Error(ErrorCode::kProtocol,
                 "server replied with unknown error code " + std::to_string(code) + ": " +
                     message);
  }
  return Error(static_cast<ErrorCode>(code), message);
}

nlohmann::json SqlValueToJson(const storage::SqlValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return *i;
  if (const auto* d = std::get_if<double>(&value)) return *d;
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  return nullptr;
}

storage::SqlValue SqlValueFromJson(const nlohmann::json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) return value.get<std::string>();
  return std::monostate{};
}

}  // namespace provdb::protocol

namespace provdb::protocol {

std::string DumpHeader(const nlohmann::json& header) {
  return header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace provdb::protocol
