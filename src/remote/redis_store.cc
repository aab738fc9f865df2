#include "remote/redis_store.h"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "remote/object_format.h"
#include "remote/redis_connection.h"
#include "remote/redis_protocol.h"

namespace strata {

using remote::RedisBulkReply;
using remote::RedisConnection;
using remote::RedisEndpoint;
using remote::RedisReply;
using Clock = std::chrono::steady_clock;

namespace {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Up to 50% off `delay`, so clients that lost a server together do not return in lockstep.
std::chrono::nanoseconds Jittered(std::chrono::nanoseconds delay) {
  thread_local std::minstd_rand rng(std::random_device{}());
  std::uniform_real_distribution<double> factor(0.5, 1.0);
  return std::chrono::nanoseconds(
      static_cast<int64_t>(static_cast<double>(delay.count()) * factor(rng)));
}

std::string_view ReplyText(const redisReply& reply) {
  return {reply.str, reply.len};
}

// Unavailable, whatever went wrong reaching a node: its items are misses.
Status AsUnavailable(const Status& status) {
  if (status.code() == StatusCode::kUnavailable) return status;
  return Status::Unavailable(status.message());
}

}  // namespace

std::string_view RedisTopologyName(RedisTopology topology) {
  switch (topology) {
    case RedisTopology::kAuto:
      return "auto";
    case RedisTopology::kStandalone:
      return "standalone";
    case RedisTopology::kCluster:
      return "cluster";
  }
  return "unknown";
}

Result<RedisTopology> ParseRedisTopology(std::string_view name) {
  for (RedisTopology t :
       {RedisTopology::kAuto, RedisTopology::kStandalone, RedisTopology::kCluster})
    if (RedisTopologyName(t) == name) return t;
  return Status::InvalidArgument(
      fmt::format("redis topology '{}' is not one of auto, standalone, cluster", name));
}

Status RedisStoreOptions::Validate() const {
  auto bad = [](std::string msg) { return Status::InvalidArgument("RedisStoreOptions." + msg); };
  if (endpoints.empty()) return bad("endpoints is empty: give at least one host:port");
  for (const std::string& e : endpoints)
    if (Result<RedisEndpoint> parsed = remote::ParseRedisEndpoint(e); !parsed.ok())
      return bad("endpoints: " + parsed.status().message());
  if (topology == RedisTopology::kStandalone && endpoints.size() != 1)
    return bad(fmt::format("endpoints has {} entries; a standalone server takes exactly one",
                           endpoints.size()));
  if (password.empty() && !username.empty()) return bad("username is set without a password");
  if (!tls.enabled && (!tls.ca_file.empty() || !tls.cert_file.empty() || !tls.key_file.empty()))
    return bad("tls files are set but tls.enabled is false");
  if (tls.cert_file.empty() != tls.key_file.empty())
    return bad("tls.cert_file and tls.key_file must be given together");
  if (connect_timeout.count() <= 0) return bad("connect_timeout must be positive");
  if (io_timeout.count() <= 0) return bad("io_timeout must be positive");
  if (pipeline_depth == 0) return bad("pipeline_depth must be at least 1");
  if (pipeline_bytes == 0) return bad("pipeline_bytes must be positive");
  if (connections_per_node == 0) return bad("connections_per_node must be at least 1");
  if (backoff_initial.count() <= 0) return bad("backoff_initial must be positive");
  if (backoff_max < backoff_initial) return bad("backoff_max must be at least backoff_initial");
  if (block_bytes == 0) return bad("block_bytes must be set (the payload size of a block)");
  // Redis' default proto-max-bulk-len is 512 MiB.
  if (remote::ObjectBytes(block_bytes) > (size_t{512} << 20))
    return bad(fmt::format("block_bytes {} exceeds Redis' 512 MiB value limit", block_bytes));
  return Status::Ok();
}

// --- Internal state ---------------------------------------------------------------------

// One server. Pointers to nodes stay valid for the store's life (nodes are never removed).
struct RedisStore::Node {
  explicit Node(RedisEndpoint e) : endpoint(std::move(e)), name(endpoint.ToString()) {}

  const RedisEndpoint endpoint;
  const std::string name;

  std::mutex mu;
  std::condition_variable cv;  // a pooled connection was returned, or the node went down
  std::vector<std::unique_ptr<RedisConnection>> idle;  // GUARDED_BY(mu)
  uint32_t open = 0;                                   // idle + leased; GUARDED_BY(mu)
  uint64_t generation = 0;                             // bumped when marked down; GUARDED_BY(mu)
  std::chrono::nanoseconds backoff{0};                 // GUARDED_BY(mu)
  std::string down_reason;                             // GUARDED_BY(mu)

