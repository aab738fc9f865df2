// RedisStore (G4): blocks as objects in a Redis-protocol store — one Redis or Valkey server,
// or a Redis Cluster — shared by every engine instance that points at it.
//
// Each block is one Redis string: key = key_prefix + the block key's 64 hex digits, value =
// the object of object_format.h (128-byte header with key, namespace fingerprint, length
// and checksums, then the payload). Puts are pipelined `SET key value NX [EX ttl]` (an
// existing object is never rewritten), gets pipelined `GET` verified with the object
// header and checksum, MatchPrefix pipelined `EXISTS`. A batch is split per node and each
// node's part is pipelined on one pooled connection, pipeline_depth commands in flight.
//
// Cluster: keys map to hash slots (CRC16); the slot map comes from CLUSTER SLOTS at start
// and again after a MOVED or a failed node; ASK is followed once with ASKING.
//
// Availability: a node whose connect or I/O fails or times out is marked down. Calls for
// its keys then fail at once with Unavailable, without touching the network. A background
// thread reconnects (connect + PING) when the node's backoff passes (backoff_initial,
// doubling per failed attempt up to backoff_max, with jitter), so no call ever waits for a
// down node. A call that meets a failure waits at most connect_timeout + io_timeout per
// node it touches. docs/redis_tier.md describes the tier in full.
//
// Thread-safe: calls may overlap. A call holds a node's connection only while it runs its
// pipeline there (up to connections_per_node calls use a node at once); the slot map is
// read under a shared lock; statistics are atomics.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "remote/object_auth.h"
#include "strata/block_key.h"
#include "strata/remote_store.h"
#include "strata/status.h"

struct redisReply;  // hiredis

namespace strata {

namespace remote {
class RedisConnection;
class RedisTlsContext;
struct RedisEndpoint;
}  // namespace remote

// How the endpoints are served.
enum class RedisTopology : uint8_t {
  kAuto,        // ask the server: CLUSTER SLOTS answered with a map means cluster mode
  kStandalone,  // one Redis/Valkey server (exactly one endpoint)
  kCluster,     // Redis Cluster; the endpoints are seeds, the rest is discovered
};
std::string_view RedisTopologyName(RedisTopology topology);  // "auto", "standalone", "cluster"
Result<RedisTopology> ParseRedisTopology(std::string_view name);

struct RedisTlsOptions {
  // Connect with TLS. Default false. (hiredis 0.14 has no TLS; the store's own connection
  // layer uses OpenSSL.)
  bool enabled = false;
  // PEM bundle of CAs that sign the server certificate. Default "": the system's CAs.
  std::string ca_file;
  // PEM client certificate and key, for servers that require them (Redis'
  // tls-auth-clients yes, its default). Default "": none.
  std::string cert_file;
  std::string key_file;
  // Name sent as SNI and checked against the server certificate. Default "": each
  // endpoint's host (an IP literal is checked against the certificate's IP addresses).
  std::string server_name;
  // Verify the server's certificate chain and name. Default true; false only for tests.
  bool verify_peer = true;
};

struct RedisStoreOptions {
  // "host:port" (or "[v6]:port") of the server, or of any cluster nodes (seeds).
  // Default {"127.0.0.1:6379"}.
  std::vector<std::string> endpoints = {"127.0.0.1:6379"};
  // Default kAuto.
  RedisTopology topology = RedisTopology::kAuto;
  // AUTH on every (re)connect when `password` is non-empty: "AUTH username password"
  // (Redis 6+ ACL user) or "AUTH password" when `username` is empty. Default: none.
  std::string username;
  std::string password;
  RedisTlsOptions tls;
  // Prepended to every Redis key, so Strata shares a server with other data. Default
  // "strata:". A cluster hash tag ("{x}") here would put every block in one slot.
  std::string key_prefix = "strata:";
  // Expiry of every stored object in seconds (SET ... EX); 0 = none (rely on the server's
  // maxmemory policy, e.g. allkeys-lru). Default 0.
  uint32_t ttl_seconds = 0;
  // Longest wait for a TCP connect plus TLS handshake (and AUTH). Default 1 s.
  std::chrono::milliseconds connect_timeout{1000};
  // Longest wait for any progress of a read or write, and for a free pooled connection.
  // A node silent for longer is marked down. Default 2 s.
  std::chrono::milliseconds io_timeout{2000};
  // HMAC-SHA256 key authenticating every object (object_auth.h); empty = none.
  std::string hmac_key;
  // Commands in flight per connection in a pipelined batch. Default 16; 1 = no pipelining.
  uint32_t pipeline_depth = 16;
  // Bytes of commands in flight per connection (at least one command always). Default 64 MiB.
  uint64_t pipeline_bytes = uint64_t{64} << 20;
  // Connections per node: how many calls may use a node at once. Default 4.
  uint32_t connections_per_node = 4;
  // Wait before reconnecting to a failed node: starts at backoff_initial, doubles on each
  // failed attempt up to backoff_max, with up to 50% random jitter taken off. Defaults
  // 100 ms and 5 s.
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  // MOVED/ASK redirections followed per key per call. Default 5.
  uint32_t max_redirects = 5;
  // Payload bytes of every block (the object adds 128 bytes of header). Required (> 0).
  size_t block_bytes = 0;

