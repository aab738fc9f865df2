// RedisStore against real redis-server processes on loopback: a single server (with and
// without AUTH and TLS) and a 3-node Redis Cluster, including servers killed mid-run.
#include "remote/redis_store.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "disk/disk_test_util.h"
#include "remote/object_format.h"
#include "remote/redis_protocol.h"
#include "remote/redis_test_util.h"

namespace strata {
namespace {

using disk_test::FillBlock;
using disk_test::TestKey;
using disk_test::TestNamespace;
using redis_test::AdminCommand;
using redis_test::RedisClusterForTest;
using redis_test::RedisServer;
using redis_test::ReplyString;
using Clock = std::chrono::steady_clock;

constexpr size_t kBlockBytes = 16 << 10;

#define START_OR_SKIP(expr)                                                               \
  do {                                                                                    \
    const Status started_ = (expr);                                                       \
    if (started_.code() == StatusCode::kNotSupported) GTEST_SKIP() << started_.message(); \
    ASSERT_TRUE(started_.ok()) << started_.ToString();                                    \
  } while (0)

RedisStoreOptions Options(std::vector<std::string> endpoints) {
  RedisStoreOptions o;
  o.endpoints = std::move(endpoints);
  o.block_bytes = kBlockBytes;
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.io_timeout = std::chrono::milliseconds(2000);
  // Short backoff: the tests wait for reconnects.
  o.backoff_initial = std::chrono::milliseconds(20);
  o.backoff_max = std::chrono::milliseconds(200);
  return o;
}

std::unique_ptr<RedisStore> MustCreate(const RedisStoreOptions& options) {
  Result<std::unique_ptr<RedisStore>> store = RedisStore::Create(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

// Blocks of stream `stream`, indices [first, first + n), with their contents.
struct Blocks {
  std::vector<BlockKey> keys;
  std::vector<std::vector<std::byte>> data;
  Blocks(uint64_t stream, size_t first, size_t n, size_t bytes = kBlockBytes) {
    for (size_t i = first; i < first + n; ++i) {
      keys.push_back(TestKey(stream, i));
      data.emplace_back(bytes);
      FillBlock(keys.back(), data.back().data(), bytes);
    }
  }
};

std::vector<RemoteStore::Put> PutAll(RemoteStore& store, const Blocks& blocks,
                                     const NamespaceFingerprint& ns = TestNamespace()) {
  std::vector<RemoteStore::Put> puts(blocks.keys.size());
  for (size_t i = 0; i < puts.size(); ++i) {
    puts[i].key = blocks.keys[i];
    puts[i].block = blocks.data[i];
  }
  store.PutBatch(puts, ns);
  return puts;
}

// Gets every block into fresh buffers; returns the statuses and fills `out`.
std::vector<Status> GetAll(RemoteStore& store, const std::vector<BlockKey>& keys,
                           std::vector<std::vector<std::byte>>* out,
                           const NamespaceFingerprint& ns = TestNamespace(),
                           size_t bytes = kBlockBytes) {
  out->assign(keys.size(), std::vector<std::byte>(bytes));
  std::vector<RemoteStore::Get> gets(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    gets[i].key = keys[i];
    gets[i].out = (*out)[i];
  }
  store.GetBatch(gets, ns);
  std::vector<Status> statuses;
  for (auto& g : gets) statuses.push_back(g.status);
  return statuses;
}

Status GetOne(RemoteStore& store, const BlockKey& key,
              const NamespaceFingerprint& ns = TestNamespace()) {
  std::vector<std::vector<std::byte>> out;
  return GetAll(store, {key}, &out, ns)[0];
}

// Polls `done` every 20 ms for up to `timeout` (generous: the machine may be loaded).
template <typename F>
bool Eventually(F done, std::chrono::seconds timeout = std::chrono::seconds(15)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

bool IsUnreachable(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kTimedOut;
}

// --- Protocol pieces, no server needed ---------------------------------------------------

TEST(RedisStoreProtocolTest, HashSlotsMatchRedisCluster) {
  EXPECT_EQ(remote::RedisCrc16("123456789"), 0x31C3);  // the XMODEM check value
  // Values from CLUSTER KEYSLOT.
  EXPECT_EQ(remote::RedisHashSlot("foo"), 12182);
  EXPECT_EQ(remote::RedisHashSlot("bar"), 5061);
  EXPECT_EQ(remote::RedisHashSlot("{user1000}.following"), remote::RedisHashSlot("user1000"));
  EXPECT_EQ(remote::RedisHashSlot("foo{}{bar}"), remote::RedisHashSlot("foo{}{bar}"));
  EXPECT_NE(remote::RedisHashSlot("foo{}{bar}"), remote::RedisHashSlot("bar"));  // empty tag
  EXPECT_EQ(remote::RedisHashSlot("foo{{bar}}zap"), remote::RedisHashSlot("{bar"));
}

TEST(RedisStoreProtocolTest, EndpointsAndRedirections) {
  auto e = remote::ParseRedisEndpoint("10.0.0.1:6380");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "10.0.0.1");
  EXPECT_EQ(e->port, 6380);
  e = remote::ParseRedisEndpoint("[::1]:7000");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->ToString(), "[::1]:7000");
  for (const char* bad : {"", "host", "host:", ":6379", "host:0", "host:70000", "::1:6379"})
    EXPECT_EQ(remote::ParseRedisEndpoint(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  // Found with redis_reply_fuzz's round-trip check: hosts with brackets inside, whose
  // ToString() did not parse back.
  for (const char* bad : {"[[x]:6379", "[a[b]:1", "x]:1", "a[b:1"})
    EXPECT_EQ(remote::ParseRedisEndpoint(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  for (const char* good : {"10.0.0.1:6380", "[::1]:7000", "[fe80::1%eth0]:1", "[x]:1", "h:1"}) {
    e = remote::ParseRedisEndpoint(good);
    ASSERT_TRUE(e.ok()) << good;
    EXPECT_EQ(remote::ParseRedisEndpoint(e->ToString()).value(), *e) << good;
  }

  auto r = remote::ParseRedisRedirect("MOVED 3999 127.0.0.1:6381", "x");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, remote::RedisRedirect::Kind::kMoved);
  EXPECT_EQ(r->slot, 3999);
  EXPECT_EQ(r->target.ToString(), "127.0.0.1:6381");
  r = remote::ParseRedisRedirect("ASK 12 :7001", "10.1.1.1");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, remote::RedisRedirect::Kind::kAsk);
  EXPECT_EQ(r->target.ToString(), "10.1.1.1:7001");
  r = remote::ParseRedisRedirect("MOVED 1 ::1:7002", "x");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->target.host, "::1");
  EXPECT_FALSE(remote::ParseRedisRedirect("ERR unknown", "x").has_value());
  EXPECT_FALSE(remote::ParseRedisRedirect("MOVED 99999 h:1", "x").has_value());
}

// The replies of `resp` as the store's reader parses them; a failed reply ends the list
// with a null entry.
std::vector<remote::RedisReply> ParseReplies(std::string_view resp,
                                             remote::RedisReplyBudget* budget) {
  redisReader* reader = remote::CreateRedisReplyReader(budget);
  EXPECT_EQ(redisReaderFeed(reader, resp.data(), resp.size()), REDIS_OK);
  std::vector<remote::RedisReply> replies;
  for (;;) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
      replies.emplace_back(nullptr);
      break;
    }
    if (reply == nullptr) break;
    replies.emplace_back(static_cast<redisReply*>(reply));
  }
  redisReaderFree(reader);
  return replies;
}

TEST(RedisStoreProtocolTest, ClusterSlotsReply) {
  remote::RedisReplyBudget budget;
  const std::vector<remote::RedisReply> replies = ParseReplies(
      "*2\r\n"
      "*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
      "*2\r\n$9\r\n127.0.0.1\r\n:7003\r\n"
      "*3\r\n:5461\r\n:16383\r\n*2\r\n$0\r\n\r\n:7001\r\n"
      "*1\r\n*3\r\n:10\r\n:9\r\n*2\r\n$1\r\nh\r\n:7000\r\n"
      "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:7000\r\n"
      "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:7000\r\n"
      "-ERR This instance has cluster support disabled\r\n",
      &budget);
  ASSERT_EQ(replies.size(), 5u);
  auto ranges = remote::ParseClusterSlots(*replies[0], "10.0.0.9");
  ASSERT_TRUE(ranges.ok()) << ranges.status().ToString();
  ASSERT_EQ(ranges->size(), 2u);
  EXPECT_EQ((*ranges)[0].first, 0);
  EXPECT_EQ((*ranges)[0].last, 5460);
  EXPECT_EQ((*ranges)[0].master.ToString(), "127.0.0.1:7000");
  EXPECT_EQ((*ranges)[1].first, 5461);
  EXPECT_EQ((*ranges)[1].last, 16383);
  EXPECT_EQ((*ranges)[1].master.ToString(), "10.0.0.9:7001");  // empty ip: the node asked
  for (size_t i = 1; i < replies.size(); ++i)  // reversed, past 16383, an integer ip, an error
    EXPECT_EQ(remote::ParseClusterSlots(*replies[i], "h").status().code(), StatusCode::kUnavailable)
        << i;
}

TEST(RedisStoreProtocolTest, ReplyReaderBoundsArrayElementsBeforeAllocating) {
  // hiredis alone would calloc 16 GiB for the first line, and 8 MiB per nested line.
  for (const std::string& hostile :
       {std::string("*2147483647\r\n"), std::string("*1048577\r\n:1\r\n"),
        std::string("*2\r\n*1048575\r\n")}) {
    remote::RedisReplyBudget budget;
    const std::vector<remote::RedisReply> replies = ParseReplies(hostile, &budget);
    ASSERT_EQ(replies.size(), 1u) << hostile;
    EXPECT_EQ(replies[0], nullptr) << hostile;
    EXPECT_TRUE(budget.exceeded) << hostile;
  }
  // The bound is per reply: replies that are over it together are fine one by one.
  constexpr size_t kHalf = remote::kMaxRedisReplyElements / 2 + 1;
  std::string two;
  for (int i = 0; i < 2; ++i) {
    two += fmt::format("*{}\r\n", kHalf);
    for (size_t j = 0; j < kHalf; ++j) two += ":1\r\n";
  }
  remote::RedisReplyBudget budget;
  const std::vector<remote::RedisReply> replies = ParseReplies(two, &budget);
  ASSERT_EQ(replies.size(), 2u);
  for (const remote::RedisReply& r : replies) {
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->elements, kHalf);
  }
  EXPECT_FALSE(budget.exceeded);
}

TEST(RedisStoreProtocolTest, OptionsAreValidated) {
  RedisStoreOptions o = Options({"127.0.0.1:6379"});
  EXPECT_TRUE(o.Validate().ok());
  auto expect_bad = [](RedisStoreOptions bad, std::string_view field) {
    const Status s = bad.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
    EXPECT_EQ(RedisStore::Create(bad).status().code(), StatusCode::kInvalidArgument);
  };
  RedisStoreOptions bad = o;
  bad.block_bytes = 0;
  expect_bad(bad, "block_bytes");
  bad = o;
  bad.endpoints = {"nohost"};
  expect_bad(bad, "endpoints");
  bad = o;
  bad.endpoints = {"127.0.0.1:1", "127.0.0.1:2"};
  bad.topology = RedisTopology::kStandalone;
  expect_bad(bad, "standalone");
  bad = o;
  bad.pipeline_depth = 0;
  expect_bad(bad, "pipeline_depth");
  bad = o;
  bad.backoff_max = std::chrono::milliseconds(1);
  expect_bad(bad, "backoff_max");
  bad = o;
  bad.tls.ca_file = "/x";
  expect_bad(bad, "tls");
  EXPECT_EQ(*ParseRedisTopology("cluster"), RedisTopology::kCluster);
  EXPECT_FALSE(ParseRedisTopology("sharded").ok());
}

// --- One server --------------------------------------------------------------------------

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { START_OR_SKIP(server_.Start()); }
  RedisServer server_;
};

