// RemoteTiers: a BlockManager's tiers when they are a `strata daemon`'s (see remote_tiers.h).
#include "daemon/remote_tiers.h"

#include <sys/socket.h>
#include <unistd.h>

#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/socket_io.h"
#include "manager/block_mover.h"
#include "memory/host_memory.h"

namespace strata::daemon {

struct RemoteTiers::Epoch {
  uint16_t id = 0;
  uint32_t slots = 0;
  std::string token;
  std::unique_ptr<HostBuffer> memory;
  std::unique_ptr<BlockMover> mover;

  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> idle;            // GUARDED_BY(mu)
  std::unordered_set<int> sockets;  // GUARDED_BY(mu) every open one
  uint32_t connecting = 0;          // GUARDED_BY(mu) sockets being opened
  bool broken = false;              // GUARDED_BY(mu)
  std::atomic<bool> down{false};    // == broken, readable without the lock
  std::atomic<uint32_t> seq{1};

  // The daemon ends the session as soon as one socket closes: shut every socket, so calls
  // in flight fail now, and refuse new ones.
  void Break() {
    std::lock_guard lock(mu);
    broken = true;
    down.store(true, std::memory_order_release);
    for (int fd : sockets) shutdown(fd, SHUT_RDWR);
    cv.notify_all();
  }
  ~Epoch() {
    for (int fd : sockets) close(fd);
  }
};

namespace {

Status Lost(const std::string& path, const Status& why) {
  return Status::Unavailable(fmt::format("strata daemon at {}: {}", path, why.ToString()));
}

Result<std::vector<std::byte>> ExpectOk(MessageType got, MessageType expect,
                                        std::vector<std::byte> payload) {
  if (got == MessageType::kError) return DecodeError(payload);
  if (got != expect)
    return Status::InvalidArgument(fmt::format("daemon protocol: {} answered with {}",
                                               MessageTypeName(expect), MessageTypeName(got)));
  return payload;
}

// Hello on a fresh socket: the session's HelloOk and, on its first socket, the G2 memfd.
Result<HelloOk> SayHello(int fd, const BlockManagerOptions& o, const std::string& token,
                         int* memfd) {
  Hello hello{.pid = static_cast<uint32_t>(getpid()),
              .layout = o.layout.ToString(),
              .block_bytes = o.layout.block_bytes(),
              .token = token,
              .client_name = o.model_fingerprint.substr(0, 200)};
  STRATA_RETURN_IF_ERROR(SendFrame(fd, MessageType::kHello, 0, Encode(hello)));
  FrameHeader h;
  std::vector<std::byte> payload;
  STRATA_RETURN_IF_ERROR(RecvFrame(fd, &h, &payload, memfd));
  STRATA_ASSIGN_OR_RETURN(std::vector<std::byte> body,
                          ExpectOk(h.type, MessageType::kHelloOk, std::move(payload)));
  return DecodeHelloOk(body);
}

}  // namespace

RemoteTiers::RemoteTiers(const BlockManagerOptions& options) : options_(options) {}

RemoteTiers::~RemoteTiers() = default;  // closing the sockets ends the session

Result<std::unique_ptr<RemoteTiers>> RemoteTiers::Connect(const BlockManagerOptions& options) {
  std::unique_ptr<RemoteTiers> r(new RemoteTiers(options));
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<Epoch> e, r->Open(1));
  spdlog::info("strata: attached to the strata daemon at {} ({} host slots of {} bytes mapped)",
               options.daemon.socket, e->slots, options.layout.block_bytes());
  std::lock_guard lock(r->mu_);
  r->current_ = std::move(e);
  r->last_epoch_ = 1;
  return r;
}

