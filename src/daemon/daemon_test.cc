// `strata daemon` in one process: a DaemonServer and BlockManagers attached to it in client
// mode (each with its own emulated device), plus raw protocol clients that misbehave.
// Sharing and bit-exact loads across clients, a scheduler that only matches, tenant
// isolation, what a client that goes away gives back, hostile messages, and a daemon that
// goes away and comes back (G3 recovered).
#include "daemon/daemon_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/messages.h"
#include "daemon/socket_io.h"
#include "manager/manager_test_util.h"
#include "strata/block_manager.h"
#include "strata/strata.h"

#include <fmt/format.h>

namespace strata::daemon {
namespace {

using namespace std::chrono_literals;
using manager_test::EmulatedDevice;
using manager_test::Prompt;

KvLayout Layout() {
  return KvLayout{.num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 16,
                  .dtype = DType::kFloat16,
                  .tokens_per_block = 4};
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-daemon-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/d.sock";
  }
  void TearDown() override {
    clients_.clear();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  BlockManagerOptions TierOptions(bool with_disk = false) const {
    BlockManagerOptions o;
    o.model_fingerprint = "daemon";
    o.layout = Layout();
    o.host.capacity_bytes = 64 * Layout().block_bytes();
    o.host.pin_for_cuda = false;
    o.host.huge_pages = false;
    if (with_disk) {
      o.disk.directory = dir_ + "/g3";
      o.disk.capacity_bytes = 256 * Layout().block_bytes();
      o.disk.min_regions = 4;
    }
    return o;
  }
  void StartDaemon(bool with_disk = false) {
    auto s = DaemonServer::Start(TierOptions(with_disk), {.socket_path = socket_});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
  }
  BlockManagerOptions ClientOptions() const {
    BlockManagerOptions o;
    o.model_fingerprint = "model-a";
    o.layout = Layout();
    o.daemon.socket = socket_;
    o.daemon.io_timeout = 2s;
    o.daemon.reconnect_interval = 50ms;
    return o;
  }
  struct Client {
    std::unique_ptr<BlockManager> manager;
    std::unique_ptr<EmulatedDevice> device;
  };
  Client& Attach(bool with_device = true) {
    auto m = BlockManager::Create(ClientOptions());
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    auto c = std::make_unique<Client>();
    c->manager = std::move(m).value();
    if (with_device) {
      c->device = std::make_unique<EmulatedDevice>(Layout(), 32);
      EXPECT_TRUE(c->manager->RegisterDeviceCache(c->device->cache).ok());
    }
    clients_.push_back(std::move(c));
    return *clients_.back();
  }

  // Stores every full block of `tokens` from device blocks 0.. of `c`, filled from `seed`.
  static void Store(Client& c, const std::vector<TokenId>& tokens, uint32_t seed,
                    RequestContext ctx = {"w"}) {
    auto keys = c.manager->ComputeKeys(tokens, ctx);
    ASSERT_TRUE(keys.ok());
    std::vector<uint32_t> dev;
    for (uint32_t i = 0; i < keys->size(); ++i) {
      dev.push_back(i);
      c.device->Fill(i, seed + i);
    }
    auto h = c.manager->Store(ctx, *keys, dev);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    ASSERT_TRUE(h->Wait(10s).ok());
    for (size_t i = 0; i < h->num_blocks(); ++i)
      ASSERT_EQ(h->state(i), BlockState::kDone) << h->error(i).ToString();
  }
  // Matches and loads `tokens` into device blocks 10.. of `c`; returns the usable blocks.
  static size_t Load(Client& c, const std::vector<TokenId>& tokens, RequestContext ctx = {"r"}) {
    auto m = c.manager->Match(tokens, ctx);
    EXPECT_TRUE(m.ok());
    std::vector<uint32_t> dev;
    for (uint32_t i = 0; i < m->num_matched_blocks(); ++i) dev.push_back(10 + i);
    auto h = c.manager->Load(*m, dev);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    EXPECT_TRUE(h->Wait(10s).ok());
    c.manager->Release(ctx.request_id);
    return h->usable_blocks();
  }

  std::string dir_, socket_;
  std::unique_ptr<DaemonServer> server_;
  std::vector<std::unique_ptr<Client>> clients_;
};

TEST_F(DaemonTest, OneClientStoresAnotherLoadsBitExactly) {
  StartDaemon();
  Client& a = Attach();
  Client& b = Attach();
  const auto prompt = Prompt(4 * 6 + 1, 7);
  Store(a, prompt, 100);
  ASSERT_EQ(Load(b, prompt), 6u);
  for (uint32_t i = 0; i < 6; ++i) EXPECT_EQ(b.device->Block(10 + i), a.device->Block(i)) << i;
  const BlockManagerStats st = b.manager->stats();
  EXPECT_EQ(st.loaded_blocks, 6u);       // this client's own counters
  EXPECT_EQ(st.host_used_blocks, 6u);    // the daemon's tier
  EXPECT_EQ(st.host_leased_blocks, 0u);  // the load gave its leases back
  EXPECT_EQ(st.active_requests, 0u);
  EXPECT_EQ(server_->stats().sessions, 2u);
}

TEST_F(DaemonTest, ASchedulerWithoutDeviceMatchesWhatWorkersStored) {
  StartDaemon();
  Client& worker = Attach();
  Client& scheduler = Attach(/*with_device=*/false);
  const auto prompt = Prompt(4 * 5, 3);
  Store(worker, prompt, 1);
  auto m = scheduler.manager->Match(prompt, {"s"});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->num_matched_blocks(), 5u);
  scheduler.manager->Release("s");
  EXPECT_FALSE(scheduler.manager->Load(*m, std::vector<uint32_t>{0}).ok());  // no device
}

TEST_F(DaemonTest, TenantsAndModelsStayApart) {
  StartDaemon();
  Client& a = Attach();
  Client& b = Attach();
  const auto prompt = Prompt(4 * 4, 5);
  Store(a, prompt, 9, {"w", "tenant-1"});
  auto other = b.manager->Match(prompt, {"r", "tenant-2"});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->num_matched_blocks(), 0u);
  EXPECT_EQ(Load(b, prompt, {"r", "tenant-1"}), 4u);
}

