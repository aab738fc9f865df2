// DaemonServer: the `strata daemon` socket server over one TierHierarchy (see daemon_server.h).
#include "daemon/daemon_server.h"

#include <grp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/socket_io.h"
#include "memory/host_memory.h"
#include "tier/host_tier.h"

namespace strata::daemon {
namespace {

uint64_t RandomU64() {
  uint64_t v = 0;
  while (getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
  }
  return v;
}

std::string RandomToken() {
  uint8_t bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return HexEncode(bytes);
}

}  // namespace

Result<std::unique_ptr<DaemonServer>> DaemonServer::Start(const BlockManagerOptions& tiers,
                                                          const DaemonServerOptions& options) {
  if (options.socket_path.empty()) return Status::InvalidArgument("daemon: no socket path given");
  if (options.socket_path.size() >= sizeof(sockaddr_un{}.sun_path))
    return Status::InvalidArgument(
        fmt::format("daemon: socket path '{}' is too long", options.socket_path));
  if (tiers.host.capacity_bytes == 0)
    return Status::InvalidArgument("daemon: the daemon needs a G2 host tier (host capacity > 0)");
  STRATA_RETURN_IF_ERROR(tiers.Validate());
  gid_t group = static_cast<gid_t>(-1);
  if (!options.group.empty()) {
    const struct group* g = getgrnam(options.group.c_str());
    if (g == nullptr)
      return Status::InvalidArgument(fmt::format("daemon: no group named '{}'", options.group));
    group = g->gr_gid;
  }
  // Fail on a live socket before G2 is allocated and G3 recovered.
  if (Result<int> probe = ConnectUnix(options.socket_path); probe.ok()) {
    close(*probe);
    return Status::AlreadyExists(
        fmt::format("daemon: another strata daemon is listening on {}", options.socket_path));
  }
  auto hierarchy = TierHierarchy::Create(tiers, /*shared_memory=*/true);
  if (!hierarchy.ok()) return hierarchy.status();
  std::unique_ptr<DaemonServer> server(
      new DaemonServer(tiers, options, std::move(hierarchy).value()));
  server->group_ = group;
  STRATA_RETURN_IF_ERROR(server->Listen());
  server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

DaemonServer::DaemonServer(const BlockManagerOptions& tiers, const DaemonServerOptions& options,
                           std::unique_ptr<TierHierarchy> hierarchy)
    : tier_options_(tiers),
      options_(options),
      tiers_(std::move(hierarchy)),
      instance_(RandomU64()) {}

DaemonServer::~DaemonServer() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

Status DaemonServer::Listen() {
  const std::string& path = options_.socket_path;
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Status::AlreadyExists(
          fmt::format("daemon: {} exists and is not a socket; not replacing it", path));
    unlink(path.c_str());  // stale: nothing answered on it
  }
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Status::IoError("daemon: socket(AF_UNIX)", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return Status::IoError(fmt::format("daemon: bind {}", path), errno);
  // Until chmod the file has the umask's mode; a peer that connects meanwhile is still
  // checked by its credentials.
  if (group_ != static_cast<gid_t>(-1)) {
    if (chown(path.c_str(), static_cast<uid_t>(-1), group_) != 0)
      return Status::IoError(fmt::format("daemon: chown {} to group {}", path, options_.group),
                             errno);
    if (chmod(path.c_str(), 0660) != 0) return Status::IoError("daemon: chmod 0660", errno);
  } else if (chmod(path.c_str(), 0600) != 0) {
    return Status::IoError("daemon: chmod 0600", errno);
  }
  if (listen(listen_fd_, 128) != 0) return Status::IoError("daemon: listen", errno);
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) return Status::IoError("daemon: eventfd", errno);
  return Status::Ok();
}

void DaemonServer::AcceptLoop() {
  while (!stopping_.load(std::memory_order_acquire)) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, 1000) < 0 && errno != EINTR) break;
    {
      std::lock_guard lock(mu_);
      ReapLocked();
    }
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Result<PeerCredentials> peer = GetPeerCredentials(fd);
    const bool allowed = peer.ok() && (peer->uid == geteuid() ||
                                       (group_ != static_cast<gid_t>(-1) && peer->gid == group_));
    std::lock_guard lock(mu_);
    if (!allowed || connections_.size() >= options_.max_connections) {
      ++stats_.refused;
      if (peer.ok())
        spdlog::warn("strata daemon: refused a connection from pid {} uid {}: {}", peer->pid,
                     peer->uid, allowed ? "too many connections" : "another user");
      close(fd);
      continue;
    }
    Connection& c = connections_.emplace_back();
    c.fd = fd;
    c.pid = peer->pid;
    c.thread = std::thread([this, &c] { Serve(&c); });
  }
}

void DaemonServer::ReapLocked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    it->thread.join();  // it only has to return
    it = connections_.erase(it);
  }
}