  // InvalidArgument naming the first bad field.
  Status Validate() const;
};

class RedisStore final : public RemoteStore {
 public:
  // Validates the options, loads TLS files, then connects to the first endpoint that answers
  // PING and learns the topology and slot map with CLUSTER SLOTS. Errors: InvalidArgument for bad
  // options or TLS files, for credentials the server rejects (WRONGPASS, NOAUTH) or a TLS
  // certificate that fails verification, and for a topology mismatch (kStandalone against a cluster
  // node or the reverse). A server that cannot be reached is not an error: the store is created
  // unavailable (available() false, the reason logged and returned by last_error()) and connects in
  // the background after backoff, so an engine starts without its G4.
  static Result<std::unique_ptr<RedisStore>> Create(const RedisStoreOptions& options);
  // Stops the background thread (waiting for a reconnect attempt in progress, at most
  // connect_timeout + io_timeout). No call may be in progress.
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // "redis".
  std::string_view kind() const override { return "redis"; }
  // "redis://host:port" (cluster: "redis-cluster://host:port,host:port,..." of the nodes
  // that serve slots); "rediss://" with TLS.
  std::string describe() const override;
  // False until the first successful connection, and while any node serving slots is down.
  bool available() const override;

  // Per item: OK (written, or written=false when the key already held an object),
  // Unavailable (node down, or the cluster cannot serve the slot), TimedOut or Unavailable
  // (the node failed during the call), ResourceExhausted (the server is out of memory:
  // OOM), InvalidArgument (a block of the wrong size).
  void PutBatch(std::span<Put> puts, const NamespaceFingerprint& ns) override;
  // Per item: OK, NotFound, Corruption (the object failed verification; it has been
  // deleted), Unavailable / TimedOut (node down or failed), InvalidArgument (wrong `out`
  // size).
  void GetBatch(std::span<Get> gets, const NamespaceFingerprint& ns) override;
  // Leading keys that exist; stops at the first absent or unreachable key.
  size_t MatchPrefix(std::span<const BlockKey> keys) override;
  RemoteStoreStats stats() const override;

  // The Redis key of `key`: key_prefix + 64 hex digits.
  std::string RedisKey(const BlockKey& key) const;
  // True once the store has found a Redis Cluster.
  bool cluster() const { return cluster_.load(std::memory_order_acquire); }
  // Why the store or a node was last marked unavailable ("" when never).
  std::string last_error() const;
  const RedisStoreOptions& options() const { return options_; }
  // MOVED and ASK replies followed so far.
  uint64_t redirections() const { return counters_.redirections.load(std::memory_order_relaxed); }
  // Test hook: points every slot at the first seed, as the map of a client that loaded it
  // before the cluster was resharded would, so the next calls meet MOVED replies.
  void PointAllSlotsAtFirstSeedForTest();

 private:
  struct Node;
  struct Item;
  struct Lease;
  class Op;
  class PutOp;
  class GetOp;
  class ExistsOp;

  explicit RedisStore(const RedisStoreOptions& options);