TEST_F(RedisStoreTest, RoundTripsManyBlocks) {
  auto store = MustCreate(Options({server_.endpoint()}));
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->available());
  EXPECT_FALSE(store->cluster());
  EXPECT_EQ(store->kind(), "redis");
  EXPECT_EQ(store->describe(), "redis://" + server_.endpoint());

  const Blocks blocks(1, 0, 100);
  for (const auto& put : PutAll(*store, blocks)) {
    EXPECT_TRUE(put.status.ok()) << put.status.ToString();
    EXPECT_TRUE(put.written);
  }
  std::vector<std::vector<std::byte>> out;
  const std::vector<Status> statuses = GetAll(*store, blocks.keys, &out);
  for (size_t i = 0; i < statuses.size(); ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].ToString();
    EXPECT_EQ(out[i], blocks.data[i]) << i;
  }
  // The Redis key is the prefix and the key's hex; the value is the whole object.
  EXPECT_EQ(ReplyString(AdminCommand(server_.port(), {"STRLEN", store->RedisKey(blocks.keys[0])})),
            std::to_string(remote::ObjectBytes(kBlockBytes)));
  EXPECT_EQ(store->RedisKey(blocks.keys[0]), "strata:" + blocks.keys[0].ToHex());
  const RemoteStoreStats stats = store->stats();
  EXPECT_EQ(stats.puts, 100u);
  EXPECT_EQ(stats.gets, 100u);
  EXPECT_EQ(stats.bytes_written, 100 * remote::ObjectBytes(kBlockBytes));
  EXPECT_EQ(stats.bytes_read, 100 * remote::ObjectBytes(kBlockBytes));
  EXPECT_TRUE(stats.available);
}