TEST_F(DaemonTest, AClientOfAnotherLayoutIsRefusedWithTheReason) {
  StartDaemon();
  BlockManagerOptions o = ClientOptions();
  o.layout.num_layers = 3;
  auto m = BlockManager::Create(o);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("differs from the daemon's"), std::string::npos)
      << m.status().ToString();
  EXPECT_EQ(server_->stats().sessions, 0u);
}

TEST_F(DaemonTest, NoDaemonIsAClearErrorAtCreate) {
  auto m = BlockManager::Create(ClientOptions());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(m.status().message().find("no strata daemon at"), std::string::npos);
}

// A raw protocol client, to misbehave.
struct RawClient {
  explicit RawClient(const std::string& path) {
    auto c = ConnectUnix(path);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    fd = *c;
    SetSocketTimeouts(fd, 5s);
  }
  ~RawClient() {
    if (fd >= 0) close(fd);
  }
  Status Send(MessageType type, const std::vector<std::byte>& payload) {
    return SendFrame(fd, type, ++seq, payload);
  }
  Result<std::pair<MessageType, std::vector<std::byte>>> Recv() {
    FrameHeader h;
    std::vector<std::byte> p;
    int memfd = -1;
    STRATA_RETURN_IF_ERROR(RecvFrame(fd, &h, &p, &memfd));
    if (memfd >= 0) close(memfd);
    return std::pair{h.type, std::move(p)};
  }
  void Hello() {
    ASSERT_TRUE(
        Send(MessageType::kHello,
             Encode(daemon::Hello{
                 .pid = 1, .layout = Layout().ToString(), .block_bytes = Layout().block_bytes()}))
            .ok());
    auto r = Recv();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->first, MessageType::kHelloOk);
  }
  // The daemon answered kError and closed.
  void ExpectClosedWithError(std::string_view needle) {
    auto r = Recv();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->first, MessageType::kError);
    EXPECT_NE(DecodeError(r->second).message().find(needle), std::string::npos)
        << DecodeError(r->second).ToString();
    EXPECT_EQ(Recv().status().code(), StatusCode::kUnavailable);  // end of stream
  }
  int fd = -1;
  uint32_t seq = 0;
};

