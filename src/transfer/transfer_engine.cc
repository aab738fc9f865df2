// TransferEngine: region registry, descriptor lists, request construction, backend choice.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <shared_mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "strata/transfer.h"
#include "transfer/request.h"

namespace strata {

using internal::RegionInfo;
using internal::RequestImpl;
using internal::TransferBackend;
using internal::XferEntry;

std::string_view MemoryTypeName(MemoryType type) {
  switch (type) {
    case MemoryType::kHost:
      return "host";
    case MemoryType::kDevice:
      return "device";
    case MemoryType::kFile:
      return "file";
  }
  return "?";
}

std::string_view TransferOpName(TransferOp op) {
  return op == TransferOp::kRead ? "read" : "write";
}

std::string_view BackendKindName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kAuto:
      return "auto";
    case BackendKind::kMemcpy:
      return "memcpy";
    case BackendKind::kPosix:
      return "posix";
    case BackendKind::kIoUring:
      return "io_uring";
    case BackendKind::kCuda:
      return "cuda";
  }
  return "?";
}

Result<BackendKind> ParseBackendKind(std::string_view name) {
  for (BackendKind k : {BackendKind::kAuto, BackendKind::kMemcpy, BackendKind::kPosix,
                        BackendKind::kIoUring, BackendKind::kCuda})
    if (name == BackendKindName(k)) return k;
  if (name == "uring" || name == "iouring") return BackendKind::kIoUring;
  return Status::InvalidArgument(
      fmt::format("unknown backend '{}' (expected auto, memcpy, posix, io_uring or cuda)", name));
}

std::string_view DescriptorStateName(DescriptorState state) {
  switch (state) {
    case DescriptorState::kIdle:
      return "idle";
    case DescriptorState::kPending:
      return "pending";
    case DescriptorState::kDone:
      return "done";
    case DescriptorState::kFailed:
      return "failed";
    case DescriptorState::kCancelled:
      return "cancelled";
  }
  return "?";
}

namespace {

struct DescList {
  MemoryType type;
  std::vector<Descriptor> descs;
  std::vector<std::shared_ptr<RegionInfo>> regions;  // region of each descriptor
};

// O_DIRECT alignment of a file's offsets and lengths: statx(STATX_DIOALIGN) where the
// kernel and filesystem report it, else 4096, which every device accepts.
uint32_t DirectIoAlignment(int fd) {
#ifdef STATX_DIOALIGN
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
      stx.stx_dio_offset_align > 0)
    return stx.stx_dio_offset_align;
#endif
  (void)fd;
  return 4096;
}

}  // namespace

class TransferEngine::Impl {
 public:
  explicit Impl(const TransferEngineOptions& options) : options_(options) {}

  Status Init() {
    STRATA_ASSIGN_OR_RETURN(auto memcpy_backend, internal::MakeMemcpyBackend(options_));
    backends_.push_back(std::move(memcpy_backend));
    AddOptional(internal::MakeCudaBackend(options_), "cuda");
    if (options_.enable_io_uring) {
      AddOptional(internal::MakeIoUringBackend(options_), "io_uring");
    } else {
      Note("io_uring: disabled by TransferEngineOptions.enable_io_uring");
    }
    STRATA_ASSIGN_OR_RETURN(auto posix_backend, internal::MakePosixBackend(options_));
    backends_.push_back(std::move(posix_backend));
    return Status::Ok();
  }

  ~Impl() {
    // Backends first: their threads may still complete requests that reference regions.
    backends_.clear();
  }

  Result<RegionId> RegisterMemory(const MemoryRegionDesc& d) {
    if (d.type == MemoryType::kFile)
      return Status::InvalidArgument("RegisterMemory: use RegisterFile for files");
    if (d.addr == nullptr || d.length == 0)
      return Status::InvalidArgument(
          fmt::format("RegisterMemory: {} region '{}' has a null address or zero length",
                      MemoryTypeName(d.type), d.name));
    auto r = std::make_shared<RegionInfo>();
    r->type = d.type;
    r->addr = static_cast<std::byte*>(d.addr);
    r->length = d.length;
    r->device_id = d.device_id;
    r->host_emulated = d.type == MemoryType::kDevice && d.host_emulated;
    r->name = d.name;
    if (d.type == MemoryType::kDevice && !d.host_emulated && !Has(BackendKind::kCuda))
      return Status::NotSupported(fmt::format(
          "RegisterMemory: device region '{}' needs the CUDA backend, which is unavailable: {}",
          d.name, NotesOr("not built")));
    return Publish(std::move(r));
  }

