#include "remote/redis_connection.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>

#include <fmt/format.h>

namespace strata::remote {
namespace {

using Clock = std::chrono::steady_clock;

// Replies and lines are small except bulk strings, which ReadExact streams; the read buffer
// starts at this size and grows only for an oversized line (up to kMaxLineBytes).
constexpr size_t kReadBufferBytes = 256 << 10;
constexpr size_t kMaxLineBytes = 1 << 20;
// A remaining bulk of at least this many bytes is received straight into the caller's
// buffer instead of through the read buffer.
constexpr size_t kDirectReadBytes = 64 << 10;

std::string ErrnoText(int err) {
  const char* name = strerrorname_np(err);
  return fmt::format("{} ({})", strerror(err), name ? name : "errno?");
}

// The oldest OpenSSL error on this thread's queue, or `fallback` when there is none.
std::string SslErrorText(std::string_view fallback) {
  const unsigned long err = ERR_get_error();
  ERR_clear_error();
  if (err == 0) return std::string(fallback);
  char text[256];
  ERR_error_string_n(err, text, sizeof(text));
  return text;
}

bool IsIpLiteral(const std::string& host) {
  in6_addr addr;
  return inet_pton(AF_INET, host.c_str(), &addr) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &addr) == 1;
}

// An OpenSSL BIO over our non-blocking socket that sends with MSG_NOSIGNAL: OpenSSL's own
// socket BIO uses write(), which raises SIGPIPE (killing the process) when the server has
// gone, and a library must not change the process's signal dispositions.
int BioWrite(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  const ssize_t n = send(fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(bio);
    return -1;
  }
  return static_cast<int>(n);
}

int BioRead(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  const ssize_t n = recv(fd, data, static_cast<size_t>(size), 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(bio);
    return -1;
  }
  return static_cast<int>(n);
}

long BioCtrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* NoSigpipeBioMethod() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "strata-socket");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

void AppendArg(std::string* out, std::string_view arg) {
  fmt::format_to(std::back_inserter(*out), "${}\r\n", arg.size());
  out->append(arg);
  out->append("\r\n");
}

}  // namespace

// --- RedisTlsContext --------------------------------------------------------------------

Result<std::shared_ptr<RedisTlsContext>> RedisTlsContext::Create(const Options& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return Status::Internal(fmt::format("SSL_CTX_new: {}", SslErrorText("out of memory")));
  std::shared_ptr<RedisTlsContext> context(new RedisTlsContext(ctx, options.verify_peer));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  auto file_error = [](std::string_view what, const std::string& path) {
    const std::string reason =
        access(path.c_str(), R_OK) != 0 ? ErrnoText(errno) : SslErrorText("unreadable");
    return Status::InvalidArgument(fmt::format("redis TLS {} '{}': {}", what, path, reason));
  };
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1)
      return file_error("CA file", options.ca_file);
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return Status::InvalidArgument(
        fmt::format("redis TLS: cannot load the system CA paths: {}", SslErrorText("unknown")));
  }
  if (options.cert_file.empty() != options.key_file.empty())
    return Status::InvalidArgument(
        "redis TLS: a client certificate needs both cert_file and key_file");
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1)
      return file_error("certificate file", options.cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return file_error("key file", options.key_file);
    if (SSL_CTX_check_private_key(ctx) != 1)
      return Status::InvalidArgument(
          fmt::format("redis TLS: key file '{}' does not match certificate '{}': {}",
                      options.key_file, options.cert_file, SslErrorText("mismatch")));
  }
  SSL_CTX_set_verify(ctx, options.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return context;
}

RedisTlsContext::~RedisTlsContext() {
  SSL_CTX_free(ctx_);
}

// --- RedisConnection: set-up ------------------------------------------------------------

RedisConnection::RedisConnection(RedisEndpoint endpoint, const RedisConnectionOptions& options,
                                 int fd)
    : endpoint_(std::move(endpoint)),
      name_(endpoint_.ToString()),
      options_(options),
      fd_(fd),
      in_(kReadBufferBytes),
      reader_(CreateRedisReplyReader(&reply_budget_)) {}

RedisConnection::~RedisConnection() {
  if (ssl_) SSL_free(ssl_);  // frees the BIO too
  if (fd_ >= 0) close(fd_);
  if (reader_) redisReaderFree(reader_);
}