BlockKey K(uint8_t v) {
  BlockKey k;
  k.bytes.fill(v);
  return k;
}

// Wait (bounded) until the daemon has ended every session that went away.
void WaitForSessions(DaemonServer& s, uint64_t n) {
  for (int i = 0; i < 500 && s.stats().sessions != n; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(s.stats().sessions, n);
}

TEST_F(DaemonTest, AClientThatGoesAwayGivesBackLeasesAndItsUnfinishedStoresAreNeverServed) {
  StartDaemon();
  Client& a = Attach();
  const auto prompt = Prompt(4 * 3, 11);
  Store(a, prompt, 1);
  auto keys = a.manager->ComputeKeys(prompt, {"x"});
  ASSERT_TRUE(keys.ok());
  {
    RawClient raw(socket_);
    raw.Hello();
    // Lease the three stored blocks, and reserve slots for three new keys, never finished.
    ASSERT_TRUE(raw.Send(MessageType::kMatch, EncodeKeys(*keys)).ok());
    auto m = raw.Recv();
    ASSERT_TRUE(m.ok());
    ASSERT_EQ(DecodeMatchReply(m->second)->held.size(), 3u);
    ASSERT_TRUE(raw.Send(MessageType::kReserve, EncodeKeys(std::vector{K(1), K(2), K(3)})).ok());
    auto r = raw.Recv();
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->first, MessageType::kReserveOk);
    BlockManagerStats st = a.manager->stats();
    EXPECT_EQ(st.host_leased_blocks, 3u);
    EXPECT_EQ(st.host_used_blocks, 6u);  // 3 stored + 3 reserved
  }                                      // the socket closes: as if the process had been killed
  WaitForSessions(*server_, 1);
  const BlockManagerStats st = a.manager->stats();
  EXPECT_EQ(st.host_leased_blocks, 0u);
  EXPECT_EQ(st.host_used_blocks, 3u);  // the reservations were aborted
  EXPECT_EQ(server_->stats().sessions_ended_with_holdings, 1u);
  // The never-finished keys match nothing.
  RawClient check(socket_);
  check.Hello();
  ASSERT_TRUE(check.Send(MessageType::kMatch, EncodeKeys(std::vector{K(1)})).ok());
  auto m = check.Recv();
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(DecodeMatchReply(m->second)->held.empty());
}

TEST_F(DaemonTest, HostileMessagesCloseTheirConnectionAndTheDaemonServesOn) {
  StartDaemon();
  Client& a = Attach();
  const auto prompt = Prompt(4 * 2, 2);
  Store(a, prompt, 1);
  {
    RawClient raw(socket_);
    ASSERT_TRUE(raw.Send(MessageType::kMatch, EncodeKeys(std::vector{K(1)})).ok());
    raw.ExpectClosedWithError("before hello");
  }
  {
    RawClient raw(socket_);
    raw.Hello();
    ASSERT_TRUE(
        raw.Send(MessageType::kRelease, EncodeHeld(std::vector{Held{.tier = Tier::kHost, .id = 0}}))
            .ok());
    raw.ExpectClosedWithError("does not hold");
  }
  {
    RawClient raw(socket_);
    raw.Hello();
    ASSERT_TRUE(raw.Send(MessageType::kReleaseQuietly,
                         EncodeHeld(std::vector{Held{.tier = Tier::kDisk, .id = 3}}))
                    .ok());
    raw.ExpectClosedWithError("does not hold");
  }
  {
    RawClient raw(socket_);
    raw.Hello();
    ASSERT_TRUE(raw.Send(MessageType::kFinishStore,
                         EncodeOutcomes(std::vector{StoreOutcome{.slot = 5, .ok = 1}}))
                    .ok());
    raw.ExpectClosedWithError("has not reserved");
  }
  {
    RawClient raw(socket_);
    raw.Hello();
    ASSERT_TRUE(raw.Send(MessageType::kFinishLoad, EncodeU64(77)).ok());
    raw.ExpectClosedWithError("does not hold");
  }
  {
    RawClient raw(socket_);
    raw.Hello();
    Writer w;
    w.U32(1u << 30);  // a count far past the payload
    ASSERT_TRUE(raw.Send(MessageType::kPrepareLoad, w.data()).ok());
    raw.ExpectClosedWithError("truncated");
  }
  {
    RawClient raw(socket_);
    const char junk[] = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_EQ(write(raw.fd, junk, sizeof junk), static_cast<ssize_t>(sizeof junk));
    EXPECT_EQ(raw.Recv().status().code(), StatusCode::kUnavailable);  // closed, no answer
  }
  WaitForSessions(*server_, 1);
  EXPECT_GE(server_->stats().protocol_errors, 6u);
  EXPECT_EQ(a.manager->stats().host_leased_blocks, 0u);
  Client& b = Attach();
  EXPECT_EQ(Load(b, prompt), 2u);
}