  Result<RegionId> RegisterFile(const FileRegionDesc& d) {
    if (d.fd < 0)
      return Status::InvalidArgument(
          fmt::format("RegisterFile '{}': fd {} is invalid", d.name, d.fd));
    const int flags = fcntl(d.fd, F_GETFL);
    if (flags < 0)
      return Status::IoError(
          fmt::format("RegisterFile '{}': fcntl(F_GETFL) on fd {}", d.name, d.fd), errno);
    if (d.length == 0)
      return Status::InvalidArgument(fmt::format("RegisterFile '{}': length is 0", d.name));
    auto r = std::make_shared<RegionInfo>();
    r->type = MemoryType::kFile;
    r->fd = d.fd;
    r->length = d.length;
    r->direct = (flags & O_DIRECT) != 0;  // the fd's real mode decides, not the caller's belief
    if (d.direct && !r->direct)
      Note(fmt::format(
          "file '{}' was registered as direct but its fd lacks O_DIRECT; using buffered I/O",
          d.name));
    r->name = d.name.empty() ? fmt::format("fd {}", d.fd) : d.name;
    r->faults = d.faults;
    if (r->direct) r->dio_align = DirectIoAlignment(d.fd);
    return Publish(std::move(r));
  }

  Status Deregister(RegionId id) {
    std::unique_lock lock(mu_);
    if (id >= regions_.size() || !regions_[id])
      return Status::NotFound(fmt::format("Deregister: no region {}", id));
    if (regions_[id].use_count() > 1)
      return Status::InvalidArgument(
          fmt::format("Deregister: region {} ('{}') is still used by descriptor lists or requests",
                      id, regions_[id]->name));
    for (auto& b : backends_) b->OnDeregister(*regions_[id]);
    regions_[id].reset();
    return Status::Ok();
  }

  Result<DescListId> PrepareDescList(std::span<const Descriptor> descs) {
    auto list = std::make_shared<DescList>();
    list->descs.assign(descs.begin(), descs.end());
    list->regions.reserve(descs.size());
    std::unique_lock lock(mu_);
    for (size_t i = 0; i < descs.size(); ++i) {
      const Descriptor& d = descs[i];
      if (d.region >= regions_.size() || !regions_[d.region])
        return Status::InvalidArgument(fmt::format("descriptor {}: no region {}", i, d.region));
      const auto& r = regions_[d.region];
      if (i == 0) list->type = r->type;
      if (r->type != list->type)
        return Status::InvalidArgument(
            fmt::format("descriptor {}: region {} is {} memory, the list is {}", i, d.region,
                        MemoryTypeName(r->type), MemoryTypeName(list->type)));
      if (d.length == 0 || d.offset > r->length || d.length > r->length - d.offset)
        return Status::InvalidArgument(
            fmt::format("descriptor {}: [{}, {}) is outside region {} ('{}') of {} bytes", i,
                        d.offset, d.offset + d.length, d.region, r->name, r->length));
      if (r->direct && (d.offset % r->dio_align != 0 || d.length % r->dio_align != 0))
        return Status::InvalidArgument(fmt::format(
            "descriptor {}: offset {} and length {} in O_DIRECT file '{}' must be multiples of {}",
            i, d.offset, d.length, r->name, r->dio_align));
      list->regions.push_back(r);
    }
    if (descs.empty()) return Status::InvalidArgument("PrepareDescList: no descriptors");
    for (size_t id = 0; id < lists_.size(); ++id) {
      if (!lists_[id]) {
        lists_[id] = std::move(list);
        return static_cast<DescListId>(id);
      }
    }
    lists_.push_back(std::move(list));
    return static_cast<DescListId>(lists_.size() - 1);
  }

  Status ReleaseDescList(DescListId id) {
    std::unique_lock lock(mu_);
    if (id >= lists_.size() || !lists_[id])
      return Status::NotFound(fmt::format("ReleaseDescList: no list {}", id));
    lists_[id].reset();
    return Status::Ok();
  }