Result<std::unique_ptr<RedisConnection>> RedisConnection::Connect(
    const RedisEndpoint& endpoint, const RedisConnectionOptions& options) {
  const Clock::time_point deadline = Clock::now() + options.connect_timeout;
  const std::string name = endpoint.ToString();

  // Name resolution: numeric hosts resolve at once; a host name goes through the system
  // resolver, whose own timeouts (resolv.conf) bound it rather than connect_timeout.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (IsIpLiteral(endpoint.host) ? AI_NUMERICHOST : 0);
  addrinfo* addresses = nullptr;
  const std::string port = std::to_string(endpoint.port);
  if (const int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &addresses); rc != 0)
    return Status::Unavailable(
        fmt::format("redis {}: cannot resolve '{}': {}", name, endpoint.host, gai_strerror(rc)));

  std::unique_ptr<RedisConnection> conn;
  Status last = Status::Unavailable(fmt::format("redis {}: no address to connect to", name));
  for (addrinfo* ai = addresses; ai && !conn; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = Status::IoError(fmt::format("redis {}: socket", name), errno);
      continue;
    }
    // Pipelined commands and replies must not wait for Nagle's algorithm.
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd p{fd, POLLOUT, 0};
        int ready;
        do {
          ready = poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
        } while (ready < 0 && errno == EINTR);
        if (ready == 0) {
          close(fd);
          last = Status::TimedOut(fmt::format("redis {}: connect timed out after {} ms", name,
                                              options.connect_timeout.count()));
          continue;
        }
        socklen_t len = sizeof(err);
        err = 0;
        if (ready < 0)
          err = errno;
        else
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
    if (err != 0) {
      close(fd);
      last = Status::Unavailable(fmt::format("redis {}: connect: {}", name, ErrnoText(err)));
      continue;
    }
    conn.reset(new RedisConnection(endpoint, options, fd));
  }
  freeaddrinfo(addresses);
  if (!conn) return last;

  if (options.tls) {
    const std::string host =
        options.tls_server_name.empty() ? endpoint.host : options.tls_server_name;
    STRATA_RETURN_IF_ERROR(conn->Handshake(deadline, host));
  }
  if (!options.password.empty()) STRATA_RETURN_IF_ERROR(conn->Authenticate());
  return conn;
}

Status RedisConnection::Handshake(Clock::time_point deadline, const std::string& host) {
  ssl_ = SSL_new(options_.tls->ctx());
  if (!ssl_) return Status::Internal(fmt::format("SSL_new: {}", SslErrorText("out of memory")));
  BIO* bio = BIO_new(NoSigpipeBioMethod());
  if (!bio) return Status::Internal(fmt::format("BIO_new: {}", SslErrorText("out of memory")));
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd_)));
  SSL_set_bio(ssl_, bio, bio);
  // Flush and RecvSome handle partial progress themselves, like with a plain socket.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  const bool ip = IsIpLiteral(host);
  if (!ip) SSL_set_tlsext_host_name(ssl_, host.c_str());  // SNI takes names only
  if (options_.tls->verify_peer()) {
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str())
                      : SSL_set1_host(ssl_, host.c_str());
    if (ok != 1)
      return Status::InvalidArgument(
          fmt::format("redis {}: TLS server name '{}' is not usable", name_, host));
  }
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_connect(ssl_);
    if (rc == 1) return Status::Ok();
    const int err = SSL_get_error(ssl_, rc);
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && left.count() > 0) {
      Status waited = Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left, "TLS handshake");
      if (!waited.ok()) return Broken(std::move(waited));
      continue;
    }
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
      return Broken(Status::TimedOut(fmt::format("redis {}: TLS handshake timed out after {} ms",
                                                 name_, options_.connect_timeout.count())));
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK)
      return Broken(Status::InvalidArgument(
          fmt::format("redis {}: TLS certificate verification failed (server name '{}'): {}", name_,
                      host, X509_verify_cert_error_string(verify))));
    const std::string reason =
        err == SSL_ERROR_SYSCALL && errno != 0 ? ErrnoText(errno) : SslErrorText("closed");
    return Broken(
        Status::Unavailable(fmt::format("redis {}: TLS handshake failed: {}", name_, reason)));
  }
}

Status RedisConnection::Authenticate() {
  Result<RedisReply> reply = options_.username.empty()
                                 ? Command({"AUTH", options_.password})
                                 : Command({"AUTH", options_.username, options_.password});
  if (!reply.ok()) return reply.status().WithContext("AUTH");
  if ((*reply)->type == REDIS_REPLY_ERROR)
    return Status::InvalidArgument(
        fmt::format("redis {} rejected AUTH{}: {}", name_,
                    options_.username.empty() ? "" : " as user '" + options_.username + "'",
                    std::string_view((*reply)->str, (*reply)->len)));
  return Status::Ok();
}