  std::atomic<bool> down{false};
  std::atomic<int64_t> retry_at{0};  // steady-clock ns: no reconnect before
  std::atomic<bool> serving{false};  // owns slots in the current map
};

// One key of a batch on its way through Run.
struct RedisStore::Item {
  size_t index = 0;  // into the op's batch
  std::string key;   // the Redis key
  uint16_t slot = 0;
  Node* redirect = nullptr;  // where MOVED/ASK sent it, for the next round
  bool asking = false;       // send ASKING first (an ASK redirection)
  uint32_t redirects = 0;
};

struct RedisStore::Lease {
  Node* node = nullptr;
  std::unique_ptr<RedisConnection> conn;
  uint64_t generation = 0;
  bool reused = false;  // came from the pool (it may have died while idle)
};

// The per-command part of a batch: PutOp, GetOp, ExistsOp.
class RedisStore::Op {
 public:
  virtual ~Op() = default;
  // Queues item's command.
  virtual void Append(RedisConnection& conn, const Item& item) = 0;
  // Bytes the command occupies in flight (for pipeline_bytes).
  virtual uint64_t Bytes() const = 0;
  // Commands in flight per connection.
  virtual size_t Depth(const RedisStoreOptions& options) const { return options.pipeline_depth; }
  // Reads item's reply and records its result; returns the text of an error reply (for
  // the caller to follow or fail), or a failed Status when the connection broke.
  virtual Result<std::optional<std::string>> Read(RedisConnection& conn, Item& item) = 0;
  // Records that item failed.
  virtual void Fail(Item& item, const Status& status) = 0;
  // Keys to DEL on the node after its pipeline (corrupt objects); cleared by the caller.
  std::vector<std::string> deletions;
};

class RedisStore::PutOp final : public Op {
 public:
  PutOp(RedisStore& store, std::span<Put> puts, const NamespaceFingerprint& ns)
      : store_(store), puts_(puts), headers_(puts.size() * remote::kObjectHeaderBytes) {
    if (store.options_.ttl_seconds > 0) ttl_ = std::to_string(store.options_.ttl_seconds);
    for (size_t i = 0; i < puts.size(); ++i)
      if (puts[i].block.size() == store.options_.block_bytes) {
        // Fails only when OpenSSL cannot compute a tag (out of memory); the header is then
        // left without a valid checksum, so no reader serves the object.
        const Status s = remote::EncodeObjectHeader(puts[i].key, ns, puts[i].block, Header(i),
                                                    store.auth_.get());
        if (!s.ok()) spdlog::error("redis store: {}", s.ToString());
      }
  }
  std::byte* Header(size_t i) { return headers_.data() + i * remote::kObjectHeaderBytes; }

  void Append(RedisConnection& conn, const Item& item) override {
    const std::string_view head[] = {"SET", item.key};
    const std::span<const std::byte> bulk[] = {
        std::span<const std::byte>(Header(item.index), remote::kObjectHeaderBytes),
        puts_[item.index].block};
    if (ttl_.empty()) {
      const std::string_view tail[] = {"NX"};
      conn.AppendCommandWithBulk(head, bulk, tail);
    } else {
      const std::string_view tail[] = {"NX", "EX", ttl_};
      conn.AppendCommandWithBulk(head, bulk, tail);
    }
  }
  uint64_t Bytes() const override { return remote::ObjectBytes(store_.options_.block_bytes); }

  Result<std::optional<std::string>> Read(RedisConnection& conn, Item& item) override {
    STRATA_ASSIGN_OR_RETURN(RedisReply reply, conn.ReadReply());
    Put& put = puts_[item.index];
    switch (reply->type) {
      case REDIS_REPLY_STATUS:  // +OK: written
        put.status = Status::Ok();
        put.written = true;
        store_.counters_.puts.fetch_add(1, std::memory_order_relaxed);
        store_.counters_.bytes_written.fetch_add(Bytes(), std::memory_order_relaxed);
        return std::optional<std::string>();
      case REDIS_REPLY_NIL:  // NX found the key: an object is already there
        put.status = Status::Ok();
        put.written = false;
        store_.counters_.puts_present.fetch_add(1, std::memory_order_relaxed);
        return std::optional<std::string>();
      case REDIS_REPLY_ERROR:
        return std::optional<std::string>(std::string(ReplyText(*reply)));
      default:
        Fail(item, Status::Unavailable(fmt::format("redis {}: SET {} got a reply of type {}",
                                                   conn.name(), item.key, reply->type)));
        return std::optional<std::string>();
    }
  }

  void Fail(Item& item, const Status& status) override {
    puts_[item.index].status = status;
    puts_[item.index].written = false;
    store_.counters_.put_errors.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  RedisStore& store_;
  std::span<Put> puts_;
  std::vector<std::byte> headers_;
  std::string ttl_;
};

class RedisStore::GetOp final : public Op {
 public:
  GetOp(RedisStore& store, std::span<Get> gets, const NamespaceFingerprint& ns)
      : store_(store), gets_(gets), ns_(ns) {}

  void Append(RedisConnection& conn, const Item& item) override {
    conn.AppendCommand({"GET", item.key});
  }
  uint64_t Bytes() const override { return 64; }

