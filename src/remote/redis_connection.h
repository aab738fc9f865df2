// RedisConnection: one client connection to one Redis-protocol server (Redis, Valkey, a
// cluster node) over TCP or TLS, where every wait is bounded by a timeout.
//
// hiredis 0.14 (Debian 12) has no TLS and its blocking calls wait without bound, so the
// socket (non-blocking, poll() for every wait), the TLS session (OpenSSL) and the buffers are
// ours, and hiredis does the protocol: redisFormatSdsCommandArgv formats commands and its
// reply reader parses replies. Two hot paths leave hiredis out so that multi-MiB values are
// never copied in user space: AppendCommandWithBulk queues a command whose large argument is
// referenced and sent with sendmsg() straight from the caller's memory, and ReadBulkInto
// receives a bulk reply (a GET) straight into the caller's buffers.
//
// Commands are queued with Append*, sent by Flush, and their replies read in order with
// ReadReply / ReadBulkInto, so a caller pipelines as deep as it likes. After any I/O or
// protocol error the stream position is unknown: the connection is broken() and must be
// discarded.
//
// Not thread-safe: one thread at a time (the store pools connections).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include "remote/redis_protocol.h"
#include "strata/status.h"

struct ssl_ctx_st;  // SSL_CTX
struct ssl_st;      // SSL
struct iovec;

namespace strata::remote {

// A TLS client configuration (an OpenSSL SSL_CTX) shared by every connection of a store.
class RedisTlsContext {
 public:
  struct Options {
    std::string ca_file;      // PEM bundle of CAs to trust; empty: the system's default paths
    std::string cert_file;    // PEM client certificate (chain) for mutual TLS; empty: none
    std::string key_file;     // PEM private key of cert_file; empty: none
    bool verify_peer = true;  // verify the server's certificate chain and name
  };
  // InvalidArgument naming the file and OpenSSL's reason when a file cannot be loaded.
  static Result<std::shared_ptr<RedisTlsContext>> Create(const Options& options);
  ~RedisTlsContext();
  RedisTlsContext(const RedisTlsContext&) = delete;
  RedisTlsContext& operator=(const RedisTlsContext&) = delete;

  ssl_ctx_st* ctx() const { return ctx_; }
  bool verify_peer() const { return verify_peer_; }

 private:
  RedisTlsContext(ssl_ctx_st* ctx, bool verify_peer) : ctx_(ctx), verify_peer_(verify_peer) {}
  ssl_ctx_st* ctx_;
  bool verify_peer_;
};

struct RedisConnectionOptions {
  // Longest wait for the TCP connect plus the TLS handshake. Default 1 s.
  std::chrono::milliseconds connect_timeout{1000};
  // Longest wait for any progress of a read or a write; a server silent for longer is
  // treated as failed (TimedOut). Default 2 s.
  std::chrono::milliseconds io_timeout{2000};
  // Credentials sent with AUTH right after connecting when `password` is non-empty:
  // "AUTH username password" (Redis 6 ACL) or "AUTH password" when `username` is empty.
  std::string username;
  std::string password;
  // TLS configuration; null for plain TCP.
  std::shared_ptr<const RedisTlsContext> tls;
  // Name sent as SNI and checked against the server certificate; empty: the endpoint's
  // host (an IP literal is checked against the certificate's IP addresses, without SNI).
  std::string tls_server_name;
};

// Owns a hiredis reply object.
struct RedisReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyDeleter>;

// What ReadBulkInto found.
struct RedisBulkReply {
  enum class Kind : uint8_t {
    kValue,        // a bulk string of exactly the expected length, now in the buffers
    kNil,          // a nil reply: no such key
    kError,        // an error reply; its text is in `error`
    kWrongLength,  // a bulk string of another length: its first bytes are in `head`
  };
  Kind kind = Kind::kNil;
  uint64_t length = 0;  // the bulk string's length (kValue, kWrongLength)
  std::string error;    // kError
};

class RedisConnection {
 public:
  // Connects (TCP_NODELAY, then the TLS handshake when options.tls is set) within
  // connect_timeout, then authenticates. Errors: Unavailable (refused, unreachable,
  // timed out, reset) or IoError naming the endpoint and the failing call; InvalidArgument
  // when the server rejects the credentials or the TLS peer fails verification, since
  // retrying cannot fix either.
  static Result<std::unique_ptr<RedisConnection>> Connect(const RedisEndpoint& endpoint,
                                                          const RedisConnectionOptions& options);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  const RedisEndpoint& endpoint() const { return endpoint_; }
  // "host:port", for messages.
  const std::string& name() const { return name_; }
  bool tls() const { return ssl_ != nullptr; }
  // True after an I/O or protocol error: the connection must not be reused.
  bool broken() const { return broken_; }