// --- I/O --------------------------------------------------------------------------------

Status RedisConnection::Broken(Status status) {
  broken_ = true;
  return status;
}

Status RedisConnection::Wait(short events, std::chrono::milliseconds timeout,
                             std::string_view what) {
  const Clock::time_point deadline = Clock::now() + timeout;
  pollfd p{fd_, events, 0};
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    const int ready = poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    // Readiness includes POLLERR/POLLHUP: the next call reports the error itself.
    if (ready > 0) return Status::Ok();
    if (ready == 0)
      return Status::TimedOut(
          fmt::format("redis {}: {} made no progress for {} ms", name_, what, timeout.count()));
    if (errno != EINTR) return Status::IoError(fmt::format("redis {}: poll", name_), errno);
  }
}

Result<size_t> RedisConnection::SendSome(const iovec* iov, int count) {
  for (;;) {
    if (ssl_) {
      // TLS sends one buffer at a time; SSL_MODE_ENABLE_PARTIAL_WRITE returns partial counts.
      while (count > 0 && iov->iov_len == 0) ++iov, --count;
      if (count == 0) return size_t{0};
      ERR_clear_error();
      const int n =
          SSL_write(ssl_, iov->iov_base, static_cast<int>(std::min<size_t>(iov->iov_len, INT_MAX)));
      if (n > 0) return static_cast<size_t>(n);
      const int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        if (Status s =
                Wait(err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, options_.io_timeout, "send");
            !s.ok())
          return Broken(std::move(s));
        continue;
      }
      const std::string reason =
          err == SSL_ERROR_SYSCALL && errno != 0 ? ErrnoText(errno) : SslErrorText("closed");
      return Broken(Status::Unavailable(fmt::format("redis {}: TLS send: {}", name_, reason)));
    }
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<size_t>(count);
    const ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return Broken(
          Status::Unavailable(fmt::format("redis {}: send: {}", name_, ErrnoText(errno))));
    if (Status s = Wait(POLLOUT, options_.io_timeout, "send"); !s.ok()) return Broken(std::move(s));
  }
}

Result<size_t> RedisConnection::RecvSome(char* data, size_t size) {
  for (;;) {
    if (ssl_) {
      ERR_clear_error();
      const int n = SSL_read(ssl_, data, static_cast<int>(std::min<size_t>(size, INT_MAX)));
      if (n > 0) return static_cast<size_t>(n);
      const int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (Status s =
                Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, options_.io_timeout, "receive");
            !s.ok())
          return Broken(std::move(s));
        continue;
      }
      if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0))
        return Broken(Status::Unavailable(fmt::format("redis {} closed the connection", name_)));
      const std::string reason =
          err == SSL_ERROR_SYSCALL ? ErrnoText(errno) : SslErrorText("unknown TLS error");
      return Broken(Status::Unavailable(fmt::format("redis {}: TLS receive: {}", name_, reason)));
    }
    const ssize_t n = recv(fd_, data, size, 0);
    if (n > 0) return static_cast<size_t>(n);
    if (n == 0)
      return Broken(Status::Unavailable(fmt::format("redis {} closed the connection", name_)));
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return Broken(
          Status::Unavailable(fmt::format("redis {}: receive: {}", name_, ErrnoText(errno))));
    if (Status s = Wait(POLLIN, options_.io_timeout, "receive"); !s.ok())
      return Broken(std::move(s));
  }
}

void RedisConnection::AppendBytes(std::string_view bytes) {
  if (!segments_.empty() && segments_.back().data == nullptr &&
      segments_.back().offset + segments_.back().size == out_.size())
    segments_.back().size += bytes.size();
  else
    segments_.push_back({nullptr, out_.size(), bytes.size()});
  out_.append(bytes);
  queued_bytes_ += bytes.size();
}

void RedisConnection::AppendCommand(std::span<const std::string_view> args) {
  std::vector<const char*> argv(args.size());
  std::vector<size_t> argvlen(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    argvlen[i] = args[i].size();
  }
  sds command = nullptr;
  const int len = redisFormatSdsCommandArgv(&command, static_cast<int>(args.size()), argv.data(),
                                            argvlen.data());
  if (len < 0) {  // only on allocation failure
    broken_ = true;
    return;
  }
  AppendBytes(std::string_view(command, static_cast<size_t>(len)));
  redisFreeSdsCommand(command);
}