Result<std::shared_ptr<RemoteTiers::Epoch>> RemoteTiers::Open(uint16_t id) const {
  const std::string& path = options_.daemon.socket;
  STRATA_ASSIGN_OR_RETURN(int fd, ConnectUnix(path));
  auto e = std::make_shared<Epoch>();
  e->id = id;
  e->sockets.insert(fd);  // closed with the epoch from here on
  SetSocketTimeouts(fd, options_.daemon.io_timeout);
  int memfd = -1;
  Result<HelloOk> ok = SayHello(fd, options_, "", &memfd);
  if (!ok.ok()) {
    if (memfd >= 0) close(memfd);
    return ok.status().code() == StatusCode::kInvalidArgument ? ok.status()
                                                              : Lost(path, ok.status());
  }
  if (memfd < 0) return Lost(path, Status::InvalidArgument("no shared memory came with hello"));
  if (ok->block_bytes != options_.layout.block_bytes() || ok->slots == 0 ||
      ok->memory_bytes / ok->block_bytes < ok->slots) {
    close(memfd);
    return Lost(path, Status::InvalidArgument(
                          fmt::format("daemon announced {} slots of {} bytes in {} bytes of memory",
                                      ok->slots, ok->block_bytes, ok->memory_bytes)));
  }
  auto memory =
      HostBuffer::MapShared(memfd, ok->memory_bytes, {.pin_for_cuda = options_.host.pin_for_cuda});
  if (!memory.ok()) return memory.status().WithContext("mapping the daemon's G2");
  e->memory = std::move(memory).value();
  e->slots = ok->slots;
  e->token = ok->token;
  auto mover = BlockMover::Create(options_.transfer, options_.layout, e->memory->data(), e->slots);
  if (!mover.ok()) return mover.status().WithContext("creating the transfer engine");
  e->mover = std::move(mover).value();
  if (device_) STRATA_RETURN_IF_ERROR(e->mover->SetDevice(*device_));
  e->idle.push_back(fd);
  return e;
}

Result<std::shared_ptr<RemoteTiers::Epoch>> RemoteTiers::Current() const {
  std::lock_guard lock(mu_);
  if (current_ && !current_->down.load(std::memory_order_acquire)) return current_;
  const auto now = std::chrono::steady_clock::now();
  if (last_attempt_.time_since_epoch().count() != 0 &&
      now - last_attempt_ < options_.daemon.reconnect_interval)
    return Status::Unavailable(
        fmt::format("the strata daemon at {} is unreachable (retrying)", options_.daemon.socket));
  last_attempt_ = now;
  current_.reset();
  uint16_t next = static_cast<uint16_t>(last_epoch_ + 1);
  if (next == 0) next = 1;
  Result<std::shared_ptr<Epoch>> e = Open(next);
  if (!e.ok()) return e.status();
  last_epoch_ = next;
  current_ = *e;
  spdlog::info("strata: reattached to the strata daemon at {} (epoch {})", options_.daemon.socket,
               next);
  return current_;
}

std::shared_ptr<RemoteTiers::Epoch> RemoteTiers::Exactly(uint16_t id) const {
  std::lock_guard lock(mu_);
  if (current_ && current_->id == id && !current_->down.load(std::memory_order_acquire))
    return current_;
  return nullptr;
}