  // Connects to the seeds whose backoff has passed, learns the topology and the slot map.
  // OK, or Unavailable when no seed answers; at Create (not `from_prober`) also the
  // InvalidArgument errors Create reports.
  Status Bootstrap(bool from_prober);
  // PING and CLUSTER SLOTS on a new connection to `node`: the topology and slot map.
  Status Discover(remote::RedisConnection& conn, Node& node);
  // Replaces the slot map with `reply` of CLUSTER SLOTS from a node at `host`.
  Status LoadSlots(const redisReply& reply, const std::string& host);
  // Reloads the slot map from the first reachable node.
  void RefreshSlots();
  Node* FindOrAddNode(const remote::RedisEndpoint& endpoint);
  // The node serving `slot`, or null.
  Node* NodeForSlot(uint16_t slot) const;

  // The connection pool: a connection to `node` (pooled, or new when fewer than
  // connections_per_node are open), or at once Unavailable while the node is down.
  // `fresh` skips pooled connections.
  Result<Lease> Acquire(Node& node, bool fresh);
  // Returns a healthy connection to the pool; closes a broken one.
  void Release(Lease& lease);
  // A lease of a connection made outside the pool (counted as open).
  Lease Adopt(Node& node, std::unique_ptr<remote::RedisConnection> conn);
  // Marks `node` down (or, with `probe`, records a failed reconnect: the backoff doubles).
  void MarkDown(Node& node, const Status& why, bool probe = false);
  void MarkUp(Node& node);
  bool bootstrapped() const { return bootstrapped_.load(std::memory_order_acquire); }
  Result<std::unique_ptr<remote::RedisConnection>> Connect(Node& node);
  // Connect + PING; true when the node answered (its connection joins the pool).
  bool Probe(Node& node);
  // The background thread: reconnects down nodes when their backoff passes, retries
  // Bootstrap, reloads the slot map when asked. Callers never wait for any of it.
  void ProberLoop();
  void WakeProber();

  // Runs op's commands for every item, node by node, following redirections.
  void Run(Op& op, std::span<Item> items);
  // Pipelines `items` (all for `node`) on one connection; redirected items are appended to
  // `redirected`.
  void RunOnNode(Op& op, Node& node, std::span<Item*> items, std::vector<Item*>* redirected);
  // Whole pipeline on `conn`; returns a connection error, with items[*answered...] not
  // answered.
  Status Pipeline(Op& op, remote::RedisConnection& conn, Node& node, std::span<Item*> items,
                  std::vector<Item*>* redirected, size_t* answered);
  // An error reply for `item`: follows MOVED/ASK (into `redirected`) or fails the item.
  void HandleErrorReply(Op& op, Node& node, Item& item, std::string_view error,
                        std::vector<Item*>* redirected);

  const RedisStoreOptions options_;
  std::shared_ptr<remote::RedisTlsContext> tls_;
  std::unique_ptr<remote::ObjectAuthenticator> auth_;  // null: no HMAC
  std::vector<remote::RedisEndpoint> seeds_;

  std::atomic<bool> bootstrapped_{false};
  std::atomic<bool> cluster_{false};

  mutable std::mutex nodes_mu_;
  std::vector<std::unique_ptr<Node>> nodes_;  // GUARDED_BY(nodes_mu_); never shrinks
  // Slot -> node (cluster, 16384 entries); the server (standalone, one entry).
  mutable std::shared_mutex slots_mu_;
  std::vector<Node*> slots_;  // GUARDED_BY(slots_mu_)
  // Set by a MOVED reply or a failed node: the prober reloads the slot map.
  std::atomic<bool> refresh_wanted_{false};
  std::mutex refresh_mu_;  // held while a reload takes and serves refresh_wanted_

  std::mutex prober_mu_;
  std::condition_variable prober_cv_;
  bool prober_wake_ = false;  // GUARDED_BY(prober_mu_)
  bool stopping_ = false;     // GUARDED_BY(prober_mu_)
  std::thread prober_;

  mutable std::mutex error_mu_;
  std::string last_error_;  // GUARDED_BY(error_mu_)

  struct Counters {
    std::atomic<uint64_t> puts{0}, puts_present{0}, put_errors{0}, gets{0}, get_misses{0},
        get_corrupt{0}, get_errors{0}, bytes_written{0}, bytes_read{0}, unavailable_events{0},
        redirections{0};
  };
  Counters counters_;
};

}  // namespace strata
