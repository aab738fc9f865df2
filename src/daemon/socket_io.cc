// Frames over Unix stream sockets (see socket_io.h).
#include "daemon/socket_io.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

namespace strata::daemon {
namespace {

Status SocketError(std::string_view what, int err) {
  if (err == EAGAIN || err == EWOULDBLOCK)
    return Status::TimedOut(fmt::format("{}: no answer within the timeout", what));
  if (err == EPIPE || err == ECONNRESET || err == ENOTCONN)
    return Status::Unavailable(fmt::format("{}: the peer closed the connection", what));
  return Status::IoError(what, err);
}

}  // namespace

Status SendFrame(int sock, MessageType type, uint32_t seq, std::span<const std::byte> payload,
                 int pass_fd) {
  std::byte header[kHeaderBytes];
  EncodeHeader({.type = type, .length = static_cast<uint32_t>(payload.size()), .seq = seq}, header);
  iovec iov[2] = {{header, kHeaderBytes}, {const_cast<std::byte*>(payload.data()), payload.size()}};
  size_t sent = 0;
  const size_t total = kHeaderBytes + payload.size();
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  while (sent < total) {
    msghdr msg{};
    iovec part[2];
    int parts = 0;
    if (sent < kHeaderBytes) {
      part[parts++] = {header + sent, kHeaderBytes - sent};
      if (!payload.empty()) part[parts++] = iov[1];
    } else {
      const size_t off = sent - kHeaderBytes;
      part[parts++] = {const_cast<std::byte*>(payload.data()) + off, payload.size() - off};
    }
    msg.msg_iov = part;
    msg.msg_iovlen = static_cast<size_t>(parts);
    if (sent == 0 && pass_fd >= 0) {
      std::memset(control, 0, sizeof control);
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    const ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return SocketError("sending to the strata daemon socket", errno);
    }
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

namespace {

// Reads exactly `n` bytes; the first descriptor that arrives goes to *fd.
Status ReadFully(int sock, std::byte* out, size_t n, int* fd) {
  size_t got = 0;
  while (got < n) {
    iovec iov{out + got, n - got};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR) continue;
      return SocketError("receiving from the strata daemon socket", errno);
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int passed;
        std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (*fd < 0) {
          *fd = passed;
        } else {
          close(passed);  // one descriptor a frame; more is not ours to keep
        }
      }
    }
    if (r == 0)
      return Status::Unavailable(got == 0 && n == kHeaderBytes
                                     ? "the peer closed the connection"
                                     : "the peer closed the connection in the middle of a frame");
    got += static_cast<size_t>(r);
  }
  return Status::Ok();
}

}  // namespace

Status RecvFrame(int sock, FrameHeader* header, std::vector<std::byte>* payload, int* received_fd) {
  int fd = -1;
  std::byte raw[kHeaderBytes];
  Status st = ReadFully(sock, raw, kHeaderBytes, &fd);
  if (st.ok()) {
    Result<FrameHeader> h = DecodeHeader(raw);
    if (!h.ok()) {
      st = h.status();
    } else {
      *header = *h;
      payload->resize(h->length);
      st = ReadFully(sock, payload->data(), h->length, &fd);
    }
  }
  if (received_fd != nullptr && st.ok()) {
    *received_fd = fd;
  } else if (fd >= 0) {
    close(fd);
  }
  return st;
}

void SetSocketTimeouts(int sock, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Result<PeerCredentials> GetPeerCredentials(int sock) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return Status::IoError("SO_PEERCRED", errno);
  return PeerCredentials{.pid = cred.pid, .uid = cred.uid, .gid = cred.gid};
}

Result<int> ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return Status::InvalidArgument(fmt::format("socket path '{}' is too long", path));
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError("socket(AF_UNIX)", errno);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    close(fd);
    return Status::Unavailable(fmt::format(
        "no strata daemon at {}: {}{}", path, std::strerror(err),
        err == ENOENT || err == ECONNREFUSED ? " (is `strata daemon --socket` running?)" : ""));
  }
  return fd;
}

}  // namespace strata::daemon