TEST_F(RedisStoreTest, RoundTripsWithoutPipeliningAndWithTinyByteWindow) {
  RedisStoreOptions o = Options({server_.endpoint()});
  o.pipeline_depth = 1;
  auto store = MustCreate(o);
  ASSERT_TRUE(store);
  o.pipeline_depth = 64;
  o.pipeline_bytes = 1;  // one command in flight at a time anyway
  o.key_prefix = "other:";
  o.ttl_seconds = 1000;
  auto other = MustCreate(o);
  ASSERT_TRUE(other);
  const Blocks blocks(2, 0, 20);
  for (RedisStore* s : {store.get(), other.get()}) {
    for (const auto& put : PutAll(*s, blocks)) EXPECT_TRUE(put.written) << put.status.ToString();
    std::vector<std::vector<std::byte>> out;
    const std::vector<Status> statuses = GetAll(*s, blocks.keys, &out);
    for (size_t i = 0; i < statuses.size(); ++i) {
      ASSERT_TRUE(statuses[i].ok()) << statuses[i].ToString();
      EXPECT_EQ(out[i], blocks.data[i]);
    }
  }
  // ttl_seconds sets an expiry; without it there is none.
  const int ttl = std::stoi(
      ReplyString(AdminCommand(server_.port(), {"TTL", other->RedisKey(blocks.keys[0])})));
  EXPECT_GT(ttl, 900);
  EXPECT_EQ(ReplyString(AdminCommand(server_.port(), {"TTL", store->RedisKey(blocks.keys[0])})),
            "-1");
}

TEST_F(RedisStoreTest, SetNxNeverRewritesAnObject) {
  auto store = MustCreate(Options({server_.endpoint()}));
  ASSERT_TRUE(store);
  const Blocks first(3, 0, 1);
  Blocks second(3, 0, 1);
  second.data[0][0] ^= std::byte{0xff};  // same key, other bytes
  auto puts = PutAll(*store, first);
  ASSERT_TRUE(puts[0].status.ok());
  EXPECT_TRUE(puts[0].written);
  puts = PutAll(*store, second);
  EXPECT_TRUE(puts[0].status.ok()) << puts[0].status.ToString();
  EXPECT_FALSE(puts[0].written);
  std::vector<std::vector<std::byte>> out;
  ASSERT_TRUE(GetAll(*store, first.keys, &out)[0].ok());
  EXPECT_EQ(out[0], first.data[0]);
  EXPECT_EQ(store->stats().puts, 1u);
  EXPECT_EQ(store->stats().puts_present, 1u);
}