  Result<std::optional<std::string>> Read(RedisConnection& conn, Item& item) override {
    Get& get = gets_[item.index];
    std::array<std::byte, remote::kObjectHeaderBytes> header;
    STRATA_ASSIGN_OR_RETURN(RedisBulkReply reply, conn.ReadBulkInto(header, get.out));
    const size_t block_bytes = store_.options_.block_bytes;
    Status verified;
    switch (reply.kind) {
      case RedisBulkReply::Kind::kNil:
        get.status = Status::NotFound(
            fmt::format("block {} is not in redis {}", get.key.ToHex(), conn.name()));
        store_.counters_.get_misses.fetch_add(1, std::memory_order_relaxed);
        return std::optional<std::string>();
      case RedisBulkReply::Kind::kError:
        return std::optional<std::string>(std::move(reply.error));
      case RedisBulkReply::Kind::kWrongLength:
        // The header may still name the problem better than the length does.
        verified = reply.length >= header.size()
                       ? remote::VerifyObjectHeader(header, get.key, ns_, block_bytes, nullptr,
                                                    store_.auth_.get())
                       : Status::Ok();
        if (verified.ok())
          verified = Status::Corruption(fmt::format("object is {} bytes, expected {}", reply.length,
                                                    remote::ObjectBytes(block_bytes)));
        break;
      case RedisBulkReply::Kind::kValue: {
        uint64_t checksum = 0;
        verified = remote::VerifyObjectHeader(header, get.key, ns_, block_bytes, &checksum,
                                              store_.auth_.get());
        if (verified.ok())
          verified = remote::VerifyObjectPayload(header, get.out, checksum, store_.auth_.get());
        break;
      }
    }
    if (verified.ok()) {
      get.status = Status::Ok();
      store_.counters_.gets.fetch_add(1, std::memory_order_relaxed);
      store_.counters_.bytes_read.fetch_add(reply.length, std::memory_order_relaxed);
    } else {
      // Never served again: the key is deleted once the pipeline is done.
      get.status =
          verified.WithContext(fmt::format("redis {} key {} (deleted)", conn.name(), item.key));
      store_.counters_.get_corrupt.fetch_add(1, std::memory_order_relaxed);
      deletions.push_back(item.key);
    }
    return std::optional<std::string>();
  }

  void Fail(Item& item, const Status& status) override {
    gets_[item.index].status = status;
    store_.counters_.get_errors.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  RedisStore& store_;
  std::span<Get> gets_;
  const NamespaceFingerprint& ns_;
};

class RedisStore::ExistsOp final : public Op {
 public:
  explicit ExistsOp(size_t keys) : found_(keys, false) {}

  void Append(RedisConnection& conn, const Item& item) override {
    conn.AppendCommand({"EXISTS", item.key});
  }
  uint64_t Bytes() const override { return 64; }
  // Replies are a few bytes: all keys in one round trip.
  size_t Depth(const RedisStoreOptions&) const override { return SIZE_MAX; }

  Result<std::optional<std::string>> Read(RedisConnection& conn, Item& item) override {
    STRATA_ASSIGN_OR_RETURN(RedisReply reply, conn.ReadReply());
    if (reply->type == REDIS_REPLY_ERROR)
      return std::optional<std::string>(std::string(ReplyText(*reply)));
    found_[item.index] = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    return std::optional<std::string>();
  }
  void Fail(Item& item, const Status&) override { found_[item.index] = false; }

  size_t LeadingHits() const {
    size_t n = 0;
    while (n < found_.size() && found_[n]) ++n;
    return n;
  }