void RedisConnection::AppendCommandWithBulk(std::span<const std::string_view> head,
                                            std::span<const std::span<const std::byte>> bulk,
                                            std::span<const std::string_view> tail) {
  // The same RESP framing redisFormatCommandArgv writes, with the bulk argument referenced.
  size_t bulk_bytes = 0;
  for (const auto& part : bulk) bulk_bytes += part.size();
  std::string text = fmt::format("*{}\r\n", head.size() + 1 + tail.size());
  for (std::string_view arg : head) AppendArg(&text, arg);
  fmt::format_to(std::back_inserter(text), "${}\r\n", bulk_bytes);
  AppendBytes(text);
  for (const auto& part : bulk) {
    if (part.empty()) continue;
    segments_.push_back({part.data(), 0, part.size()});
    queued_bytes_ += part.size();
  }
  text = "\r\n";
  for (std::string_view arg : tail) AppendArg(&text, arg);
  AppendBytes(text);
}

Status RedisConnection::Flush() {
  if (broken_) {
    out_.clear();
    segments_.clear();
    queued_bytes_ = 0;
    return Status::Unavailable(fmt::format("redis {}: connection is broken", name_));
  }
  std::vector<iovec> iov(segments_.size());
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    iov[i].iov_base = const_cast<std::byte*>(
        s.data ? s.data : reinterpret_cast<const std::byte*>(out_.data() + s.offset));
    iov[i].iov_len = s.size;
  }
  Status status;
  size_t i = 0;
  while (i < iov.size()) {
    Result<size_t> sent =
        SendSome(&iov[i], static_cast<int>(std::min<size_t>(iov.size() - i, IOV_MAX)));
    if (!sent.ok()) {
      status = sent.status();
      break;
    }
    // Step past what was sent: whole buffers, then into a partially sent one.
    for (size_t n = *sent; n > 0;) {
      if (n >= iov[i].iov_len) {
        n -= iov[i].iov_len;
        ++i;
      } else {
        iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + n;
        iov[i].iov_len -= n;
        n = 0;
      }
    }
    while (i < iov.size() && iov[i].iov_len == 0) ++i;
  }
  out_.clear();
  segments_.clear();
  queued_bytes_ = 0;
  return status;
}

Status RedisConnection::Fill() {
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
  if (in_end_ == in_.size()) {
    if (in_begin_ > 0) {
      std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
      in_end_ -= in_begin_;
      in_begin_ = 0;
    } else {
      if (in_.size() >= kMaxLineBytes)
        return Broken(Status::Corruption(
            fmt::format("redis {}: protocol error: a reply line is longer than {} bytes", name_,
                        kMaxLineBytes)));
      in_.resize(in_.size() * 2);
    }
  }
  STRATA_ASSIGN_OR_RETURN(const size_t n, RecvSome(in_.data() + in_end_, in_.size() - in_end_));
  in_end_ += n;
  return Status::Ok();
}

Result<RedisReply> RedisConnection::ReadReply() {
  if (broken_) return Status::Unavailable(fmt::format("redis {}: connection is broken", name_));
  for (;;) {
    if (in_end_ > in_begin_) {
      if (redisReaderFeed(reader_, in_.data() + in_begin_, in_end_ - in_begin_) != REDIS_OK)
        return Broken(Status::Internal(
            fmt::format("redis {}: reader: {}", name_, redisReaderGetError(reader_))));
      in_begin_ = in_end_ = 0;
    }
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
      if (reply_budget_.exceeded)
        return Broken(Status::Corruption(
            fmt::format("redis {}: protocol error: a reply of more than {} array elements", name_,
                        kMaxRedisReplyElements)));
      return Broken(Status::Corruption(
          fmt::format("redis {}: protocol error: {}", name_, redisReaderGetError(reader_))));
    }
    if (reply) return RedisReply(static_cast<redisReply*>(reply));
    STRATA_RETURN_IF_ERROR(Fill());
  }
}

