// Daemon protocol codec tests: every message round-trips, and malformed frames and payloads
// (bad magic, versions, oversized or truncated counts, trailing bytes, out-of-range enums)
// are refused with a reason instead of being half-read.
#include <gtest/gtest.h>

#include "daemon/messages.h"
#include "daemon/protocol.h"

namespace strata::daemon {
namespace {

BlockKey K(uint8_t v) {
  BlockKey k;
  k.bytes.fill(v);
  return k;
}

std::span<const std::byte> S(const std::vector<std::byte>& v) {
  return v;
}

TEST(DaemonProtocolTest, HeaderRoundTripsAndBadHeadersAreRefused) {
  std::byte raw[kHeaderBytes];
  EncodeHeader({.type = MessageType::kMatch, .length = 77, .seq = 9}, raw);
  Result<FrameHeader> h = DecodeHeader(raw);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->type, MessageType::kMatch);
  EXPECT_EQ(h->length, 77u);
  EXPECT_EQ(h->seq, 9u);

  std::byte bad[kHeaderBytes];
  std::memcpy(bad, raw, kHeaderBytes);
  bad[0] = std::byte{'X'};
  EXPECT_NE(DecodeHeader(bad).status().message().find("magic"), std::string::npos);
  EncodeHeader({.version = 2, .type = MessageType::kMatch}, bad);
  EXPECT_NE(DecodeHeader(bad).status().message().find("version 2"), std::string::npos);
  EncodeHeader({.type = MessageType::kMatch, .length = kMaxPayload + 1}, bad);
  EXPECT_NE(DecodeHeader(bad).status().message().find("exceeds"), std::string::npos);
  EXPECT_FALSE(DecodeHeader(std::span<const std::byte>(raw, 10)).ok());
}

TEST(DaemonProtocolTest, MessagesRoundTrip) {
  Hello hello{.pid = 42, .layout = "L", .block_bytes = 4096, .token = "t", .client_name = "n"};
  Result<Hello> h = DecodeHello(Encode(hello));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->pid, 42u);
  EXPECT_EQ(h->layout, "L");
  EXPECT_EQ(h->token, "t");

  const std::vector<BlockKey> keys = {K(1), K(2), K(3)};
  Result<std::vector<BlockKey>> k = DecodeKeys(EncodeKeys(keys));
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(*k, keys);

  MatchReply m{.held = {{.tier = Tier::kHost, .id = 5}, {.tier = Tier::kDisk, .id = 7}},
               .from_host = 1,
               .from_disk = 1};
  Result<MatchReply> mr = DecodeMatchReply(Encode(m));
  ASSERT_TRUE(mr.ok());
  ASSERT_EQ(mr->held.size(), 2u);
  EXPECT_EQ(mr->held[1].tier, Tier::kDisk);
  EXPECT_EQ(mr->held[1].id, 7u);

  std::vector<StoreReservation> res(2);
  res[0].slot = 3;
  res[1].state = BlockState::kDropped;
  res[1].why = Status::ResourceExhausted("full");
  Result<std::vector<StoreReservation>> rr = DecodeReservations(EncodeReservations(res));
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ((*rr)[0].slot, 3u);
  EXPECT_EQ((*rr)[1].why.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ((*rr)[1].why.message(), "full");

  LoadRoundReply lr{.round = 9,
                    .blocks = {0, 1},
                    .src = {4, kNoHostSlot},
                    .status = {Status::Ok(), Status::Corruption("bad")}};
  Result<LoadRoundReply> l = DecodeLoadRoundReply(Encode(lr));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->round, 9u);
  EXPECT_EQ(l->status[1].code(), StatusCode::kCorruption);

  BlockManagerStats st;
  st.match_calls = 11;
  st.disk_direct_io = true;
  st.shared_bytes_read = 99;
  Result<BlockManagerStats> s = DecodeStats(EncodeStats(st));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->match_calls, 11u);
  EXPECT_TRUE(s->disk_direct_io);
  EXPECT_EQ(s->shared_bytes_read, 99u);

  Status carried;
  ASSERT_TRUE(DecodeStatusPayload(EncodeErrorPayload(Status::NotFound("x")), &carried).ok());
  EXPECT_EQ(carried.code(), StatusCode::kNotFound);
  EXPECT_EQ(DecodeError(EncodeErrorPayload(Status::InvalidArgument("y"))).code(),
            StatusCode::kInvalidArgument);
}

TEST(DaemonProtocolTest, MalformedPayloadsAreRefused) {
  // A count far beyond the bytes that follow: refused before anything is allocated.
  Writer w;
  w.U32(0x7fffffff);
  EXPECT_FALSE(DecodeKeys(w.data()).ok());
  // Trailing bytes.
  std::vector<std::byte> keys = EncodeKeys(std::vector<BlockKey>{K(1)});
  keys.push_back(std::byte{0});
  EXPECT_NE(DecodeKeys(keys).status().message().find("left over"), std::string::npos);
  // Truncated.
  keys.resize(keys.size() - 2);
  EXPECT_NE(DecodeKeys(keys).status().message().find("truncated"), std::string::npos);
  // A tier that does not exist.
  Writer held;
  held.U32(1);
  held.U8(9);
  held.U32(0);
  EXPECT_NE(DecodeHeld(held.data()).status().message().find("out-of-range"), std::string::npos);
  // A load of a block that holds nothing (kDevice).
  std::vector<LoadBlock> blocks = {{.key = K(1), .held = Held{}}};
  EXPECT_FALSE(DecodeLoadBlocks(EncodeLoadBlocks(blocks)).ok());
  // Match reply whose counts disagree with its blocks.
  MatchReply m{.held = {{.tier = Tier::kHost, .id = 1}}, .from_host = 2};
  EXPECT_FALSE(DecodeMatchReply(Encode(m)).ok());
  // Outcome flag other than 0/1, a status code past the last, an empty pin.
  EXPECT_FALSE(
      DecodeOutcomes(EncodeOutcomes(std::vector<StoreOutcome>{{.slot = 1, .ok = 2}})).ok());
  Writer st;
  st.U8(200);
  st.Bytes("");
  Status carried;
  EXPECT_FALSE(DecodeStatusPayload(st.data(), &carried).ok());
  EXPECT_FALSE(DecodePin({}).ok());
  EXPECT_FALSE(DecodeU64(S(EncodeKeys({}))).ok());
}

}  // namespace
}  // namespace strata::daemon
