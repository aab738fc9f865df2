// The `strata daemon` wire protocol (docs/daemon_protocol.md): length-prefixed binary frames
// over a Unix stream socket, each request answered by one response with the same sequence
// number. This file holds the frame header, the message types and a bounds-checked reader and
// writer; the daemon (daemon_server.cc) and its client (remote_tiers.cc) give them meaning.
//
// Everything is little-endian. Every count a peer sends is checked against the bytes that
// remain before anything is allocated, so a hostile frame costs at most its own size.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/block_key.h"
#include "strata/status.h"

namespace strata::daemon {

inline constexpr uint32_t kMagic = 0x44525453;  // "STRD"
inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kHeaderBytes = 16;
// Largest payload either side accepts: 16 MiB (a Match of 500k blocks).
inline constexpr uint32_t kMaxPayload = 16u << 20;

enum class MessageType : uint16_t {
  kHello = 1,            // -> kHelloOk (+ the G2 memfd on a session's first socket)
  kMatch = 2,            // keys -> leased prefix
  kRelease = 3,          // leases -> kOk
  kReserve = 4,          // keys -> reservations
  kFinishStore = 5,      // (slot, ok) -> kOk
  kPrepareLoad = 6,      // held blocks -> a load round
  kFinishLoad = 7,       // round id -> kOk
  kPin = 8,              // keys -> kOk
  kFlush = 9,            // -> kOk
  kStats = 10,           // -> kStatsOk
  kReleaseQuietly = 11,  // leases -> no reply (an error still closes the connection)
  kHelloOk = 101,
  kMatchOk = 102,
  kReserveOk = 104,
  kPrepareLoadOk = 106,
  kStatsOk = 110,
  kOk = 120,
  kError = 121,  // status code + message; after a protocol error the daemon closes
};
std::string_view MessageTypeName(MessageType type);

struct FrameHeader {
  uint32_t magic = kMagic;
  uint16_t version = kVersion;
  MessageType type = MessageType::kError;
  uint32_t length = 0;  // payload bytes after the header
  uint32_t seq = 0;     // a response carries its request's
};

void EncodeHeader(const FrameHeader& h, std::byte out[kHeaderBytes]);
// InvalidArgument for a bad magic, an unknown version or a payload over kMaxPayload.
Result<FrameHeader> DecodeHeader(std::span<const std::byte> in);

// Appends little-endian fields to a payload.
class Writer {
 public:
  void U8(uint8_t v) { Raw(&v, 1); }
  void U16(uint16_t v) { Raw(&v, 2); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void Key(const BlockKey& k) { Raw(k.bytes.data(), k.bytes.size()); }
  void Bytes(std::string_view s) {  // u32 length + bytes
    U32(static_cast<uint32_t>(s.size()));
    Raw(s.data(), s.size());
  }
  void Reserve(size_t bytes) { buf_.reserve(bytes); }
  const std::vector<std::byte>& data() const { return buf_; }
  std::vector<std::byte>& data() { return buf_; }

 private:
  void Raw(const void* p, size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    buf_.insert(buf_.end(), b, b + n);  // appends without zero-filling first
  }
  std::vector<std::byte> buf_;
};

// Reads fields back; the first read past the end fails the reader (ok() false) and every
// later read returns zeros, so a decoder checks once at the end.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  uint8_t U8() { return Get<uint8_t>(); }
  uint16_t U16() { return Get<uint16_t>(); }
  uint32_t U32() { return Get<uint32_t>(); }
  uint64_t U64() { return Get<uint64_t>(); }
  BlockKey Key() {
    BlockKey k;
    Raw(k.bytes.data(), k.bytes.size());
    return k;
  }
  std::string Bytes(size_t max) {
    const uint32_t n = U32();
    if (n > max || n > remaining()) {
      failed_ = true;
      return {};
    }
    std::string s(n, '\0');
    Raw(s.data(), n);
    return s;
  }
  // A count of entries of `entry_bytes` each that must fit in what remains (and `max`).
  uint32_t Count(size_t entry_bytes, size_t max) {
    const uint32_t n = U32();
    if (n > max || size_t{n} * entry_bytes > remaining()) {
      failed_ = true;
      return 0;
    }
    return n;
  }
  size_t remaining() const { return failed_ ? 0 : in_.size() - at_; }
  bool ok() const { return !failed_; }
  // OK when every read fit and nothing is left over; else InvalidArgument naming `what`.
  Status Finish(std::string_view what) const;

 private:
  template <class T>
  T Get() {
    T v{};
    Raw(&v, sizeof v);
    return v;
  }
  void Raw(void* p, size_t n) {
    if (failed_ || n > in_.size() - at_) {
      failed_ = true;
      std::memset(p, 0, n);
      return;
    }
    if (n > 0) std::memcpy(p, in_.data() + at_, n);
    at_ += n;
  }
  std::span<const std::byte> in_;
  size_t at_ = 0;
  bool failed_ = false;
};

// A Status as an kError payload and back (the code travels as its number).
void EncodeError(const Status& status, Writer* w);
Status DecodeError(std::span<const std::byte> payload);

// Limits of one message.
inline constexpr size_t kMaxKeys = kMaxPayload / 32;
inline constexpr size_t kMaxMessage = 4096;  // bytes of a string field

}  // namespace strata::daemon