TEST_F(RedisStoreTest, MatchPrefixStopsAtFirstMissingKey) {
  auto store = MustCreate(Options({server_.endpoint()}));
  ASSERT_TRUE(store);
  const Blocks all(4, 0, 10);
  Blocks stored(4, 0, 10);
  stored.keys.erase(stored.keys.begin() + 5);  // block 5 is never stored
  stored.data.erase(stored.data.begin() + 5);
  PutAll(*store, stored);
  EXPECT_EQ(store->MatchPrefix(all.keys), 5u);
  EXPECT_EQ(store->MatchPrefix(std::span(all.keys).first(3)), 3u);
  EXPECT_EQ(store->MatchPrefix(std::span(all.keys).subspan(5)), 0u);
  EXPECT_EQ(store->MatchPrefix(std::span(all.keys).subspan(6)), 4u);
  EXPECT_EQ(store->MatchPrefix({}), 0u);
  EXPECT_EQ(GetOne(*store, all.keys[5]).code(), StatusCode::kNotFound);
  EXPECT_EQ(store->stats().get_misses, 1u);
}

TEST_F(RedisStoreTest, CorruptObjectIsReportedAndDeleted) {
  auto store = MustCreate(Options({server_.endpoint()}));
  ASSERT_TRUE(store);
  const Blocks blocks(5, 0, 4);
  PutAll(*store, blocks);
  // A flipped payload byte, a flipped header byte, a truncated value, garbage.
  const std::string k0 = store->RedisKey(blocks.keys[0]), k1 = store->RedisKey(blocks.keys[1]),
                    k2 = store->RedisKey(blocks.keys[2]), k3 = store->RedisKey(blocks.keys[3]);
  const std::string flipped(1, static_cast<char>(static_cast<uint8_t>(blocks.data[0][77]) ^ 1));
  ASSERT_EQ(ReplyString(AdminCommand(server_.port(), {"SETRANGE", k0, "205", flipped})),
            std::to_string(remote::ObjectBytes(kBlockBytes)));
  ASSERT_NE(ReplyString(AdminCommand(server_.port(), {"SETRANGE", k1, "60", "x"})), "");
  const std::string object = ReplyString(AdminCommand(server_.port(), {"GET", k2}));
  ASSERT_EQ(ReplyString(AdminCommand(server_.port(),
                                     {"SET", k2, std::string_view(object).substr(0, 1000)})),
            "OK");
  ASSERT_EQ(ReplyString(AdminCommand(server_.port(), {"SET", k3, "garbage"})), "OK");

  std::vector<std::vector<std::byte>> out;
  const std::vector<Status> statuses = GetAll(*store, blocks.keys, &out);
  for (const Status& s : statuses) EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(statuses[0].message().find("payload checksum"), std::string::npos)
      << statuses[0].message();
  EXPECT_NE(statuses[1].message().find("header checksum"), std::string::npos)
      << statuses[1].message();
  EXPECT_NE(statuses[2].message().find("1000 bytes"), std::string::npos) << statuses[2].message();
  EXPECT_NE(statuses[3].message().find("7 bytes"), std::string::npos) << statuses[3].message();
  EXPECT_EQ(store->stats().get_corrupt, 4u);
  // Deleted: the next get is a miss and the key is gone from the server.
  for (const std::string& k : {k0, k1, k2, k3})
    EXPECT_EQ(ReplyString(AdminCommand(server_.port(), {"EXISTS", k})), "0") << k;
  for (const Status& s : GetAll(*store, blocks.keys, &out))
    EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  // A fresh put stores a good object again.
  for (const auto& put : PutAll(*store, blocks)) EXPECT_TRUE(put.written);
  EXPECT_TRUE(GetOne(*store, blocks.keys[3]).ok());
}

TEST_F(RedisStoreTest, ObjectOfAnotherNamespaceIsCorruption) {
  auto store = MustCreate(Options({server_.endpoint()}));
  ASSERT_TRUE(store);
  const Blocks blocks(6, 0, 1);
  PutAll(*store, blocks, TestNamespace(1));
  const Status s = GetOne(*store, blocks.keys[0], TestNamespace(2));
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("namespace fingerprint"), std::string::npos) << s.message();
  EXPECT_EQ(GetOne(*store, blocks.keys[0], TestNamespace(1)).code(), StatusCode::kNotFound);
}