TEST_F(DaemonTest, ADaemonThatGoesAwayFailsFastAndIsReattachedWithG3Recovered) {
  StartDaemon(/*with_disk=*/true);
  Client& a = Attach();
  const auto prompt = Prompt(4 * 4, 21);
  Store(a, prompt, 50);
  ASSERT_TRUE(a.manager->FlushDisk().ok());
  // Wait for the write-through to G3.
  for (int i = 0; i < 500 && a.manager->stats().disk_offload_blocks < 4; ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(a.manager->stats().disk_offload_blocks, 4u);
  auto matched = a.manager->Match(prompt, {"held"});  // leases across the restart
  ASSERT_TRUE(matched.ok());
  ASSERT_EQ(matched->num_matched_blocks(), 4u);

  server_.reset();  // the daemon is gone
  const auto start = std::chrono::steady_clock::now();
  auto miss = a.manager->Match(prompt, {"m"});
  ASSERT_TRUE(miss.ok());
  EXPECT_EQ(miss->num_matched_blocks(), 0u);
  // A load of the match from before fails per block, never hands back bytes.
  auto h = a.manager->Load(*matched, std::vector<uint32_t>{10, 11, 12, 13});
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(h->Wait(5s).ok());
  EXPECT_EQ(h->usable_blocks(), 0u);
  EXPECT_EQ(h->state(0), BlockState::kFailed);
  // A store fails per block too.
  auto keys = a.manager->ComputeKeys(Prompt(8, 99), {"s"});
  auto st = a.manager->Store({"s"}, *keys, std::vector<uint32_t>{0, 1});
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(st->Wait(5s).ok());
  EXPECT_EQ(st->state(0), BlockState::kDropped);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);  // fast, not io_timeout each
  a.manager->Release("held");

  StartDaemon(/*with_disk=*/true);    // G3 recovered from its files
  std::this_thread::sleep_for(60ms);  // past reconnect_interval
  std::vector<std::byte> before[4];
  for (uint32_t i = 0; i < 4; ++i) before[i] = a.device->Block(i);
  size_t usable = 0;
  for (int i = 0; i < 50 && usable == 0; ++i) {
    usable = Load(a, prompt);
    if (usable == 0) std::this_thread::sleep_for(60ms);
  }
  ASSERT_EQ(usable, 4u);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(a.device->Block(10 + i), before[i]) << i;
  EXPECT_EQ(a.manager->stats().loaded_blocks_from_disk, 4u);
}