Result<RemoteTiers::Reply> RemoteTiers::Call(Epoch& e, MessageType type,
                                             std::span<const std::byte> payload,
                                             MessageType expect) const {
  const std::string& path = options_.daemon.socket;
  int fd = -1;
  bool fresh = false;
  {
    std::unique_lock lock(e.mu);
    const bool got = e.cv.wait_for(lock, options_.daemon.io_timeout, [&] {
      return e.broken || !e.idle.empty() ||
             e.sockets.size() + e.connecting < options_.daemon.connections;
    });
    if (e.broken) return Lost(path, Status::Unavailable("connection lost"));
    if (!got) return Lost(path, Status::TimedOut("every connection busy"));
    if (!e.idle.empty()) {
      fd = e.idle.back();
      e.idle.pop_back();
    } else {
      fresh = true;
      ++e.connecting;
    }
  }
  Status st;
  if (fresh) {
    // A further socket of the session: the same hello with the session's token.
    Result<int> c = ConnectUnix(path);
    std::unique_lock lock(e.mu);
    --e.connecting;
    if (!c.ok()) {
      lock.unlock();
      e.Break();
      return Lost(path, c.status());
    }
    fd = *c;
    e.sockets.insert(fd);
    if (e.broken) {
      shutdown(fd, SHUT_RDWR);
      return Lost(path, Status::Unavailable("connection lost"));
    }
    lock.unlock();
    SetSocketTimeouts(fd, options_.daemon.io_timeout);
    Result<HelloOk> ok = SayHello(fd, options_, e.token, nullptr);
    st = ok.status();
  }
  Reply reply;
  if (st.ok()) {
    const uint32_t seq = e.seq.fetch_add(1, std::memory_order_relaxed);
    st = SendFrame(fd, type, seq, payload);
    const bool one_way = expect == type;  // kReleaseQuietly: nothing comes back
    FrameHeader h{.type = expect, .seq = seq};
    if (st.ok() && !one_way) st = RecvFrame(fd, &h, &reply.payload);
    if (st.ok() && h.seq != seq)
      st = Status::InvalidArgument(
          fmt::format("daemon protocol: reply {} to request {}", h.seq, seq));
    if (st.ok() && one_way) {
      reply.type = type;
    } else if (st.ok()) {
      Result<std::vector<std::byte>> body = ExpectOk(h.type, expect, std::move(reply.payload));
      if (body.ok()) {
        reply.type = h.type;
        reply.payload = std::move(body).value();
      } else {
        st = body.status();
      }
    }
  }
  if (!st.ok()) {
    e.Break();
    return Lost(path, st);
  }
  {
    std::lock_guard lock(e.mu);
    if (!e.broken) {
      e.idle.push_back(fd);
      e.cv.notify_one();
    }
  }
  return reply;
}

Result<RemoteTiers::Reply> RemoteTiers::CallCurrent(MessageType type,
                                                    std::span<const std::byte> payload,
                                                    MessageType expect, uint16_t* epoch) const {
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<Epoch> e, Current());
  if (epoch != nullptr) *epoch = e->id;
  return Call(*e, type, payload, expect);
}

void RemoteTiers::NoteFailure(const Status& why) const {
  const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  int64_t last = last_warning_ns_.load(std::memory_order_relaxed);
  constexpr int64_t kPeriod = 10'000'000'000;
  if (last != 0 && now - last < kPeriod) return;
  if (!last_warning_ns_.compare_exchange_strong(last, now)) return;
  spdlog::warn(
      "strata: {}; matches miss and loads and stores fail until it is back (further failures "
      "are not logged for 10 s)",
      why.ToString());
}

Status RemoteTiers::RegisterDevice(const DeviceCache& cache) {
  std::shared_ptr<Epoch> e;
  {
    std::lock_guard lock(mu_);
    device_ = cache;
    e = current_;
  }
  if (e && !e->down.load()) return e->mover->SetDevice(cache);
  return Status::Ok();  // the next epoch registers it
}

void RemoteTiers::Match(std::span<const BlockKey> keys, TierMatch* out) {
  *out = TierMatch{};
  uint16_t epoch = 0;
  Result<Reply> r =
      CallCurrent(MessageType::kMatch, EncodeKeys(keys), MessageType::kMatchOk, &epoch);
  Result<MatchReply> m = r.ok() ? DecodeMatchReply(r->payload) : Result<MatchReply>(r.status());
  if (m.ok() && m->held.size() > keys.size())
    m = Status::InvalidArgument("daemon protocol: more blocks matched than asked");
  if (!m.ok()) {
    if (r.ok()) {
      if (auto e = Exactly(epoch)) e->Break();  // a malformed reply: the session is in doubt
    }
    NoteFailure(m.status());
    return;
  }
  for (Held& h : m->held) h.epoch = epoch;
  out->held = std::move(m->held);
  out->from_host = m->from_host;
  out->from_disk = m->from_disk;
  out->from_shared = m->from_shared;
}

