// libFuzzer harness: RedisConnection's reply reading over a real socket — ReadReply (hiredis
// fed from Strata's buffers) and ReadBulkInto (Strata's own bulk-reply parser, which
// receives a GET's value straight into the caller's buffers), interleaved as a pipeline
// would, so the hand-over of buffered bytes between the two (ReclaimReaderBytes) is fuzzed.
//
// Input: one byte n, then 1 + n % 8 operation bytes, then the server's byte stream. An
// operation byte with bit 0 clear is a ReadReply; with it set, a ReadBulkInto expecting
// (b >> 1) & 7 head bytes and b >> 4 tail bytes. The harness is the server: it accepts the
// connection on loopback, sends the stream and closes, so the client sees it and then EOF.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "redis_fuzz_util.h"
#include "remote/redis_connection.h"

using strata::remote::RedisBulkReply;
using strata::remote::RedisConnection;

namespace {

// The stream must fit the socket buffers: the client reads only after all of it is sent.
constexpr size_t kMaxStreamBytes = 64 << 10;

void Die(const char* what) {
  std::perror(what);
  std::abort();
}

// A loopback listener for the whole run; returns its port.
uint16_t ListenOnce(int* listen_fd) {
  *listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (*listen_fd < 0) Die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(*listen_fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) Die("bind");
  if (listen(*listen_fd, 16) != 0) Die("listen");
  if (getsockname(*listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) Die("getsockname");
  return ntohs(addr.sin_port);
}

void SendAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) Die("send");
    data += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int listen_fd = -1;
  static const uint16_t port = ListenOnce(&listen_fd);
  if (size == 0) return 0;
  const size_t num_ops = std::min<size_t>(1 + data[0] % 8, size - 1);
  const uint8_t* ops = data + 1;
  const uint8_t* stream = ops + num_ops;
  const size_t stream_size = std::min(size - 1 - num_ops, kMaxStreamBytes);

  strata::remote::RedisConnectionOptions options;
  options.io_timeout = std::chrono::milliseconds(1000);  // a hang guard: EOF comes first
  strata::Result<std::unique_ptr<RedisConnection>> conn =
      RedisConnection::Connect(strata::remote::RedisEndpoint{"127.0.0.1", port}, options);
  if (!conn.ok()) Die(conn.status().message().c_str());
  const int server = accept(listen_fd, nullptr, nullptr);
  if (server < 0) Die("accept");
  SendAll(server, stream, stream_size);
  shutdown(server, SHUT_WR);

  for (size_t i = 0; i < num_ops && !(*conn)->broken(); ++i) {
    if ((ops[i] & 1) == 0) {
      strata::Result<strata::remote::RedisReply> reply = (*conn)->ReadReply();
      if (reply.ok()) strata::fuzz::CheckReply(**reply);
      continue;
    }
    std::vector<std::byte> head((ops[i] >> 1) & 7), tail(ops[i] >> 4);
    strata::Result<RedisBulkReply> bulk = (*conn)->ReadBulkInto(head, tail);
    if (!bulk.ok()) continue;
    if (bulk->kind == RedisBulkReply::Kind::kValue && bulk->length != head.size() + tail.size())
      std::abort();
    if (bulk->kind == RedisBulkReply::Kind::kWrongLength &&
        bulk->length == head.size() + tail.size())
      std::abort();
    if (bulk->kind == RedisBulkReply::Kind::kError) strata::fuzz::CheckReplyText(bulk->error);
  }
  // Abort the server side (RST, no TIME_WAIT) so a long run never runs out of ports.
  const linger abort_on_close{1, 0};
  setsockopt(server, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  close(server);
  return 0;
}
