// The address directory format and the names used on the wire.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "protocol/address_dir.hpp"
#include "protocol/protocol.hpp"
#include "server_process.hpp"

namespace provdb::protocol {
namespace {

TEST(ShardMap, ConsecutiveBlocksWithTheRemainderFirst) {
  const ShardMap map = ShardMap::Build(5, 2);
  EXPECT_EQ(map.shard_instance, (std::vector<int>{0, 0, 0, 1, 1}));
  EXPECT_EQ(map.global_instance, 0);
  EXPECT_EQ(map.num_instances(), 2);
  EXPECT_EQ(map.shards_of(1), (std::vector<int>{3, 4}));
}

TEST(ShardMap, FormatParsesBack) {
  const ShardMap map = ShardMap::Build(4, 2);
  EXPECT_EQ(map.Format(), "0 0\n1 0\n2 1\n3 1\nglobal 0\n");
  const ShardMap back = ShardMap::Parse(map.Format(), "test");
  EXPECT_EQ(back.shard_instance, map.shard_instance);
  EXPECT_EQ(back.global_instance, 0);
}

TEST(ShardMap, RefusesBrokenFiles) {
  EXPECT_THROW(ShardMap::Parse("0 0\n", "test"), Error);            // no global line
  EXPECT_THROW(ShardMap::Parse("1 0\nglobal 0\n", "test"), Error);  // shard 0 missing
  EXPECT_THROW(ShardMap::Parse("0 x\nglobal 0\n", "test"), Error);
  EXPECT_THROW(ShardMap::Build(0, 1), Error);
}

TEST(DatabaseNames, ShardsAndGlobal) {
  EXPECT_EQ(ParseDatabaseName("3"), 3);
  EXPECT_EQ(ParseDatabaseName("global"), -1);
  EXPECT_THROW(ParseDatabaseName("-1"), Error);
  EXPECT_THROW(ParseDatabaseName("3x"), Error);
  EXPECT_THROW(ParseDatabaseName(""), Error);
}

TEST(AddressFiles, WrittenAtomicallyAndRead) {
  testing::TempDir dir;
  WriteFileAtomically(dir.path() / AddressFileName(2), "tcp://127.0.0.1:5555\n");
  const std::string text = WaitForFile(dir.path(), AddressFileName(2),
                                       std::chrono::milliseconds(10), "the address");
  EXPECT_EQ(ParseAddress(text, "file"), "tcp://127.0.0.1:5555");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);  // no temporary left behind
}

TEST(ErrorHeaders, CarryCodeAndMessage) {
  const Error error = ErrorFromHeader(ErrorHeader(7, ErrorCode::kNotFound, "no record 3"));
  EXPECT_EQ(error.code(), ErrorCode::kNotFound);
  EXPECT_STREQ(error.what(), "no record 3");
  EXPECT_EQ(ErrorFromHeader(nlohmann::json{{"code", 999}}).code(), ErrorCode::kProtocol);
}

}  // namespace
}  // namespace provdb::protocol
