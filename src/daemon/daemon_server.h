// DaemonServer: the node-level cache of `strata daemon`. It owns one TierHierarchy (G2 in a
// shared memfd, G3, G4) and serves it over a Unix socket to the engine processes of the node
// (docs/daemon.md, docs/daemon_protocol.md): each client maps G2 and copies blocks to and
// from its device itself; the daemon keeps the bookkeeping, one Session per client.
//
// A socket thread per connection (engines open a few each); a connection that breaks or
// sends anything malformed ends its session, and everything the session held is given back.
// Only processes of this user (or, with a group, of that group) may connect.
//
// Thread-safe.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "daemon/session.h"
#include "manager/tier_hierarchy.h"
#include "strata/options.h"

namespace strata::daemon {

struct DaemonServerOptions {
  // The Unix socket to listen on. Required. A stale socket file (nothing listening) is
  // replaced; a live one is an error.
  std::string socket_path;
  // Name of a group whose members may connect too: the socket becomes 0660 of that group.
  // Empty (default): 0600, this user only.
  std::string group;
  // Connections at once; past it new ones are closed at once. Default 256.
  uint32_t max_connections = 256;
};

struct DaemonServerStats {
  uint64_t sessions = 0;     // now
  uint64_t connections = 0;  // now
  uint64_t sessions_total = 0;
  uint64_t sessions_ended_with_holdings = 0;  // clients that went away holding leases or slots
  uint64_t protocol_errors = 0;               // malformed or hostile messages
  uint64_t refused = 0;                       // other users, over the limit, bad hello
};

// What one attached client holds now (DaemonServer::Clients).
struct DaemonClientHoldings {
  std::string label;  // "<pid>/<session>": the peer's pid (SO_PEERCRED) and session number
  Session::Holdings holdings;
};

class DaemonServer {
 public:
  static Result<std::unique_ptr<DaemonServer>> Start(const BlockManagerOptions& tiers,
                                                     const DaemonServerOptions& options);
  ~DaemonServer();  // Stop()
  DaemonServer(const DaemonServer&) = delete;
  DaemonServer& operator=(const DaemonServer&) = delete;

  // Stops accepting, ends every session (giving back what it held), joins the threads, and
  // removes the socket file. The tiers stay open until destruction.
  void Stop();

  TierHierarchy& tiers() { return *tiers_; }
  DaemonServerStats stats() const;
  // Every session attached now and what it holds (metrics with a label per client).
  std::vector<DaemonClientHoldings> Clients() const;

 private:
  struct Connection {
    int fd = -1;
    pid_t pid = 0;  // the peer's, from SO_PEERCRED
    std::shared_ptr<Session> session;
    std::thread thread;
    bool done = false;
  };

  DaemonServer(const BlockManagerOptions& tiers, const DaemonServerOptions& options,
               std::unique_ptr<TierHierarchy> hierarchy);
  Status Listen();
  void AcceptLoop();
  void Serve(Connection* c);
  // Answers one request; not OK ends the connection (and its session).
  Status Handle(Connection* c, const FrameHeader& h, std::span<const std::byte> payload);
  Status HandleHello(Connection* c, const FrameHeader& h, std::span<const std::byte> payload);
  void EndSession(const std::shared_ptr<Session>& session);
  void ReapLocked();

  const BlockManagerOptions tier_options_;
  const DaemonServerOptions options_;
  const std::unique_ptr<TierHierarchy> tiers_;
  const uint64_t instance_;
  gid_t group_ = static_cast<gid_t>(-1);

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Stop wakes the accept loop
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::list<Connection> connections_;                                   // GUARDED_BY(mu_)
  std::unordered_map<std::string, std::shared_ptr<Session>> by_token_;  // GUARDED_BY(mu_)
  uint64_t next_session_ = 1;                                           // GUARDED_BY(mu_)
  DaemonServerStats stats_;                                             // GUARDED_BY(mu_)
};

}  // namespace strata::daemon