  Result<std::unique_ptr<TransferRequest>> CreateRequest(TransferOp op, DescListId local_id,
                                                         std::span<const uint32_t> local_idx,
                                                         DescListId remote_id,
                                                         std::span<const uint32_t> remote_idx,
                                                         BackendKind want) {
    if (local_idx.size() != remote_idx.size())
      return Status::InvalidArgument(
          fmt::format("CreateRequest: {} local indices but {} remote indices", local_idx.size(),
                      remote_idx.size()));
    std::shared_ptr<DescList> local, remote;
    {
      std::shared_lock lock(mu_);
      if (local_id >= lists_.size() || !lists_[local_id])
        return Status::InvalidArgument(
            fmt::format("CreateRequest: no local descriptor list {}", local_id));
      if (remote_id >= lists_.size() || !lists_[remote_id])
        return Status::InvalidArgument(
            fmt::format("CreateRequest: no remote descriptor list {}", remote_id));
      local = lists_[local_id];
      remote = lists_[remote_id];
    }
    if (local->type == MemoryType::kFile)
      return Status::InvalidArgument(
          "CreateRequest: the local list must be memory; files are always remote");

    std::vector<XferEntry> entries(local_idx.size());
    std::vector<std::shared_ptr<const RegionInfo>> pins;
    for (size_t i = 0; i < entries.size(); ++i) {
      const uint32_t li = local_idx[i], ri = remote_idx[i];
      if (li >= local->descs.size() || ri >= remote->descs.size())
        return Status::InvalidArgument(
            fmt::format("CreateRequest: pair {} indexes local {} of {} / remote {} of {}", i, li,
                        local->descs.size(), ri, remote->descs.size()));
      const Descriptor& ld = local->descs[li];
      const Descriptor& rd = remote->descs[ri];
      if (ld.length != rd.length)
        return Status::InvalidArgument(
            fmt::format("CreateRequest: pair {} has local length {} but remote length {}", i,
                        ld.length, rd.length));
      XferEntry& e = entries[i];
      e.local_region = local->regions[li].get();
      e.remote_region = remote->regions[ri].get();
      e.local = e.local_region->addr + ld.offset;
      e.length = ld.length;
      if (remote->type == MemoryType::kFile) {
        e.remote_offset = rd.offset;
      } else {
        e.remote = e.remote_region->addr + rd.offset;
      }
      for (const RegionInfo* r : {e.local_region, e.remote_region}) {
        if (std::none_of(pins.begin(), pins.end(), [r](const auto& p) { return p.get() == r; }))
          pins.push_back(r == e.local_region ? local->regions[li] : remote->regions[ri]);
      }
    }

    TransferBackend* backend = nullptr;
    for (auto& b : backends_) {
      if (want != BackendKind::kAuto && b->kind() != want) continue;
      const bool all = std::all_of(entries.begin(), entries.end(), [&](const XferEntry& e) {
        return b->Supports(*e.local_region, *e.remote_region);
      });
      if (all) {
        backend = b.get();
        break;
      }
    }
    if (backend == nullptr) {
      const std::string pair =
          fmt::format("{} <-> {}", MemoryTypeName(local->type), MemoryTypeName(remote->type));
      if (want != BackendKind::kAuto && !Has(want))
        return Status::NotSupported(fmt::format("CreateRequest: backend {} is unavailable ({})",
                                                BackendKindName(want), NotesOr("not built")));
      return Status::NotSupported(
          fmt::format("CreateRequest: no {} backend moves {}",
                      want == BackendKind::kAuto ? "available" : BackendKindName(want), pair));
    }
    auto impl = std::make_unique<RequestImpl>(op, backend, backend->kind(), std::move(entries));
    impl->pins = std::move(pins);
    STRATA_RETURN_IF_ERROR(backend->Prepare(*impl).WithContext("CreateRequest"));
    return std::unique_ptr<TransferRequest>(new TransferRequest(std::move(impl)));
  }

  Status Post(TransferRequest& request, internal::RequestImpl& impl) {
    (void)request;
    if (impl.in_flight()) return Status::InvalidArgument("Post: the request is still in flight");
    impl.Arm();
    if (!impl.entries.empty()) impl.backend->Post(impl);
    return Status::Ok();
  }

  Status Execute(TransferRequest& request, internal::RequestImpl& impl) {
    if (impl.in_flight()) return Status::InvalidArgument("Execute: the request is still in flight");
    impl.Arm();
    if (!impl.entries.empty() && !impl.backend->RunInline(impl)) impl.backend->Post(impl);
    // However long it takes: the request's memory is in use until it completes.
    while (!request.done()) (void)request.Wait(std::chrono::seconds(10));
    return request.status();
  }

  std::vector<BackendKind> backends() const {
    std::vector<BackendKind> out;
    for (const auto& b : backends_) out.push_back(b->kind());
    return out;
  }
  std::string notes() const {
    std::lock_guard lock(notes_mu_);
    return notes_;
  }