TEST_F(RedisStoreTest, HmacKeyedClientsServeOnlyAuthenticatedObjects) {
  RedisStoreOptions keyed = Options({server_.endpoint()});
  keyed.hmac_key = "0123456789abcdef0123456789abcdef";
  auto signer = MustCreate(keyed);
  auto plain = MustCreate(Options({server_.endpoint()}));
  ASSERT_TRUE(signer && plain);
  const Blocks good(7, 0, 2), unsigned_blocks(8, 0, 1);
  PutAll(*signer, good);
  std::vector<std::vector<std::byte>> out;
  for (const Status& s : GetAll(*signer, good.keys, &out)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out, good.data);
  for (const Status& s : GetAll(*plain, good.keys, &out)) EXPECT_TRUE(s.ok()) << s.ToString();
  // Written without the key: refused by a keyed client, and deleted.
  PutAll(*plain, unsigned_blocks);
  const Status s = GetOne(*signer, unsigned_blocks.keys[0]);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("no HMAC tag"), std::string::npos) << s.ToString();
  EXPECT_EQ(GetOne(*plain, unsigned_blocks.keys[0]).code(), StatusCode::kNotFound);
  keyed.hmac_key = "short";
  EXPECT_EQ(RedisStore::Create(keyed).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RedisStoreTest, WrongSizedBuffersAreInvalidArguments) {
  auto store = MustCreate(Options({server_.endpoint()}));
  ASSERT_TRUE(store);
  const Blocks small(7, 0, 1, kBlockBytes - 1);
  auto puts = PutAll(*store, small);
  EXPECT_EQ(puts[0].status.code(), StatusCode::kInvalidArgument);
  std::vector<std::vector<std::byte>> out;
  EXPECT_EQ(GetAll(*store, small.keys, &out, TestNamespace(), 100)[0].code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RedisStoreTest, ConcurrentCallsShareTheConnectionPool) {
  RedisStoreOptions o = Options({server_.endpoint()});
  o.connections_per_node = 2;  // fewer connections than threads: calls wait for one
  auto store = MustCreate(o);
  ASSERT_TRUE(store);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 10; ++round) {
        // Overlapping keys across threads: some puts find the object present.
        const Blocks blocks(8, static_cast<size_t>((t + round) % 5) * 4, 8);
        for (const auto& put : PutAll(*store, blocks))
          if (!put.status.ok()) failures.fetch_add(1);
        std::vector<std::vector<std::byte>> out;
        const std::vector<Status> statuses = GetAll(*store, blocks.keys, &out);
        for (size_t i = 0; i < statuses.size(); ++i)
          if (!statuses[i].ok() || out[i] != blocks.data[i]) failures.fetch_add(1);
        if (store->MatchPrefix(blocks.keys) != blocks.keys.size()) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const RemoteStoreStats stats = store->stats();
  EXPECT_EQ(stats.puts + stats.puts_present, 4u * 10 * 8);
}

TEST_F(RedisStoreTest, KilledServerFailsFastThenRecoversAfterRestart) {
  auto store = MustCreate(Options({server_.endpoint()}));
  ASSERT_TRUE(store);
  const Blocks blocks(9, 0, 8);
  for (const auto& put : PutAll(*store, blocks)) ASSERT_TRUE(put.written);

  server_.Kill(SIGKILL);
  // The pooled connection is dead and so is the server: every item fails, nothing hangs.
  const auto t0 = Clock::now();
  std::vector<std::vector<std::byte>> out;
  for (const Status& s : GetAll(*store, blocks.keys, &out))
    EXPECT_TRUE(IsUnreachable(s)) << s.ToString();
  EXPECT_FALSE(store->available());
  EXPECT_FALSE(store->stats().available);
  EXPECT_EQ(store->stats().unavailable_events, 1u);
  EXPECT_FALSE(store->last_error().empty());
  // While down: puts, gets and matches return at once as misses.
  for (int i = 0; i < 20; ++i) {
    for (const auto& put : PutAll(*store, blocks))
      EXPECT_TRUE(IsUnreachable(put.status)) << put.status.ToString();
    EXPECT_EQ(store->MatchPrefix(blocks.keys), 0u);
  }
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(store->stats().unavailable_events, 1u);  // one outage, however many calls

  // Back on the same port (empty: no persistence): the store reconnects after backoff.
  ASSERT_TRUE(server_.Restart().ok());
  EXPECT_TRUE(Eventually([&] { return PutAll(*store, blocks)[0].status.ok(); }));
  EXPECT_TRUE(store->available());
  for (const Status& s : GetAll(*store, blocks.keys, &out)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out, blocks.data);
}

TEST_F(RedisStoreTest, HungServerTimesOutThenIsSkippedUntilItAnswers) {
  RedisStoreOptions o = Options({server_.endpoint()});
  o.io_timeout = std::chrono::milliseconds(300);
  o.connect_timeout = std::chrono::milliseconds(300);
  auto store = MustCreate(o);
  ASSERT_TRUE(store);
  const Blocks blocks(14, 0, 8);
  for (const auto& put : PutAll(*store, blocks)) ASSERT_TRUE(put.written);

  server_.Signal(SIGSTOP);  // its kernel still accepts bytes; nothing answers
  const auto t0 = Clock::now();
  std::vector<std::vector<std::byte>> out;
  for (const Status& s : GetAll(*store, blocks.keys, &out))
    EXPECT_TRUE(IsUnreachable(s)) << s.ToString();
  EXPECT_FALSE(store->available());
  // Later calls do not wait for the hung server at all: the prober does, in the background.
  for (int i = 0; i < 20; ++i)
    for (const Status& s : GetAll(*store, blocks.keys, &out))
      EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(store->stats().unavailable_events, 1u);

  server_.Signal(SIGCONT);
  EXPECT_TRUE(Eventually([&] { return GetOne(*store, blocks.keys[0]).ok(); }));
  EXPECT_TRUE(store->available());
  for (const Status& s : GetAll(*store, blocks.keys, &out)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out, blocks.data);
}

TEST_F(RedisStoreTest, ServerDownAtCreateGivesAnUnavailableStoreThatConnectsLater) {
  server_.Kill(SIGKILL);
  auto store = MustCreate(Options({server_.endpoint()}));
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->available());
  EXPECT_NE(store->last_error().find("refused"), std::string::npos) << store->last_error();
  const Blocks blocks(10, 0, 2);
  for (const auto& put : PutAll(*store, blocks)) EXPECT_TRUE(IsUnreachable(put.status));
  EXPECT_TRUE(IsUnreachable(GetOne(*store, blocks.keys[0])));
  ASSERT_TRUE(server_.Restart().ok());
  EXPECT_TRUE(Eventually([&] { return PutAll(*store, blocks)[0].status.ok(); }));
  EXPECT_TRUE(store->available());
  EXPECT_TRUE(GetOne(*store, blocks.keys[1]).ok());
}

