// The daemon wire protocol's framing and field codec (see protocol.h).
#include "daemon/protocol.h"

#include <fmt/format.h>

namespace strata::daemon {

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "hello";
    case MessageType::kMatch:
      return "match";
    case MessageType::kRelease:
      return "release";
    case MessageType::kReserve:
      return "reserve";
    case MessageType::kFinishStore:
      return "finish_store";
    case MessageType::kPrepareLoad:
      return "prepare_load";
    case MessageType::kFinishLoad:
      return "finish_load";
    case MessageType::kPin:
      return "pin";
    case MessageType::kFlush:
      return "flush";
    case MessageType::kStats:
      return "stats";
    case MessageType::kReleaseQuietly:
      return "release_quietly";
    case MessageType::kHelloOk:
      return "hello_ok";
    case MessageType::kMatchOk:
      return "match_ok";
    case MessageType::kReserveOk:
      return "reserve_ok";
    case MessageType::kPrepareLoadOk:
      return "prepare_load_ok";
    case MessageType::kStatsOk:
      return "stats_ok";
    case MessageType::kOk:
      return "ok";
    case MessageType::kError:
      return "error";
  }
  return "unknown";
}

void EncodeHeader(const FrameHeader& h, std::byte out[kHeaderBytes]) {
  Writer w;
  w.U32(h.magic);
  w.U16(h.version);
  w.U16(static_cast<uint16_t>(h.type));
  w.U32(h.length);
  w.U32(h.seq);
  std::memcpy(out, w.data().data(), kHeaderBytes);
}

Result<FrameHeader> DecodeHeader(std::span<const std::byte> in) {
  Reader r(in.first(std::min(in.size(), kHeaderBytes)));
  FrameHeader h;
  h.magic = r.U32();
  h.version = r.U16();
  h.type = static_cast<MessageType>(r.U16());
  h.length = r.U32();
  h.seq = r.U32();
  if (!r.ok()) return Status::InvalidArgument("daemon protocol: short frame header");
  if (h.magic != kMagic)
    return Status::InvalidArgument(
        fmt::format("daemon protocol: bad magic {:#010x} (not a strata daemon peer?)", h.magic));
  if (h.version != kVersion)
    return Status::InvalidArgument(fmt::format(
        "daemon protocol: version {} (this side speaks version {})", h.version, kVersion));
  if (h.length > kMaxPayload)
    return Status::InvalidArgument(fmt::format(
        "daemon protocol: payload of {} bytes exceeds the limit of {}", h.length, kMaxPayload));
  return h;
}

Status Reader::Finish(std::string_view what) const {
  if (failed_)
    return Status::InvalidArgument(fmt::format("daemon protocol: truncated or oversized {}", what));
  if (at_ != in_.size())
    return Status::InvalidArgument(
        fmt::format("daemon protocol: {} bytes left over after {}", in_.size() - at_, what));
  return Status::Ok();
}

void EncodeError(const Status& status, Writer* w) {
  w->U8(static_cast<uint8_t>(status.code()));
  w->Bytes(std::string_view(status.message()).substr(0, kMaxMessage));
}

Status DecodeError(std::span<const std::byte> payload) {
  Reader r(payload);
  const uint8_t code = r.U8();
  std::string message = r.Bytes(kMaxMessage);
  if (!r.Finish("error").ok() || code == 0 || code > static_cast<uint8_t>(StatusCode::kInternal))
    return Status::InvalidArgument("daemon protocol: malformed error message");
  return Status::FromCode(static_cast<StatusCode>(code), "strata daemon: " + message);
}

}  // namespace strata::daemon
