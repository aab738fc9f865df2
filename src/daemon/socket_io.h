// Frames over a Unix stream socket: whole-frame send and receive, a descriptor passed beside
// a frame (SCM_RIGHTS), and the peer's credentials.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "daemon/protocol.h"
#include "strata/status.h"

namespace strata::daemon {

// Sends header and payload, all of it; with pass_fd >= 0 the descriptor travels with the
// frame's first byte. Unavailable when the peer is gone, TimedOut past SO_SNDTIMEO.
Status SendFrame(int sock, MessageType type, uint32_t seq, std::span<const std::byte> payload,
                 int pass_fd = -1);

// Receives one frame. A descriptor that came with it is stored in *received_fd (when
// non-null; -1 when none came) or closed. Unavailable on end of stream, TimedOut past
// SO_RCVTIMEO, InvalidArgument for a malformed header (the stream cannot be resynchronised).
Status RecvFrame(int sock, FrameHeader* header, std::vector<std::byte>* payload,
                 int* received_fd = nullptr);

// SO_RCVTIMEO and SO_SNDTIMEO; 0 waits forever.
void SetSocketTimeouts(int sock, std::chrono::milliseconds timeout);

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
Result<PeerCredentials> GetPeerCredentials(int sock);

// Connects to the Unix socket at `path` (SOCK_CLOEXEC). Unavailable with the reason.
Result<int> ConnectUnix(const std::string& path);

}  // namespace strata::daemon