TEST_F(RedisStoreTest, StandaloneServerIsNotACluster) {
  RedisStoreOptions o = Options({server_.endpoint()});
  o.topology = RedisTopology::kCluster;
  const auto store = RedisStore::Create(o);
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("not a cluster node"), std::string::npos)
      << store.status().message();
}

TEST(RedisStoreAuthTest, PasswordAndAclUser) {
  RedisServer server;
  START_OR_SKIP(server.Start({"--requirepass", "s3cret"}));
  // The right password works.
  RedisStoreOptions o = Options({server.endpoint()});
  o.password = "s3cret";
  auto store = MustCreate(o);
  ASSERT_TRUE(store);
  const Blocks blocks(11, 0, 3);
  for (const auto& put : PutAll(*store, blocks)) EXPECT_TRUE(put.written);
  EXPECT_TRUE(GetOne(*store, blocks.keys[2]).ok());

  // A wrong password, or none, is a clear error at Create.
  o.password = "wrong";
  auto bad = RedisStore::Create(o);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("AUTH"), std::string::npos) << bad.status().message();
  o.password.clear();
  bad = RedisStore::Create(o);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("NOAUTH"), std::string::npos) << bad.status().message();

  // A Redis 6 ACL user limited to the store's keys: AUTH user password.
  remote::RedisConnectionOptions admin;
  admin.password = "s3cret";
  ASSERT_EQ(ReplyString(AdminCommand(server.port(),
                                     {"ACL", "SETUSER", "strata", "on", ">pw", "~strata:*", "+get",
                                      "+set", "+exists", "+del", "+ping", "+cluster"},
                                     admin)),
            "OK");
  o.username = "strata";
  o.password = "pw";
  store = MustCreate(o);
  ASSERT_TRUE(store);
  EXPECT_TRUE(GetOne(*store, blocks.keys[0]).ok());
  o.password = "nope";
  EXPECT_EQ(RedisStore::Create(o).status().code(), StatusCode::kInvalidArgument);
}

// --- TLS ---------------------------------------------------------------------------------

class RedisStoreTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new redis_test::TestCertificates();
    cert_status_ = certs_->Create();
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  void StartServer(bool require_client_cert) {
    ASSERT_TRUE(cert_status_.ok()) << cert_status_.ToString();
    START_OR_SKIP(
        server_.Start({}, 0, false,
                      {"--tls-cert-file", certs_->path("server.crt"), "--tls-key-file",
                       certs_->path("server.key"), "--tls-ca-cert-file", certs_->path("ca.crt"),
                       "--tls-auth-clients", require_client_cert ? "yes" : "no"}));
  }
  RedisStoreOptions TlsOptions() {
    RedisStoreOptions o = Options({server_.endpoint()});
    o.tls.enabled = true;
    o.tls.ca_file = certs_->path("ca.crt");
    return o;
  }
  static redis_test::TestCertificates* certs_;
  static Status cert_status_;
  RedisServer server_;
};
redis_test::TestCertificates* RedisStoreTlsTest::certs_ = nullptr;
Status RedisStoreTlsTest::cert_status_;

TEST_F(RedisStoreTlsTest, RoundTripWithVerifiedServer) {
  StartServer(false);
  auto store = MustCreate(TlsOptions());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->describe(), "rediss://" + server_.endpoint());
  // Large enough blocks to need many TLS records and partial writes.
  RedisStoreOptions big = TlsOptions();
  big.block_bytes = 1 << 20;
  auto big_store = MustCreate(big);
  ASSERT_TRUE(big_store);
  const Blocks blocks(12, 0, 6, big.block_bytes);
  for (const auto& put : PutAll(*big_store, blocks)) EXPECT_TRUE(put.written);
  std::vector<std::vector<std::byte>> out;
  for (const Status& s : GetAll(*big_store, blocks.keys, &out, TestNamespace(), big.block_bytes))
    EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out, blocks.data);
  // The name checked can be a DNS name of the certificate.
  RedisStoreOptions named = TlsOptions();
  named.tls.server_name = "localhost";
  EXPECT_TRUE(MustCreate(named)->available());
}

TEST_F(RedisStoreTlsTest, UntrustedOrMisnamedServerIsAnError) {
  StartServer(false);
  RedisStoreOptions o = TlsOptions();
  o.tls.ca_file = certs_->path("other-ca.crt");
  auto store = RedisStore::Create(o);
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("verification failed"), std::string::npos)
      << store.status().message();
  o = TlsOptions();
  o.tls.server_name = "redis.example.com";
  store = RedisStore::Create(o);
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  // Without verification (tests only) the same server is accepted.
  o.tls.verify_peer = false;
  o.tls.ca_file = certs_->path("other-ca.crt");
  auto insecure = MustCreate(o);
  ASSERT_TRUE(insecure);
  EXPECT_TRUE(insecure->available());
  // A missing CA file is reported with its path.
  o.tls.ca_file = "/nonexistent/ca.crt";
  store = RedisStore::Create(o);
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("/nonexistent/ca.crt"), std::string::npos);
}