void DaemonServer::Serve(Connection* c) {
  FrameHeader h;
  std::vector<std::byte> payload;
  while (true) {
    Status st = RecvFrame(c->fd, &h, &payload);
    if (!st.ok()) {
      if (st.code() == StatusCode::kInvalidArgument) {
        std::lock_guard lock(mu_);
        ++stats_.protocol_errors;
        spdlog::warn("strata daemon: closing a connection: {}", st.ToString());
      }
      break;
    }
    st = Handle(c, h, payload);
    if (!st.ok()) {
      {
        std::lock_guard lock(mu_);
        ++stats_.protocol_errors;
      }
      spdlog::warn("strata daemon: closing a connection{}: {}",
                   c->session ? fmt::format(" of {}", c->session->client()) : "", st.ToString());
      (void)SendFrame(c->fd, MessageType::kError, h.seq, EncodeErrorPayload(st));
      break;
    }
  }
  if (c->session) EndSession(c->session);
  std::lock_guard lock(mu_);
  close(c->fd);
  c->fd = -1;
  c->done = true;
}

void DaemonServer::EndSession(const std::shared_ptr<Session>& session) {
  const Session::Holdings held = session->holdings();
  const bool had_any = held.host_leases + held.disk_leases + held.reserved + held.rounds > 0;
  session->Close();
  std::lock_guard lock(mu_);
  if (by_token_.erase(session->token()) == 0) return;  // another connection ended it first
  --stats_.sessions;
  if (had_any) {
    ++stats_.sessions_ended_with_holdings;
    spdlog::info(
        "strata daemon: {} went away holding {} G2 leases, {} G3 leases, {} unfinished stores "
        "and {} load rounds: given back",
        session->client(), held.host_leases, held.disk_leases, held.reserved, held.rounds);
  }
  for (Connection& other : connections_)
    if (other.session == session && other.fd >= 0) shutdown(other.fd, SHUT_RDWR);
}

Status DaemonServer::HandleHello(Connection* c, const FrameHeader& h,
                                 std::span<const std::byte> payload) {
  STRATA_ASSIGN_OR_RETURN(Hello hello, DecodeHello(payload));
  const std::string layout = tier_options_.layout.ToString();
  if (hello.layout != layout || hello.block_bytes != tier_options_.layout.block_bytes())
    return Status::InvalidArgument(fmt::format(
        "the client's KV layout [{}] differs from the daemon's [{}]: start the daemon with the "
        "engine's layout",
        hello.layout, layout));
  const HostBuffer& memory = tiers_->host()->buffer();
  HelloOk ok{.daemon_instance = instance_,
             .slots = tiers_->host()->total_slots(),
             .block_bytes = tier_options_.layout.block_bytes(),
             .memory_bytes = memory.size()};
  bool first = false;
  {
    std::lock_guard lock(mu_);
    if (hello.token.empty()) {
      const uint64_t id = next_session_++;
      const std::string name =
          fmt::format("client {} (pid {}{}{})", id, hello.pid,
                      hello.client_name.empty() ? "" : ", ", hello.client_name);
      c->session = std::make_shared<Session>(id, RandomToken(), name,
                                             fmt::format("{}/{}", c->pid, id), tiers_.get());
      by_token_[c->session->token()] = c->session;
      ++stats_.sessions;
      ++stats_.sessions_total;
      first = true;
    } else {
      auto it = by_token_.find(hello.token);
      if (it == by_token_.end())
        return Status::InvalidArgument("the client's session token is unknown (ended?)");
      c->session = it->second;
    }
    ok.session = c->session->id();
    ok.token = c->session->token();
  }
  if (first) spdlog::info("strata daemon: {} connected", c->session->client());
  return SendFrame(c->fd, MessageType::kHelloOk, h.seq, Encode(ok), first ? memory.fd() : -1);
}

Status DaemonServer::Handle(Connection* c, const FrameHeader& h,
                            std::span<const std::byte> payload) {
  if (h.type == MessageType::kHello) {
    if (c->session) return Status::InvalidArgument("a second hello on one connection");
    return HandleHello(c, h, payload);
  }
  if (!c->session)
    return Status::InvalidArgument(fmt::format("{} before hello", MessageTypeName(h.type)));
  MessageType type = MessageType::kOk;
  std::vector<std::byte> body;
  STRATA_RETURN_IF_ERROR(c->session->Dispatch(h.type, payload, &type, &body));
  if (type == h.type) return Status::Ok();  // a request without a reply
  return SendFrame(c->fd, type, h.seq, body);
}

void DaemonServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    unlink(options_.socket_path.c_str());
  }
  {
    std::lock_guard lock(mu_);
    for (Connection& c : connections_)
      if (c.fd >= 0) shutdown(c.fd, SHUT_RDWR);
  }
  // The threads end their sessions and mark themselves done; join them outside the lock.
  std::list<Connection> all;
  {
    std::lock_guard lock(mu_);
    all.splice(all.end(), connections_);
  }
  for (Connection& c : all) c.thread.join();
}

std::vector<DaemonClientHoldings> DaemonServer::Clients() const {
  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(mu_);
    for (const auto& [token, session] : by_token_) sessions.push_back(session);
  }
  std::vector<DaemonClientHoldings> out;
  for (const auto& s : sessions) out.push_back({s->label(), s->holdings()});
  return out;
}

DaemonServerStats DaemonServer::stats() const {
  std::lock_guard lock(mu_);
  DaemonServerStats s = stats_;
  s.connections = connections_.size();
  return s;
}

}  // namespace strata::daemon