void RedisConnection::ReclaimReaderBytes() {
  // ReadReply hands the reader every received byte; what it holds beyond the reply it
  // returned belongs to the following replies. redisReader's buf/pos/len are public fields.
  const size_t held = reader_->len - reader_->pos;
  if (held == 0) return;
  const size_t buffered = in_end_ - in_begin_;
  std::vector<char> bytes(held + buffered);
  std::memcpy(bytes.data(), reader_->buf + reader_->pos, held);
  std::memcpy(bytes.data() + held, in_.data() + in_begin_, buffered);
  if (in_.size() < bytes.size()) in_.resize(bytes.size());
  std::memcpy(in_.data(), bytes.data(), bytes.size());
  in_begin_ = 0;
  in_end_ = bytes.size();
  redisReaderFree(reader_);
  reader_ = CreateRedisReplyReader(&reply_budget_);
}

Result<std::string_view> RedisConnection::ReadLine() {
  size_t scanned = in_begin_;
  for (;;) {
    for (size_t i = scanned; i + 1 < in_end_; ++i) {
      if (in_[i] == '\r' && in_[i + 1] == '\n') {
        std::string_view line(in_.data() + in_begin_, i - in_begin_);
        in_begin_ = i + 2;
        return line;
      }
    }
    const size_t offset = (in_end_ > in_begin_ ? in_end_ - 1 : in_begin_) - in_begin_;
    STRATA_RETURN_IF_ERROR(Fill());  // may move the buffered bytes to the front
    scanned = in_begin_ + offset;
  }
}

Status RedisConnection::ReadExact(std::byte* out, size_t size) {
  while (size > 0) {
    if (in_end_ > in_begin_) {
      const size_t take = std::min(size, in_end_ - in_begin_);
      if (out) {
        std::memcpy(out, in_.data() + in_begin_, take);
        out += take;
      }
      in_begin_ += take;
      size -= take;
    } else if (out && size >= kDirectReadBytes) {
      STRATA_ASSIGN_OR_RETURN(const size_t n, RecvSome(reinterpret_cast<char*>(out), size));
      out += n;
      size -= n;
    } else {
      STRATA_RETURN_IF_ERROR(Fill());
    }
  }
  return Status::Ok();
}

Result<RedisBulkReply> RedisConnection::ReadBulkInto(std::span<std::byte> head,
                                                     std::span<std::byte> tail) {
  if (broken_) return Status::Unavailable(fmt::format("redis {}: connection is broken", name_));
  ReclaimReaderBytes();
  auto protocol_error = [&](std::string_view line) {
    return Broken(Status::Corruption(fmt::format(
        "redis {}: protocol error: expected a bulk reply, got '{}'", name_, line.substr(0, 64))));
  };
  STRATA_ASSIGN_OR_RETURN(const std::string_view line, ReadLine());
  RedisBulkReply reply;
  if (line.empty()) return protocol_error(line);
  if (line[0] == '-') {
    reply.kind = RedisBulkReply::Kind::kError;
    reply.error = std::string(line.substr(1));
    return reply;
  }
  int64_t length = 0;
  const auto [end, ec] = std::from_chars(line.data() + 1, line.data() + line.size(), length);
  if (line[0] != '$' || ec != std::errc() || end != line.data() + line.size())
    return protocol_error(line);
  if (length < 0) {
    reply.kind = RedisBulkReply::Kind::kNil;
    return reply;
  }
  reply.length = static_cast<uint64_t>(length);
  if (reply.length == head.size() + tail.size()) {
    reply.kind = RedisBulkReply::Kind::kValue;
    STRATA_RETURN_IF_ERROR(ReadExact(head.data(), head.size()));
    STRATA_RETURN_IF_ERROR(ReadExact(tail.data(), tail.size()));
  } else {
    reply.kind = RedisBulkReply::Kind::kWrongLength;
    const size_t keep = std::min<uint64_t>(reply.length, head.size());
    STRATA_RETURN_IF_ERROR(ReadExact(head.data(), keep));
    STRATA_RETURN_IF_ERROR(ReadExact(nullptr, reply.length - keep));
  }
  std::byte crlf[2];
  STRATA_RETURN_IF_ERROR(ReadExact(crlf, 2));
  if (crlf[0] != std::byte{'\r'} || crlf[1] != std::byte{'\n'})
    return Broken(Status::Corruption(
        fmt::format("redis {}: protocol error: bulk reply not terminated by CRLF", name_)));
  return reply;
}

Result<RedisReply> RedisConnection::Command(std::initializer_list<std::string_view> args) {
  AppendCommand(args);
  STRATA_RETURN_IF_ERROR(Flush());
  return ReadReply();
}

}  // namespace strata::remote