TEST_F(RedisStoreTlsTest, ClientCertificateForMutualTls) {
  StartServer(true);
  RedisStoreOptions o = TlsOptions();
  o.tls.cert_file = certs_->path("client.crt");
  o.tls.key_file = certs_->path("client.key");
  auto store = MustCreate(o);
  ASSERT_TRUE(store);
  const Blocks blocks(13, 0, 2);
  for (const auto& put : PutAll(*store, blocks)) EXPECT_TRUE(put.written);
  EXPECT_TRUE(GetOne(*store, blocks.keys[1]).ok());
  // Without a client certificate the server drops the connection: no usable store.
  auto anonymous = RedisStore::Create(TlsOptions());
  EXPECT_TRUE(!anonymous.ok() || !(*anonymous)->available());
}

// --- Redis Cluster -----------------------------------------------------------------------

class RedisStoreClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new RedisClusterForTest();
    status_ = cluster_->Start(3);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (status_.code() == StatusCode::kNotSupported) GTEST_SKIP() << status_.message();
    ASSERT_TRUE(status_.ok()) << status_.ToString();
  }
  // Keys each node holds.
  std::vector<int> KeysPerNode() {
    std::vector<int> n;
    for (size_t i = 0; i < cluster_->size(); ++i)
      n.push_back(std::stoi(ReplyString(AdminCommand(cluster_->port(i), {"DBSIZE"}))));
    return n;
  }
  static RedisClusterForTest* cluster_;
  static Status status_;
};
RedisClusterForTest* RedisStoreClusterTest::cluster_ = nullptr;
Status RedisStoreClusterTest::status_;

TEST_F(RedisStoreClusterTest, RoundTripsAcrossAllNodes) {
  auto store = MustCreate(Options({cluster_->endpoint(0), cluster_->endpoint(1)}));
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->cluster());
  EXPECT_TRUE(store->available());
  EXPECT_NE(store->describe().find("redis-cluster://"), std::string::npos);
  const std::vector<int> before = KeysPerNode();
  const Blocks blocks(20, 0, 90);
  for (const auto& put : PutAll(*store, blocks)) EXPECT_TRUE(put.written) << put.status.ToString();
  const std::vector<int> after = KeysPerNode();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_GT(after[i], before[i]) << "node " << i;
  std::vector<std::vector<std::byte>> out;
  for (const Status& s : GetAll(*store, blocks.keys, &out)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out, blocks.data);
  EXPECT_EQ(store->MatchPrefix(blocks.keys), blocks.keys.size());
  EXPECT_EQ(store->redirections(), 0u);  // the slot map was right from the start
  // SET NX holds per key on every node.
  for (const auto& put : PutAll(*store, blocks)) EXPECT_FALSE(put.written);
}

TEST_F(RedisStoreClusterTest, ClientSeededWithOneNodeFollowsMovedToEveryNode) {
  auto store = MustCreate(Options({cluster_->endpoint(1)}));
  ASSERT_TRUE(store);
  // Stale map: everything points at the seed; two thirds of the keys live elsewhere.
  store->PointAllSlotsAtFirstSeedForTest();
  const Blocks blocks(21, 0, 60);
  for (const auto& put : PutAll(*store, blocks)) EXPECT_TRUE(put.written) << put.status.ToString();
  EXPECT_GE(store->redirections(), 1u);
  store->PointAllSlotsAtFirstSeedForTest();
  const uint64_t before = store->redirections();
  std::vector<std::vector<std::byte>> out;
  for (const Status& s : GetAll(*store, blocks.keys, &out)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out, blocks.data);
  EXPECT_GT(store->redirections(), before);
  // MOVED patched the map and triggered a reload: no more redirections.
  const uint64_t settled = store->redirections();
  for (const Status& s : GetAll(*store, blocks.keys, &out)) EXPECT_TRUE(s.ok());
  EXPECT_EQ(store->MatchPrefix(blocks.keys), blocks.keys.size());
  EXPECT_EQ(store->redirections(), settled);
  // Keys of every node were reached.
  std::vector<bool> nodes(3, false);
  for (const BlockKey& k : blocks.keys)
    nodes[cluster_->NodeOfSlot(remote::RedisHashSlot(store->RedisKey(k)))] = true;
  EXPECT_EQ(nodes, std::vector<bool>(3, true));
}