void RemoteTiers::Release(std::span<const Held> held) {
  std::shared_ptr<Epoch> e;
  {
    std::lock_guard lock(mu_);
    if (!current_ || current_->down.load()) return;  // the daemon gave them back when we went
    e = current_;
  }
  // Leases of an older epoch went with its session.
  std::vector<Held> now;
  for (const Held& h : held)
    if (h.epoch == e->id && (h.tier == Tier::kHost || h.tier == Tier::kDisk)) now.push_back(h);
  if (now.empty()) return;
  // One way: the engine does not wait for it; a lease the daemon does not know ends the
  // connection, which the next call on that socket sees.
  Result<Reply> r =
      Call(*e, MessageType::kReleaseQuietly, EncodeHeld(now), MessageType::kReleaseQuietly);
  if (!r.ok()) NoteFailure(r.status());
}

void RemoteTiers::Reserve(std::span<const BlockKey> keys, std::vector<StoreReservation>* out) {
  uint16_t epoch = 0;
  Result<Reply> r =
      CallCurrent(MessageType::kReserve, EncodeKeys(keys), MessageType::kReserveOk, &epoch);
  Result<std::vector<StoreReservation>> res =
      r.ok() ? DecodeReservations(r->payload) : Result<std::vector<StoreReservation>>(r.status());
  std::shared_ptr<Epoch> e = Exactly(epoch);
  if (res.ok() && (res->size() != keys.size() || !e)) res = Status::Unavailable("lost the answer");
  if (res.ok()) {
    for (const StoreReservation& s : *res)
      if (s.state == BlockState::kPending && s.slot >= e->slots)
        res = Status::InvalidArgument("daemon protocol: a reserved slot out of range");
  }
  if (!res.ok()) {
    if (e && r.ok()) e->Break();
    NoteFailure(res.status());
    out->assign(keys.size(), StoreReservation{.state = BlockState::kDropped, .why = res.status()});
    return;
  }
  for (StoreReservation& s : *res) s.epoch = epoch;
  *out = std::move(res).value();
}

void RemoteTiers::BeginStore(std::span<StoreReservation> reservations) {
  for (StoreReservation& r : reservations) r.victim.reset();  // the daemon saved its victims
}

Status RemoteTiers::FinishStore(std::span<const BlockKey> keys,
                                std::span<const StoreReservation> reservations,
                                std::span<const uint8_t> ok) {
  (void)keys;  // the daemon knows each reserved slot's key
  std::vector<StoreOutcome> outcomes;
  uint16_t epoch = 0;
  for (size_t i = 0; i < reservations.size(); ++i) {
    if (reservations[i].state != BlockState::kPending) continue;
    outcomes.push_back({.slot = reservations[i].slot, .ok = ok[i]});
    epoch = reservations[i].epoch;
  }
  if (outcomes.empty()) return Status::Ok();
  std::shared_ptr<Epoch> e = Exactly(epoch);
  if (!e)
    return Lost(options_.daemon.socket,
                Status::Unavailable("the connection was lost before the store was committed"));
  Result<Reply> r = Call(*e, MessageType::kFinishStore, EncodeOutcomes(outcomes), MessageType::kOk);
  if (!r.ok()) {
    NoteFailure(r.status());
    return r.status();
  }
  return Status::Ok();
}