 private:
  std::vector<bool> found_;
};

// --- Creation ---------------------------------------------------------------------------

RedisStore::RedisStore(const RedisStoreOptions& options) : options_(options) {}

RedisStore::~RedisStore() {
  {
    std::lock_guard lock(prober_mu_);
    stopping_ = true;
  }
  prober_cv_.notify_all();
  if (prober_.joinable()) prober_.join();
}

Result<std::unique_ptr<RedisStore>> RedisStore::Create(const RedisStoreOptions& options) {
  STRATA_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<RedisStore> store(new RedisStore(options));
  if (!options.hmac_key.empty()) {
    STRATA_ASSIGN_OR_RETURN(store->auth_, remote::ObjectAuthenticator::Create(options.hmac_key));
  }
  if (options.tls.enabled) {
    remote::RedisTlsContext::Options tls;
    tls.ca_file = options.tls.ca_file;
    tls.cert_file = options.tls.cert_file;
    tls.key_file = options.tls.key_file;
    tls.verify_peer = options.tls.verify_peer;
    STRATA_ASSIGN_OR_RETURN(store->tls_, remote::RedisTlsContext::Create(tls));
  }
  for (const std::string& e : options.endpoints)
    store->seeds_.push_back(std::move(remote::ParseRedisEndpoint(e).value()));

  const Status boot = store->Bootstrap(/*from_prober=*/false);
  if (boot.code() == StatusCode::kInvalidArgument) return boot;
  if (!boot.ok())
    spdlog::warn("redis store {}: unavailable at start ({}); reconnecting in the background",
                 store->describe(), boot.message());
  store->prober_ = std::thread([s = store.get()] { s->ProberLoop(); });
  return store;
}

std::string RedisStore::describe() const {
  const std::string_view scheme = options_.tls.enabled ? "rediss" : "redis";
  std::vector<std::string> names;
  if (bootstrapped()) {
    std::lock_guard lock(nodes_mu_);
    for (const auto& node : nodes_)
      if (node->serving.load(std::memory_order_relaxed)) names.push_back(node->name);
  }
  if (names.empty())
    for (const RedisEndpoint& seed : seeds_) names.push_back(seed.ToString());
  return fmt::format("{}{}://{}", scheme, cluster() ? "-cluster" : "", fmt::join(names, ","));
}

std::string RedisStore::RedisKey(const BlockKey& key) const {
  return options_.key_prefix + key.ToHex();
}

std::string RedisStore::last_error() const {
  std::lock_guard lock(error_mu_);
  return last_error_;
}

RedisStore::Node* RedisStore::FindOrAddNode(const RedisEndpoint& endpoint) {
  std::lock_guard lock(nodes_mu_);
  for (const auto& node : nodes_)
    if (node->endpoint == endpoint) return node.get();
  nodes_.push_back(std::make_unique<Node>(endpoint));
  return nodes_.back().get();
}

RedisStore::Node* RedisStore::NodeForSlot(uint16_t slot) const {
  std::shared_lock lock(slots_mu_);
  if (slots_.empty()) return nullptr;
  return slots_.size() == 1 ? slots_[0] : slots_[slot];
}

Status RedisStore::Discover(RedisConnection& conn, Node& node) {
  // PING first: a server that wants a password we did not give answers NOAUTH.
  STRATA_ASSIGN_OR_RETURN(RedisReply ping, conn.Command({"PING"}));
  if (ping->type == REDIS_REPLY_ERROR) {
    const std::string_view text = ReplyText(*ping);
    if (text.starts_with("NOAUTH") || text.starts_with("WRONGPASS"))
      return Status::InvalidArgument(
          fmt::format("redis {} requires authentication (set a password): {}", node.name, text));
    return Status::Unavailable(fmt::format("redis {}: PING: {}", node.name, text));
  }
  // CLUSTER SLOTS tells the topology: a standalone server answers with an error.
  STRATA_ASSIGN_OR_RETURN(RedisReply slots, conn.Command({"CLUSTER", "SLOTS"}));
  if (slots->type == REDIS_REPLY_ARRAY) {
    if (options_.topology == RedisTopology::kStandalone)
      return Status::InvalidArgument(
          fmt::format("redis {} is a cluster node but topology is standalone", node.name));
    STRATA_RETURN_IF_ERROR(LoadSlots(*slots, node.endpoint.host));
    cluster_.store(true, std::memory_order_release);
    return Status::Ok();
  }
  if (options_.topology == RedisTopology::kCluster)
    return Status::InvalidArgument(fmt::format(
        "redis {} is not a cluster node (CLUSTER SLOTS: {}) but topology is cluster", node.name,
        slots->type == REDIS_REPLY_ERROR ? ReplyText(*slots) : "not an array"));
  if (seeds_.size() > 1)
    return Status::InvalidArgument(fmt::format(
        "redis {} is a standalone server but {} endpoints were given", node.name, seeds_.size()));
  std::unique_lock lock(slots_mu_);
  slots_.assign(1, &node);
  node.serving.store(true, std::memory_order_relaxed);
  return Status::Ok();
}

Status RedisStore::Bootstrap(bool from_prober) {
  Status last = Status::Unavailable("redis: no endpoint answered");
  for (const RedisEndpoint& seed : seeds_) {
    Node* node = FindOrAddNode(seed);
    const bool was_down = node->down.load(std::memory_order_acquire);
    if (was_down && node->retry_at.load(std::memory_order_relaxed) > NowNanos()) continue;
    Result<std::unique_ptr<RedisConnection>> conn = Connect(*node);
    Status status = conn.ok() ? Discover(**conn, *node) : conn.status();
    if (!status.ok()) {
      // At Create, rejected credentials or certificates and a wrong topology are errors for
      // the caller; later (the server changed under us) they are one more reason to back off.
      if (status.code() == StatusCode::kInvalidArgument && !from_prober) return status;
      MarkDown(*node, status, /*probe=*/was_down);
      last = status;
      continue;
    }
    if (was_down) MarkUp(*node);
    Lease lease = Adopt(*node, std::move(*conn));
    Release(lease);
    bootstrapped_.store(true, std::memory_order_release);
    spdlog::info("redis store: connected to {}", describe());
    return Status::Ok();
  }
  return AsUnavailable(last);
}

Status RedisStore::LoadSlots(const redisReply& reply, const std::string& host) {
  STRATA_ASSIGN_OR_RETURN(const std::vector<remote::RedisSlotRange> ranges,
                          remote::ParseClusterSlots(reply, host));
  std::vector<Node*> map(remote::kRedisClusterSlots, nullptr);
  for (const remote::RedisSlotRange& range : ranges) {
    Node* node = FindOrAddNode(range.master);
    std::fill(map.begin() + range.first, map.begin() + range.last + 1, node);
  }
  std::unique_lock lock(slots_mu_);
  slots_ = std::move(map);
  std::lock_guard nodes_lock(nodes_mu_);
  for (const auto& node : nodes_) node->serving.store(false, std::memory_order_relaxed);
  for (Node* node : slots_)
    if (node) node->serving.store(true, std::memory_order_relaxed);
  return Status::Ok();
}

void RedisStore::RefreshSlots() {
  std::vector<Node*> candidates;
  {
    std::lock_guard lock(nodes_mu_);
    for (const auto& node : nodes_)
      if (!node->down.load(std::memory_order_relaxed)) candidates.push_back(node.get());
  }
  // Nodes that serve slots know the map best; ask them first.
  std::stable_partition(candidates.begin(), candidates.end(),
                        [](const Node* n) { return n->serving.load(std::memory_order_relaxed); });
  for (Node* node : candidates) {
    Result<Lease> lease = Acquire(*node, /*fresh=*/false);
    if (!lease.ok()) continue;
    Result<RedisReply> reply = lease->conn->Command({"CLUSTER", "SLOTS"});
    Status status = reply.ok() ? Status::Ok() : reply.status();
    if (!reply.ok())
      MarkDown(*node, status);
    else if ((*reply)->type == REDIS_REPLY_ARRAY)
      status = LoadSlots(**reply, node->endpoint.host);
    else
      status = Status::Unavailable("CLUSTER SLOTS did not return an array");
    Release(*lease);
    if (status.ok()) return;
    spdlog::warn("redis store: slot map refresh from {} failed: {}", node->name, status.message());
  }
}

// --- Connections and availability -------------------------------------------------------

Result<std::unique_ptr<RedisConnection>> RedisStore::Connect(Node& node) {
  remote::RedisConnectionOptions o;
  o.connect_timeout = options_.connect_timeout;
  o.io_timeout = options_.io_timeout;
  o.username = options_.username;
  o.password = options_.password;
  o.tls = tls_;
  o.tls_server_name = options_.tls.server_name;
  return RedisConnection::Connect(node.endpoint, o);
}

RedisStore::Lease RedisStore::Adopt(Node& node, std::unique_ptr<RedisConnection> conn) {
  std::lock_guard lock(node.mu);
  ++node.open;
  return Lease{&node, std::move(conn), node.generation, false};
}

Result<RedisStore::Lease> RedisStore::Acquire(Node& node, bool fresh) {
  std::unique_lock lock(node.mu);
  if (node.down.load(std::memory_order_relaxed)) {
    const int64_t wait_ns = node.retry_at.load(std::memory_order_relaxed) - NowNanos();
    return Status::Unavailable(fmt::format("redis {} is down ({}); reconnect attempt in {} ms",
                                           node.name, node.down_reason,
                                           std::max<int64_t>(wait_ns / 1'000'000, 0)));
  }
  const bool ready = node.cv.wait_for(lock, options_.io_timeout, [&] {
    return node.down.load(std::memory_order_relaxed) || (!fresh && !node.idle.empty()) ||
           node.open < options_.connections_per_node;
  });
  if (node.down.load(std::memory_order_relaxed))
    return Status::Unavailable(fmt::format("redis {} is down ({})", node.name, node.down_reason));
  if (!ready)
    return Status::TimedOut(fmt::format("redis {}: all {} connections stayed busy for {} ms",
                                        node.name, options_.connections_per_node,
                                        options_.io_timeout.count()));
  if (!fresh && !node.idle.empty()) {
    Lease lease{&node, std::move(node.idle.back()), node.generation, true};
    node.idle.pop_back();
    return lease;
  }
  ++node.open;
  const uint64_t generation = node.generation;
  lock.unlock();
  Result<std::unique_ptr<RedisConnection>> conn = Connect(node);
  if (!conn.ok()) {
    {
      std::lock_guard relock(node.mu);
      --node.open;
    }
    node.cv.notify_one();
    MarkDown(node, conn.status());
    return AsUnavailable(conn.status());
  }
  return Lease{&node, std::move(*conn), generation, false};
}

void RedisStore::Release(Lease& lease) {
  if (!lease.conn) return;
  Node& node = *lease.node;
  std::unique_ptr<RedisConnection> drop;  // closed outside the lock
  {
    std::lock_guard lock(node.mu);
    if (!lease.conn->broken() && lease.generation == node.generation &&
        !node.down.load(std::memory_order_relaxed)) {
      node.idle.push_back(std::move(lease.conn));
    } else {
      drop = std::move(lease.conn);
      --node.open;
    }
  }
  node.cv.notify_one();
}

void RedisStore::MarkDown(Node& node, const Status& why, bool probe) {
  std::vector<std::unique_ptr<RedisConnection>> dropped;  // closed outside the lock
  bool first = false;
  std::chrono::nanoseconds delay{0};
  {
    std::lock_guard lock(node.mu);
    first = !node.down.load(std::memory_order_relaxed);
    // A new outage starts at backoff_initial; each failed reconnect doubles it. Callers
    // that fail on a node already down (they raced the first) leave it alone.
    if (first || probe) {
      node.backoff =
          first ? std::chrono::nanoseconds(options_.backoff_initial)
                : std::min<std::chrono::nanoseconds>(node.backoff * 2, options_.backoff_max);
      delay = Jittered(node.backoff);
      node.retry_at.store(NowNanos() + delay.count(), std::memory_order_relaxed);
    }
    node.down_reason = why.message();
    node.down.store(true, std::memory_order_release);
    dropped.swap(node.idle);
    node.open -= static_cast<uint32_t>(dropped.size());
    ++node.generation;
  }
  node.cv.notify_all();  // pool waiters see the node down
  {
    std::lock_guard lock(error_mu_);
    last_error_ = why.message();
  }
  if (first) {
    counters_.unavailable_events.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("redis store: {} marked unavailable: {}; reconnecting in {} ms", node.name,
                 why.message(), std::chrono::ceil<std::chrono::milliseconds>(delay).count());
    // A failover may follow: the prober reloads the map from the other nodes.
    if (cluster()) refresh_wanted_.store(true, std::memory_order_relaxed);
  }
  WakeProber();
}

void RedisStore::MarkUp(Node& node) {
  {
    std::lock_guard lock(node.mu);
    node.down.store(false, std::memory_order_release);
    node.backoff = std::chrono::nanoseconds(0);
    node.down_reason.clear();
  }
  spdlog::info("redis store: {} is reachable again", node.name);
}

bool RedisStore::Probe(Node& node) {
  Result<std::unique_ptr<RedisConnection>> conn = Connect(node);
  Status status = conn.ok() ? Status::Ok() : conn.status();
  if (conn.ok()) {
    // Connected is not enough (a stopped server's kernel still accepts): it must answer.
    Result<RedisReply> pong = (*conn)->Command({"PING"});
    if (!pong.ok())
      status = pong.status();
    else if ((*pong)->type == REDIS_REPLY_ERROR)
      status = Status::Unavailable(fmt::format("redis {}: PING: {}", node.name, ReplyText(**pong)));
  }
  if (!status.ok()) {
    MarkDown(node, status, /*probe=*/true);
    return false;
  }
  MarkUp(node);
  Lease lease = Adopt(node, std::move(*conn));
  Release(lease);
  // It may have come back as a replica of a new master: recheck the map.
  if (cluster()) refresh_wanted_.store(true, std::memory_order_relaxed);
  return true;
}

void RedisStore::WakeProber() {
  {
    std::lock_guard lock(prober_mu_);
    prober_wake_ = true;
  }
  prober_cv_.notify_one();
}

void RedisStore::ProberLoop() {
  int64_t last_refresh = 0;
  const int64_t refresh_interval =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.backoff_initial).count();
  for (;;) {
    const int64_t now = NowNanos();
    int64_t next = INT64_MAX;
    std::vector<Node*> due;
    {
      std::lock_guard lock(nodes_mu_);
      for (const auto& node : nodes_) {
        if (!node->down.load(std::memory_order_acquire)) continue;
        const int64_t at = node->retry_at.load(std::memory_order_relaxed);
        if (at <= now)
          due.push_back(node.get());
        else
          next = std::min(next, at);
      }
    }
    // Slot map reloads, at most one per backoff_initial.
    bool refresh = false;
    if (refresh_wanted_.load(std::memory_order_relaxed)) {
      if (now - last_refresh >= refresh_interval)
        refresh = true;
      else
        next = std::min(next, last_refresh + refresh_interval);
    }
    if (!bootstrapped()) {
      if (!due.empty()) (void)Bootstrap(/*from_prober=*/true);
    } else {
      for (Node* node : due) Probe(*node);
    }
    if (refresh) {
      std::lock_guard lock(refresh_mu_);
      if (refresh_wanted_.exchange(false, std::memory_order_relaxed) && bootstrapped() && cluster())
        RefreshSlots();
      last_refresh = NowNanos();
    }
    if (!due.empty() || refresh) continue;  // recompute what is due next

    std::unique_lock lock(prober_mu_);
    if (stopping_) return;
    const auto deadline = next == INT64_MAX ? Clock::now() + std::chrono::hours(1)
                                            : Clock::time_point(std::chrono::nanoseconds(next));
    prober_cv_.wait_until(lock, deadline, [&] { return stopping_ || prober_wake_; });
    prober_wake_ = false;
    if (stopping_) return;
  }
}

bool RedisStore::available() const {
  if (!bootstrapped()) return false;
  std::lock_guard lock(nodes_mu_);
  bool any = false;
  for (const auto& node : nodes_) {
    if (!node->serving.load(std::memory_order_relaxed)) continue;
    if (node->down.load(std::memory_order_relaxed)) return false;
    any = true;
  }
  return any;
}

// --- Batches ----------------------------------------------------------------------------

void RedisStore::Run(Op& op, std::span<Item> items) {
  if (items.empty()) return;
  if (!bootstrapped()) {
    const std::string reason = last_error();
    const Status s = Status::Unavailable(fmt::format(
        "redis {} is not connected yet{}{}", describe(), reason.empty() ? "" : ": ", reason));
    for (Item& item : items) op.Fail(item, s);
    return;
  }
  const bool in_cluster = cluster();
  if (in_cluster)
    for (Item& item : items) item.slot = remote::RedisHashSlot(item.key);

  std::vector<Item*> pending(items.size());
  for (size_t i = 0; i < items.size(); ++i) pending[i] = &items[i];
  while (!pending.empty()) {
    // Group by node, in first-seen order.
    std::vector<std::pair<Node*, std::vector<Item*>>> groups;
    for (Item* item : pending) {
      Node* node = item->redirect ? item->redirect : NodeForSlot(item->slot);
      item->redirect = nullptr;
      if (!node) {
        op.Fail(*item, Status::Unavailable(fmt::format("redis: no node serves slot {} of {}",
                                                       item->slot, item->key)));
        if (in_cluster) {
          refresh_wanted_.store(true, std::memory_order_relaxed);
          WakeProber();
        }
        continue;
      }
      auto group = std::find_if(groups.begin(), groups.end(),
                                [&](const auto& g) { return g.first == node; });
      if (group == groups.end()) group = groups.insert(groups.end(), {node, {}});
      group->second.push_back(item);
    }
    std::vector<Item*> redirected;
    for (auto& [node, group] : groups) RunOnNode(op, *node, group, &redirected);
    pending = std::move(redirected);
  }
}

void RedisStore::RunOnNode(Op& op, Node& node, std::span<Item*> items,
                           std::vector<Item*>* redirected) {
  Result<Lease> lease = Acquire(node, /*fresh=*/false);
  if (!lease.ok()) {
    for (Item* item : items) op.Fail(*item, lease.status());
    return;
  }
  size_t answered = 0;
  Status status = Pipeline(op, *lease->conn, node, items, redirected, &answered);
  if (!status.ok() && lease->reused && status.code() != StatusCode::kTimedOut) {
    // A pooled connection may have died while idle (server restart, idle timeout, a
    // proxy): retry what was not answered once on a new connection before judging the
    // node. A SET NX that did land the first time then reports written=false.
    Release(*lease);
    std::vector<std::unique_ptr<RedisConnection>> stale;  // idle as long: likely dead too
    {
      std::lock_guard lock(node.mu);
      stale.swap(node.idle);
      node.open -= static_cast<uint32_t>(stale.size());
    }
    items = items.subspan(answered);
    lease = Acquire(node, /*fresh=*/true);
    if (!lease.ok()) {
      for (Item* item : items) op.Fail(*item, lease.status());
      return;
    }
    status = Pipeline(op, *lease->conn, node, items, redirected, &answered);
  }
  if (!status.ok()) {
    MarkDown(node, status);
    // A broken connection (reset, protocol error) means the node is unavailable; a
    // timeout says so itself.
    const Status item_status =
        status.code() == StatusCode::kTimedOut ? status : AsUnavailable(status);
    for (Item* item : items.subspan(answered)) op.Fail(*item, item_status);
  } else if (!op.deletions.empty()) {
    // Remove objects that failed verification so they are not served again.
    RedisConnection& conn = *lease->conn;
    for (const std::string& key : op.deletions) conn.AppendCommand({"DEL", key});
    Status deleted = conn.Flush();
    for (size_t i = 0; i < op.deletions.size() && deleted.ok(); ++i) {
      Result<RedisReply> reply = conn.ReadReply();
      if (!reply.ok()) deleted = reply.status();
    }
    if (!deleted.ok())
      spdlog::warn("redis store: deleting {} corrupt objects on {} failed: {}", op.deletions.size(),
                   node.name, deleted.message());
  }
  op.deletions.clear();
  Release(*lease);
}

Status RedisStore::Pipeline(Op& op, RedisConnection& conn, Node& node, std::span<Item*> items,
                            std::vector<Item*>* redirected, size_t* answered) {
  const size_t depth = op.Depth(options_);
  const uint64_t bytes = op.Bytes();
  size_t sent = 0;
  *answered = 0;
  while (*answered < items.size()) {
    // Keep up to `depth` commands and pipeline_bytes in flight; always at least one.
    while (sent < items.size() &&
           (sent == *answered || (sent - *answered < depth &&
                                  (sent - *answered + 1) * bytes <= options_.pipeline_bytes))) {
      const Item& item = *items[sent++];
      if (item.asking) conn.AppendCommand({"ASKING"});
      op.Append(conn, item);
    }
    if (conn.queued_bytes() > 0) STRATA_RETURN_IF_ERROR(conn.Flush());
    Item& item = *items[*answered];
    if (item.asking) {
      STRATA_ASSIGN_OR_RETURN(RedisReply asking, conn.ReadReply());
      (void)asking;  // +OK; an error shows in the command's own reply
    }
    STRATA_ASSIGN_OR_RETURN(std::optional<std::string> error, op.Read(conn, item));
    ++*answered;
    if (error) HandleErrorReply(op, node, item, *error, redirected);
  }
  return Status::Ok();
}

void RedisStore::HandleErrorReply(Op& op, Node& node, Item& item, std::string_view error,
                                  std::vector<Item*>* redirected) {
  std::optional<remote::RedisRedirect> redirect =
      cluster() ? remote::ParseRedisRedirect(error, node.endpoint.host) : std::nullopt;
  if (!redirect) {
    const std::string message =
        fmt::format("redis {} answered '{}' for {}", node.name, error, item.key);
    op.Fail(item, error.starts_with("OOM") ? Status::ResourceExhausted(message)
                                           : Status::Unavailable(message));
    return;
  }
  if (++item.redirects > options_.max_redirects) {
    op.Fail(item, Status::Unavailable(fmt::format("redis: {} redirected more than {} times "
                                                  "(last: {})",
                                                  item.key, options_.max_redirects, error)));
    return;
  }
  counters_.redirections.fetch_add(1, std::memory_order_relaxed);
  Node* target = FindOrAddNode(redirect->target);
  item.asking = redirect->kind == remote::RedisRedirect::Kind::kAsk;
  if (!item.asking) {
    // The slot has moved for good: patch the map now, reload all of it after this round.
    {
      std::unique_lock lock(slots_mu_);
      if (slots_.size() == remote::kRedisClusterSlots) slots_[redirect->slot] = target;
    }
    target->serving.store(true, std::memory_order_relaxed);
    refresh_wanted_.store(true, std::memory_order_relaxed);
    WakeProber();
  }
  item.redirect = target;
  redirected->push_back(&item);
}

void RedisStore::PutBatch(std::span<Put> puts, const NamespaceFingerprint& ns) {
  PutOp op(*this, puts, ns);
  std::vector<Item> items;
  items.reserve(puts.size());
  for (size_t i = 0; i < puts.size(); ++i) {
    if (puts[i].block.size() != options_.block_bytes) {
      Item item{.index = i};
      op.Fail(item, Status::InvalidArgument(fmt::format(
                        "redis put of {}: block is {} bytes, the store's blocks are {}",
                        puts[i].key.ToHex(), puts[i].block.size(), options_.block_bytes)));
      continue;
    }
    items.push_back(Item{.index = i, .key = RedisKey(puts[i].key)});
  }
  Run(op, items);
}

void RedisStore::GetBatch(std::span<Get> gets, const NamespaceFingerprint& ns) {
  GetOp op(*this, gets, ns);
  std::vector<Item> items;
  items.reserve(gets.size());
  for (size_t i = 0; i < gets.size(); ++i) {
    if (gets[i].out.size() != options_.block_bytes) {
      Item item{.index = i};
      op.Fail(item, Status::InvalidArgument(fmt::format(
                        "redis get of {}: buffer is {} bytes, the store's blocks are {}",
                        gets[i].key.ToHex(), gets[i].out.size(), options_.block_bytes)));
      continue;
    }
    items.push_back(Item{.index = i, .key = RedisKey(gets[i].key)});
  }
  Run(op, items);
}

size_t RedisStore::MatchPrefix(std::span<const BlockKey> keys) {
  ExistsOp op(keys.size());
  std::vector<Item> items(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) items[i] = Item{.index = i, .key = RedisKey(keys[i])};
  Run(op, items);
  return op.LeadingHits();
}

void RedisStore::PointAllSlotsAtFirstSeedForTest() {
  // Under refresh_mu_ with no reload pending, so a background reload cannot undo it.
  std::lock_guard refresh_lock(refresh_mu_);
  refresh_wanted_.store(false, std::memory_order_relaxed);
  Node* seed = FindOrAddNode(seeds_[0]);
  std::unique_lock lock(slots_mu_);
  if (slots_.size() == remote::kRedisClusterSlots) std::fill(slots_.begin(), slots_.end(), seed);
}

RemoteStoreStats RedisStore::stats() const {
  RemoteStoreStats s;
  const auto load = [](const std::atomic<uint64_t>& v) {
    return v.load(std::memory_order_relaxed);
  };
  s.puts = load(counters_.puts);
  s.puts_present = load(counters_.puts_present);
  s.put_errors = load(counters_.put_errors);
  s.gets = load(counters_.gets);
  s.get_misses = load(counters_.get_misses);
  s.get_corrupt = load(counters_.get_corrupt);
  s.get_errors = load(counters_.get_errors);
  s.bytes_written = load(counters_.bytes_written);
  s.bytes_read = load(counters_.bytes_read);
  s.unavailable_events = load(counters_.unavailable_events);
  s.available = available();
  return s;
}

}  // namespace strata