TEST_F(RedisStoreClusterTest, FollowsAskDuringSlotMigrationAndMovedAfterIt) {
  auto store = MustCreate(Options({cluster_->endpoint(0)}));
  ASSERT_TRUE(store);
  // Find a block whose slot lives on node 0, then migrate that slot to node 2.
  BlockKey key;
  uint16_t slot = 0;
  for (uint64_t i = 0;; ++i) {
    key = TestKey(22, i);
    slot = remote::RedisHashSlot(store->RedisKey(key));
    if (cluster_->NodeOfSlot(slot) == 0) break;
  }
  const Blocks blocks(22, 0, 0);
  Blocks one(22, 0, 0);
  one.keys.push_back(key);
  one.data.emplace_back(kBlockBytes);
  FillBlock(key, one.data[0].data(), kBlockBytes);
  ASSERT_TRUE(PutAll(*store, one)[0].written);

  const std::string src_id = cluster_->NodeId(0), dst_id = cluster_->NodeId(2);
  const std::string s = std::to_string(slot);
  ASSERT_EQ(
      ReplyString(AdminCommand(cluster_->port(2), {"CLUSTER", "SETSLOT", s, "IMPORTING", src_id})),
      "OK");
  ASSERT_EQ(
      ReplyString(AdminCommand(cluster_->port(0), {"CLUSTER", "SETSLOT", s, "MIGRATING", dst_id})),
      "OK");
  ASSERT_EQ(ReplyString(AdminCommand(cluster_->port(0),
                                     {"MIGRATE", "127.0.0.1", std::to_string(cluster_->port(2)),
                                      store->RedisKey(key), "0", "5000"})),
            "OK");
  // Mid-migration the source answers ASK for the moved key: ASKING + GET on the target.
  uint64_t before = store->redirections();
  EXPECT_TRUE(GetOne(*store, key).ok());
  EXPECT_EQ(store->redirections(), before + 1);
  // A new key of the migrating slot is also stored on the target (via ASK).
  BlockKey sibling;
  for (uint64_t i = 1000;; ++i) {
    sibling = TestKey(22, i);
    if (remote::RedisHashSlot(store->RedisKey(sibling)) == slot) break;
  }
  Blocks two(22, 0, 0);
  two.keys.push_back(sibling);
  two.data.emplace_back(kBlockBytes);
  FillBlock(sibling, two.data[0].data(), kBlockBytes);
  EXPECT_TRUE(PutAll(*store, two)[0].written);
  EXPECT_EQ(ReplyString(AdminCommand(cluster_->port(2), {"CLUSTER", "COUNTKEYSINSLOT", s})), "2");

  // Finish: the slot belongs to node 2 everywhere; the source now answers MOVED.
  for (size_t i = 0; i < cluster_->size(); ++i)
    ASSERT_EQ(
        ReplyString(AdminCommand(cluster_->port(i), {"CLUSTER", "SETSLOT", s, "NODE", dst_id})),
        "OK");
  before = store->redirections();
  EXPECT_TRUE(GetOne(*store, key).ok());
  EXPECT_TRUE(GetOne(*store, sibling).ok());
  EXPECT_EQ(store->redirections(), before + 1);  // one MOVED, then the map knows
  EXPECT_EQ(store->MatchPrefix(std::vector<BlockKey>{key, sibling}), 2u);

  // Put the slot back so other tests see the original layout.
  ASSERT_EQ(
      ReplyString(AdminCommand(cluster_->port(0), {"CLUSTER", "SETSLOT", s, "IMPORTING", dst_id})),
      "OK");
  ASSERT_EQ(
      ReplyString(AdminCommand(cluster_->port(2), {"CLUSTER", "SETSLOT", s, "MIGRATING", src_id})),
      "OK");
  ASSERT_EQ(
      ReplyString(AdminCommand(cluster_->port(2),
                               {"MIGRATE", "127.0.0.1", std::to_string(cluster_->port(0)), "", "0",
                                "5000", "KEYS", store->RedisKey(key), store->RedisKey(sibling)})),
      "OK");
  for (size_t i = 0; i < cluster_->size(); ++i)
    ASSERT_EQ(
        ReplyString(AdminCommand(cluster_->port(i), {"CLUSTER", "SETSLOT", s, "NODE", src_id})),
        "OK");
  (void)blocks;
}

TEST(RedisStoreClusterFailureTest, KilledNodeFailsOnlyItsKeys) {
  RedisClusterForTest cluster;
  START_OR_SKIP(cluster.Start(3));
  auto store = MustCreate(Options({cluster.endpoint(0)}));
  ASSERT_TRUE(store);
  const Blocks blocks(23, 0, 60);
  for (const auto& put : PutAll(*store, blocks)) ASSERT_TRUE(put.written);
  auto node_of = [&](const BlockKey& k) {
    return cluster.NodeOfSlot(remote::RedisHashSlot(store->RedisKey(k)));
  };

  cluster.node(1).Kill(SIGKILL);
  const auto t0 = Clock::now();
  std::vector<std::vector<std::byte>> out;
  std::vector<Status> statuses = GetAll(*store, blocks.keys, &out);
  for (size_t i = 0; i < statuses.size(); ++i) {
    if (node_of(blocks.keys[i]) == 1) {
      EXPECT_TRUE(IsUnreachable(statuses[i])) << statuses[i].ToString();
    } else {
      EXPECT_TRUE(statuses[i].ok()) << statuses[i].ToString();
      EXPECT_EQ(out[i], blocks.data[i]);
    }
  }
  EXPECT_FALSE(store->available());
  EXPECT_EQ(store->stats().unavailable_events, 1u);
  // Again, fast: the dead node is skipped until its backoff passes; the others serve.
  for (int round = 0; round < 5; ++round) {
    statuses = GetAll(*store, blocks.keys, &out);
    for (size_t i = 0; i < statuses.size(); ++i)
      EXPECT_EQ(statuses[i].ok(), node_of(blocks.keys[i]) != 1) << statuses[i].ToString();
  }
  // New blocks on live nodes are stored; MatchPrefix stops at the first key of the dead one.
  const Blocks more(24, 0, 30);
  const auto puts = PutAll(*store, more);
  size_t first_dead = more.keys.size();
  for (size_t i = 0; i < puts.size(); ++i) {
    const bool dead = node_of(more.keys[i]) == 1;
    EXPECT_EQ(puts[i].status.ok(), !dead) << puts[i].status.ToString();
    if (dead && first_dead == more.keys.size()) first_dead = i;
  }
  EXPECT_EQ(store->MatchPrefix(more.keys), first_dead);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));

  // The node comes back (same port and node id from its nodes.conf): all keys serve again.
  ASSERT_TRUE(cluster.node(1).Restart().ok());
  ASSERT_TRUE(cluster.WaitUntilOk().ok());
  EXPECT_TRUE(
      Eventually([&] { return PutAll(*store, more)[0].status.ok() && store->available(); }));
  for (const auto& put : PutAll(*store, more))
    EXPECT_TRUE(put.status.ok()) << put.status.ToString();
}

}  // namespace
}  // namespace strata