void RemoteTiers::PrepareLoad(std::span<const BlockKey> keys, std::span<Held> held,
                              std::span<const size_t> pending, LoadRound* round) {
  *round = LoadRound{};
  auto fail_all = [&](const Status& why) {
    for (size_t i : pending) {
      round->blocks.push_back(i);
      round->src.push_back(kNoHostSlot);
      round->status.push_back(why);
      held[i] = Held{};
    }
  };
  if (pending.empty()) return;
  const uint16_t epoch = held[pending[0]].epoch;
  std::shared_ptr<Epoch> e = Exactly(epoch);
  for (size_t i : pending) {
    if (held[i].epoch != epoch) e = nullptr;
  }
  if (!e) {
    fail_all(Lost(options_.daemon.socket,
                  Status::Unavailable("the daemon connection was lost since the match")));
    return;
  }
  std::vector<LoadBlock> blocks;
  blocks.reserve(pending.size());
  for (size_t i : pending) blocks.push_back({.key = keys[i], .held = held[i]});
  Result<Reply> r =
      Call(*e, MessageType::kPrepareLoad, EncodeLoadBlocks(blocks), MessageType::kPrepareLoadOk);
  Result<LoadRoundReply> reply =
      r.ok() ? DecodeLoadRoundReply(r->payload) : Result<LoadRoundReply>(r.status());
  if (reply.ok()) {
    std::vector<uint8_t> seen(pending.size(), 0);
    bool bad = reply->blocks.empty();
    for (size_t k = 0; k < reply->blocks.size() && !bad; ++k) {
      const uint32_t pos = reply->blocks[k];
      bad = pos >= pending.size() || seen[pos]++ ||
            (reply->src[k] != kNoHostSlot && reply->src[k] >= e->slots);
    }
    if (bad) reply = Status::InvalidArgument("daemon protocol: a malformed load round");
  }
  if (!reply.ok()) {
    if (r.ok()) e->Break();
    NoteFailure(reply.status());
    fail_all(reply.status());
    return;
  }
  round->epoch = epoch;
  round->id = reply->round;
  for (size_t k = 0; k < reply->blocks.size(); ++k) {
    const size_t i = pending[reply->blocks[k]];
    round->blocks.push_back(i);
    round->src.push_back(reply->src[k]);
    round->status.push_back(std::move(reply->status[k]));
    held[i] = Held{};
  }
}

Status RemoteTiers::FinishLoad(LoadRound& round) {
  if (round.id == 0) return Status::Ok();  // nothing was handed out
  std::shared_ptr<Epoch> e = Exactly(round.epoch);
  if (!e)
    return Lost(options_.daemon.socket,
                Status::Unavailable("the connection was lost while the blocks were copied"));
  Result<Reply> r = Call(*e, MessageType::kFinishLoad, EncodeU64(round.id), MessageType::kOk);
  round.id = 0;
  if (!r.ok()) {
    NoteFailure(r.status());
    return r.status();
  }
  return Status::Ok();
}

void RemoteTiers::Move(TransferOp op, uint16_t epoch, std::span<const uint32_t> device_blocks,
                       std::span<const uint32_t> host_slots, std::vector<Status>* per_block) {
  std::shared_ptr<Epoch> e = Exactly(epoch);
  if (!e) {
    per_block->assign(device_blocks.size(),
                      Lost(options_.daemon.socket, Status::Unavailable("the connection was lost")));
    return;
  }
  e->mover->Move(op, device_blocks, host_slots, per_block);
}

Status RemoteTiers::Pin(std::span<const BlockKey> keys, bool pin) {
  STRATA_ASSIGN_OR_RETURN(Reply r,
                          CallCurrent(MessageType::kPin, EncodePin(pin, keys), MessageType::kOk));
  Status carried;
  STRATA_RETURN_IF_ERROR(DecodeStatusPayload(r.payload, &carried));
  return carried;
}

Status RemoteTiers::Flush() {
  STRATA_ASSIGN_OR_RETURN(Reply r, CallCurrent(MessageType::kFlush, {}, MessageType::kOk));
  Status carried;
  STRATA_RETURN_IF_ERROR(DecodeStatusPayload(r.payload, &carried));
  return carried;
}

void RemoteTiers::FillStats(BlockManagerStats* stats) const {
  Result<Reply> r = CallCurrent(MessageType::kStats, {}, MessageType::kStatsOk);
  if (!r.ok()) return;
  Result<BlockManagerStats> s = DecodeStats(r->payload);
  if (s.ok()) *stats = *s;
}

}  // namespace strata::daemon