  // Queues a command; the argument bytes are copied.
  void AppendCommand(std::span<const std::string_view> args);
  void AppendCommand(std::initializer_list<std::string_view> args) {
    AppendCommand(std::span<const std::string_view>(args.begin(), args.size()));
  }
  // Queues `head` args, one bulk argument made of `bulk` (referenced, not copied: the bytes
  // must stay valid and unchanged until Flush returns), then `tail` args.
  void AppendCommandWithBulk(std::span<const std::string_view> head,
                             std::span<const std::span<const std::byte>> bulk,
                             std::span<const std::string_view> tail);
  // Bytes queued and not yet flushed.
  size_t queued_bytes() const { return queued_bytes_; }
  // Sends everything queued. TimedOut when the server accepts no byte for io_timeout.
  Status Flush();

  // Reads the next reply (hiredis parses it). Error replies are returned as replies of
  // type REDIS_REPLY_ERROR, not as a failed Status; a failed Status means the connection
  // broke (closed, reset, timed out, or a protocol error).
  Result<RedisReply> ReadReply();
  // Reads the next reply, expected to be a bulk string of head.size() + tail.size() bytes
  // (or nil, or an error): its first head.size() bytes land in `head`, the rest in `tail`,
  // without passing through hiredis or any intermediate buffer for the large part.
  Result<RedisBulkReply> ReadBulkInto(std::span<std::byte> head, std::span<std::byte> tail);

  // Queues `args`, flushes and reads the reply: for control commands.
  Result<RedisReply> Command(std::initializer_list<std::string_view> args);

 private:
  RedisConnection(RedisEndpoint endpoint, const RedisConnectionOptions& options, int fd);

  Status Handshake(std::chrono::steady_clock::time_point deadline, const std::string& host);
  Status Authenticate();
  // Waits until the socket is ready for `events` (POLLIN/POLLOUT) or `timeout` passes.
  Status Wait(short events, std::chrono::milliseconds timeout, std::string_view what);
  // Sends / receives at least one byte (waiting up to io_timeout for progress).
  Result<size_t> SendSome(const ::iovec* iov, int count);
  Result<size_t> RecvSome(char* data, size_t size);
  // Reads more bytes into the read buffer.
  Status Fill();
  // Moves bytes the hiredis reader holds beyond its last reply back into the read buffer.
  void ReclaimReaderBytes();
  // The next "\r\n"-terminated line from the read buffer, without its terminator.
  Result<std::string_view> ReadLine();
  // Copies the next `size` bytes of the stream to `out` (null: discards them).
  Status ReadExact(std::byte* out, size_t size);
  Status Broken(Status status);
  void AppendBytes(std::string_view bytes);

  RedisEndpoint endpoint_;
  std::string name_;
  RedisConnectionOptions options_;
  int fd_ = -1;
  ssl_st* ssl_ = nullptr;
  bool broken_ = false;

  // Outgoing: copied bytes live in out_; a segment refers to out_ (data == nullptr, at
  // offset) or to caller memory.
  struct Segment {
    const std::byte* data;
    size_t offset;
    size_t size;
  };
  std::string out_;
  std::vector<Segment> segments_;
  size_t queued_bytes_ = 0;

  // Incoming: bytes [in_begin_, in_end_) of in_ are received but not yet consumed.
  std::vector<char> in_;
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  RedisReplyBudget reply_budget_;  // of reader_
  redisReader* reader_ = nullptr;
};

}  // namespace strata::remote