 private:
  bool Has(BackendKind kind) const {
    return std::any_of(backends_.begin(), backends_.end(),
                       [kind](const auto& b) { return b->kind() == kind; });
  }

  void AddOptional(Result<std::unique_ptr<TransferBackend>> backend, std::string_view name) {
    if (backend.ok()) {
      backends_.push_back(std::move(backend).value());
    } else {
      Note(fmt::format("{}: {}", name, backend.status().ToString()));
    }
  }

  std::string NotesOr(std::string_view fallback) const {
    std::string n = notes();
    return n.empty() ? std::string(fallback) : n;
  }

  void Note(std::string note) {
    spdlog::info("strata transfer engine: {}", note);
    std::lock_guard lock(notes_mu_);
    if (!notes_.empty()) notes_ += "; ";
    notes_ += note;
  }

  // Reserves an id, lets every backend register the region outside the engine lock
  // (pinning gigabytes takes a while and must not stall other calls), then publishes it.
  Result<RegionId> Publish(std::shared_ptr<RegionInfo> r) {
    size_t id = 0;
    {
      std::unique_lock lock(mu_);
      while (id < regions_.size() && (regions_[id] || reserved_[id])) ++id;
      if (id == regions_.size()) {
        regions_.emplace_back();
        reserved_.push_back(false);
      }
      reserved_[id] = true;
    }
    r->id = static_cast<RegionId>(id);
    if (r->name.empty()) r->name = fmt::format("{} region {}", MemoryTypeName(r->type), id);
    Status st;
    for (size_t i = 0; i < backends_.size() && st.ok(); ++i) {
      st = backends_[i]->OnRegister(*r);
      if (!st.ok()) {
        for (size_t j = 0; j < i; ++j) backends_[j]->OnDeregister(*r);
        st = st.WithContext(fmt::format("registering '{}' with {}", r->name,
                                        BackendKindName(backends_[i]->kind())));
      }
    }
    std::unique_lock lock(mu_);
    reserved_[id] = false;
    if (!st.ok()) return st;
    regions_[id] = std::move(r);
    return static_cast<RegionId>(id);
  }

  const TransferEngineOptions options_;
  std::vector<std::unique_ptr<TransferBackend>> backends_;  // preference order; fixed after Init
  mutable std::mutex notes_mu_;
  std::string notes_;  // GUARDED_BY(notes_mu_)

  mutable std::shared_mutex mu_;
  std::vector<std::shared_ptr<RegionInfo>> regions_;  // GUARDED_BY(mu_); index = RegionId
  std::vector<bool> reserved_;                        // GUARDED_BY(mu_); id taken, registering
  std::vector<std::shared_ptr<DescList>> lists_;      // GUARDED_BY(mu_); index = DescListId
};

Result<std::unique_ptr<TransferEngine>> TransferEngine::Create(
    const TransferEngineOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  STRATA_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<TransferEngine>(new TransferEngine(std::move(impl)));
}

TransferEngine::TransferEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TransferEngine::~TransferEngine() = default;

Result<RegionId> TransferEngine::RegisterMemory(const MemoryRegionDesc& desc) {
  return impl_->RegisterMemory(desc);
}
Result<RegionId> TransferEngine::RegisterFile(const FileRegionDesc& desc) {
  return impl_->RegisterFile(desc);
}
Status TransferEngine::Deregister(RegionId region) {
  return impl_->Deregister(region);
}
Result<DescListId> TransferEngine::PrepareDescList(std::span<const Descriptor> d) {
  return impl_->PrepareDescList(d);
}
Status TransferEngine::ReleaseDescList(DescListId list) {
  return impl_->ReleaseDescList(list);
}

Result<std::unique_ptr<TransferRequest>> TransferEngine::CreateRequest(
    TransferOp op, DescListId local, std::span<const uint32_t> local_indices, DescListId remote,
    std::span<const uint32_t> remote_indices, BackendKind backend) {
  return impl_->CreateRequest(op, local, local_indices, remote, remote_indices, backend);
}

Status TransferEngine::Post(TransferRequest& request) {
  return impl_->Post(request, *request.impl_);
}
Status TransferEngine::Execute(TransferRequest& request) {
  return impl_->Execute(request, *request.impl_);
}
std::vector<BackendKind> TransferEngine::backends() const {
  return impl_->backends();
}
std::string TransferEngine::backend_notes() const {
  return impl_->notes();
}

}  // namespace strata