// The C API is the same door: a manager created from TOML naming the daemon's socket is a
// client, and two of them share blocks.
TEST_F(DaemonTest, CApiManagersConfiguredWithTheSocketShareBlocks) {
  StartDaemon();
  const std::string toml = fmt::format(
      "[model]\nfingerprint = \"c-api\"\n[layout]\nnum_layers = 2\nnum_kv_heads = 2\n"
      "head_dim = 16\ndtype = \"fp16\"\ntokens_per_block = 4\n[daemon]\nsocket = \"{}\"\n",
      socket_);
  strata_manager* a = nullptr;
  strata_manager* b = nullptr;
  ASSERT_EQ(strata_manager_create_from_toml(toml.c_str(), STRATA_CONFIG_IGNORE_ENV, &a), STRATA_OK)
      << strata_last_error();
  ASSERT_EQ(strata_manager_create_from_toml(toml.c_str(), STRATA_CONFIG_IGNORE_ENV, &b), STRATA_OK)
      << strata_last_error();
  EmulatedDevice da(Layout(), 16, DeviceOrder::kBlockMajor),
      db(Layout(), 16, DeviceOrder::kBlockMajor);
  auto reg = [](strata_manager* m, EmulatedDevice& d) {
    strata_device_cache c;
    strata_device_cache_init(&c);
    strata_manager_layout(m, &c.layout);
    c.memory_kind = STRATA_MEMORY_HOST;
    c.device_order = STRATA_ORDER_BLOCK_MAJOR;
    c.num_blocks = d.cache.view.num_blocks;
    c.num_layers = Layout().num_layers;
    std::vector<void*> bases(d.cache.view.layer_base.begin(), d.cache.view.layer_base.end());
    c.layer_base = bases.data();
    return strata_manager_register_device_cache(m, &c);
  };
  ASSERT_EQ(reg(a, da), STRATA_OK) << strata_last_error();
  ASSERT_EQ(reg(b, db), STRATA_OK) << strata_last_error();
  const auto prompt = Prompt(4 * 3, 77);
  for (uint32_t i = 0; i < 3; ++i) da.Fill(i, 500 + i);
  strata_request req;
  strata_request_init(&req);
  req.request_id = "c";
  const uint32_t src[] = {0, 1, 2};
  strata_store* st = nullptr;
  ASSERT_EQ(strata_manager_store(a, &req, prompt.data(), prompt.size(), 0, src, 3, &st), STRATA_OK);
  ASSERT_EQ(strata_store_wait(st, 10000), STRATA_OK);
  strata_store_destroy(st);
  strata_match* m = nullptr;
  ASSERT_EQ(strata_manager_match(b, &req, prompt.data(), prompt.size(), &m), STRATA_OK);
  const uint32_t dst[] = {5, 6, 7};
  strata_load* ld = nullptr;
  ASSERT_EQ(strata_manager_load(b, m, 0, dst, 3, &ld), STRATA_OK) << strata_last_error();
  ASSERT_EQ(strata_load_wait(ld, 10000), STRATA_OK);
  size_t usable = 0;
  ASSERT_EQ(strata_load_usable_blocks(ld, &usable), STRATA_OK);
  EXPECT_EQ(usable, 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(db.Block(5 + i), da.Block(i)) << i;
  strata_load_destroy(ld);
  strata_match_destroy(m);
  strata_manager_release(b, "c");
  strata_manager_destroy(a);
  strata_manager_destroy(b);
}

// Another user can neither open the socket (0600) nor, should its mode be widened by
// mistake, be served: the daemon checks the peer's credentials.
TEST_F(DaemonTest, AClientOfAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  StartDaemon();
  struct stat st {};
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  // The child reports: 1 = connect refused, 2 = connected but no hello answer, 0 = served.
  auto as_nobody = [&]() -> int {
    const pid_t pid = fork();
    if (pid == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(9);
      const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path, socket_.c_str(), socket_.size());
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) _exit(1);
      const std::vector<std::byte> hello = Encode(
          Hello{.pid = 1, .layout = Layout().ToString(), .block_bytes = Layout().block_bytes()});
      if (!SendFrame(fd, MessageType::kHello, 1, hello).ok()) _exit(2);
      FrameHeader h;
      std::vector<std::byte> p;
      _exit(RecvFrame(fd, &h, &p).ok() ? 0 : 2);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(as_nobody(), 1);
  ASSERT_EQ(chmod(socket_.c_str(), 0666), 0);  // a mistake: the credentials still decide
  EXPECT_EQ(as_nobody(), 2);
  EXPECT_GE(server_->stats().refused, 1u);
  EXPECT_EQ(server_->stats().sessions, 0u);
}

}  // namespace
}  // namespace strata::daemon
