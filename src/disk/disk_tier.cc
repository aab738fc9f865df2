// DiskTier: record allocation and region reclaim, blocking record I/O through the transfer
// engine, verified loads, and recovery of the index from record headers.
#include "disk/disk_tier.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/slot_pool.h"
#include "disk/disk_files.h"
#include "memory/host_memory.h"

namespace strata {

using disk::kHeaderBytes;

std::string_view DiskWriteOutcomeName(DiskWriteOutcome outcome) {
  switch (outcome) {
    case DiskWriteOutcome::kWritten:
      return "written";
    case DiskWriteOutcome::kPresent:
      return "present";
    case DiskWriteOutcome::kInFlight:
      return "in_flight";
    case DiskWriteOutcome::kNoSpace:
      return "no_space";
  }
  return "?";
}

Status DiskTierOptions::Validate() const {
  if (directory.empty()) return Status::InvalidArgument("DiskTierOptions.directory is empty");
  if (capacity_bytes == 0) return Status::InvalidArgument("DiskTierOptions.capacity_bytes is 0");
  if (file_bytes == 0) return Status::InvalidArgument("DiskTierOptions.file_bytes is 0");
  if (region_bytes == 0) return Status::InvalidArgument("DiskTierOptions.region_bytes is 0");
  if (min_regions == 0) return Status::InvalidArgument("DiskTierOptions.min_regions is 0");
  if (io_depth == 0 || io_depth > 4096)
    return Status::InvalidArgument(
        fmt::format("DiskTierOptions.io_depth {} must be in [1, 4096]", io_depth));
  if (backend == BackendKind::kMemcpy || backend == BackendKind::kCuda)
    return Status::InvalidArgument(
        fmt::format("DiskTierOptions.backend {} does not move files (use auto, posix or io_uring)",
                    BackendKindName(backend)));
  return Status::Ok();
}

namespace {

// Releases a descriptor list when it goes out of scope (requests keep what they need).
class ListGuard {
 public:
  ListGuard(TransferEngine* engine, DescListId id) : engine_(engine), id_(id) {}
  ~ListGuard() { (void)engine_->ReleaseDescList(id_); }
  ListGuard(const ListGuard&) = delete;
  ListGuard& operator=(const ListGuard&) = delete;

 private:
  TransferEngine* engine_;
  DescListId id_;
};

}  // namespace

// Staging buffers, one record each, registered once with the engine and described by one
// descriptor list (descriptor s = buffer s).
struct DiskTier::Staging {
  std::unique_ptr<HostBuffer> buffer;
  uint64_t record_bytes = 0;
  RegionId region = 0;
  DescListId list = 0;
  bool registered = false, listed = false;

  std::unique_ptr<SlotPool> slots;  // which buffers are free

  std::byte* data(uint32_t slot) const { return buffer->data() + slot * record_bytes; }
};

namespace {

// The geometry of `options` with regions of `region_bytes`.
Result<disk::DiskGeometry> GeometryWith(const DiskTierOptions& options, const KvLayout& layout,
                                        uint64_t region_bytes) {
  return disk::DiskGeometry::Compute(layout.block_bytes(), options.capacity_bytes,
                                     options.file_bytes, region_bytes);
}

}  // namespace

Result<disk::DiskGeometry> DiskTier::ChooseGeometry(const DiskTierOptions& options,
                                                    const KvLayout& layout) {
  // Regions of at most region_bytes, and at least min_regions of them while a region
  // keeps one record: one leased block pins a whole region, so a small disk split into a
  // few large regions would have nothing left to reclaim but the region just written.
  const uint64_t record_bytes =
      disk::kHeaderBytes + disk::AlignUp(layout.block_bytes(), disk::kAlign);
  const uint64_t share = options.capacity_bytes / options.min_regions;
  const uint64_t region_bytes = std::max(record_bytes, std::min(options.region_bytes, share));
  STRATA_ASSIGN_OR_RETURN(disk::DiskGeometry geometry, GeometryWith(options, layout, region_bytes));
  if (region_bytes == options.region_bytes) return geometry;
  // A tier created before min_regions existed used regions of exactly region_bytes: keep
  // using it (and its blocks) rather than refusing or wiping it for a new geometry.
  Result<disk::DiskGeometry> legacy = GeometryWith(options, layout, options.region_bytes);
  if (!legacy.ok() || *legacy == geometry) return geometry;
  const Result<disk::DiskMeta> found = disk::DiskFiles::ReadMeta(options.directory);
  disk::DiskMeta want;
  want.layout = layout.Canonical();
  want.geometry = *legacy;
  if (!found.ok() || !found->Difference(want).empty()) return geometry;
  spdlog::info(
      "strata disk tier {}: keeping the existing tier's {} regions of {} records (this "
      "capacity would now get {} regions; wipe the tier to use them)",
      options.directory, legacy->num_regions, legacy->records_per_region, geometry.num_regions);
  return *legacy;
}

Result<std::unique_ptr<DiskTier>> DiskTier::Open(const DiskTierOptions& options,
                                                 const KvLayout& layout, TransferEngine* engine) {
  STRATA_RETURN_IF_ERROR(options.Validate());
  STRATA_RETURN_IF_ERROR(layout.Validate());
  if (engine == nullptr) return Status::InvalidArgument("DiskTier::Open: transfer engine is null");
  STRATA_ASSIGN_OR_RETURN(disk::DiskGeometry geometry, ChooseGeometry(options, layout));
  // The directory first: a tier another process holds, or a disk too small for the
  // capacity, is refused before the index takes any memory.
  disk::DiskMeta want;
  want.layout = layout.Canonical();
  want.geometry = geometry;
  auto files = disk::DiskFiles::Open(options.directory, want, options.use_direct_io,
                                     options.reset_on_mismatch);
  if (!files.ok()) return files.status();
  std::unique_ptr<DiskTier> tier(
      new DiskTier(options, layout, engine, geometry, std::move(files).value()));
  STRATA_RETURN_IF_ERROR(
      tier->Init().WithContext(fmt::format("opening the disk tier in {}", options.directory)));
  return tier;
}

DiskTier::DiskTier(const DiskTierOptions& options, const KvLayout& layout, TransferEngine* engine,
                   const disk::DiskGeometry& geometry, std::unique_ptr<disk::DiskFiles> files)
    : options_(options),
      layout_(layout),
      engine_(engine),
      geometry_(geometry),
      files_(std::move(files)),
      index_(geometry.num_records),
      records_(geometry.num_records),
      regions_(geometry.num_regions) {
  counters_.capacity_records = geometry.num_records;
  counters_.block_bytes = geometry.block_bytes;
  counters_.record_bytes = geometry.record_bytes;
  counters_.records_per_region = geometry.records_per_region;
  counters_.regions = geometry.num_regions;
}

Status DiskTier::Init() {
  for (uint32_t f = 0; f < files_->num_files(); ++f) {
    STRATA_ASSIGN_OR_RETURN(RegionId r, engine_->RegisterFile({.fd = files_->fd(f),
                                                               .length = geometry_.file_size(f),
                                                               .direct = files_->direct(),
                                                               .name = files_->path(f),
                                                               .faults = options_.faults}));
    file_regions_.push_back(r);
  }

  staging_ = std::make_unique<Staging>();
  staging_->record_bytes = geometry_.record_bytes;
  STRATA_ASSIGN_OR_RETURN(
      staging_->buffer,
      HostBuffer::Allocate(size_t{options_.io_depth} * geometry_.record_bytes, {}));
  STRATA_ASSIGN_OR_RETURN(staging_->region,
                          engine_->RegisterMemory({.type = MemoryType::kHost,
                                                   .addr = staging_->buffer->data(),
                                                   .length = staging_->buffer->size(),
                                                   .name = "G3 disk tier staging buffers"}));
  staging_->registered = true;
  std::vector<Descriptor> descs;
  for (uint32_t s = 0; s < options_.io_depth; ++s)
    descs.push_back(
        {staging_->region, uint64_t{s} * geometry_.record_bytes, geometry_.record_bytes});
  STRATA_ASSIGN_OR_RETURN(staging_->list, engine_->PrepareDescList(descs));
  staging_->listed = true;
  staging_->slots = std::make_unique<SlotPool>(0, options_.io_depth);

  if (!files_->fresh()) STRATA_RETURN_IF_ERROR(Recover());
  std::lock_guard lock(mu_);
  for (uint32_t g = geometry_.num_regions; g > 0; --g)
    if (!regions_[g - 1].in_fifo) free_regions_.push_back(g - 1);
  counters_.direct_io = files_->direct();
  return Status::Ok();
}

DiskTier::~DiskTier() {
  if (files_) {
    if (Status st = files_->SyncAll(); !st.ok())
      spdlog::error("strata disk tier {}: sync at close failed: {}", options_.directory,
                    st.ToString());
  }
  if (staging_) {
    if (staging_->listed) (void)engine_->ReleaseDescList(staging_->list);
    if (staging_->registered) (void)engine_->Deregister(staging_->region);
  }
  for (const HostRange& h : host_ranges_) (void)engine_->Deregister(h.region);
  for (RegionId r : file_regions_) (void)engine_->Deregister(r);
}

bool DiskTier::direct_io() const {
  return files_->direct();
}
const std::string& DiskTier::notes() const {
  return files_->notes();
}

Status DiskTier::RegisterHostMemory(void* base, size_t length, std::string_view name) {
  if (base == nullptr || length == 0)
    return Status::InvalidArgument("DiskTier::RegisterHostMemory: null or empty range");
  STRATA_ASSIGN_OR_RETURN(
      RegionId r,
      engine_->RegisterMemory(
          {.type = MemoryType::kHost, .addr = base, .length = length, .name = std::string(name)}));
  std::lock_guard lock(host_mu_);
  host_ranges_.push_back({static_cast<std::byte*>(base), length, r});
  return Status::Ok();
}

std::optional<DiskTier::HostRange> DiskTier::FindHostRange(const std::byte* p) const {
  // With O_DIRECT the payload's memory, offset and length must all be aligned.
  if (files_->direct() && (reinterpret_cast<uintptr_t>(p) % disk::kAlign != 0 ||
                           geometry_.block_bytes % disk::kAlign != 0))
    return std::nullopt;
  std::lock_guard lock(host_mu_);
  for (const HostRange& h : host_ranges_) {
    if (p >= h.base && p < h.base + h.length &&
        geometry_.block_bytes <= static_cast<size_t>(h.base + h.length - p))
      return h;
  }
  return std::nullopt;
}

Result<std::unique_ptr<TransferRequest>> DiskTier::RecordRequest(
    TransferOp op, uint32_t record, uint32_t staging_slot, const std::optional<HostRange>& host,
    const std::byte* block) {
  const uint32_t f = geometry_.file_of(record);
  const uint64_t off = geometry_.offset_of(record);
  const RegionId file = file_regions_[f];
  if (!host) {
    // Staged: the whole record in one I/O.
    const Descriptor remote{file, off, geometry_.record_bytes};
    STRATA_ASSIGN_OR_RETURN(DescListId remote_list, engine_->PrepareDescList({&remote, 1}));
    ListGuard guard(engine_, remote_list);
    const uint32_t zero = 0;
    return engine_->CreateRequest(op, staging_->list, {&staging_slot, 1}, remote_list, {&zero, 1},
                                  options_.backend);
  }
  // Zero-copy: the header from/to the staging buffer, the block from/to caller memory,
  // posted together as two I/Os to adjacent file ranges.
  const Descriptor local[2] = {
      {staging_->region, uint64_t{staging_slot} * geometry_.record_bytes, kHeaderBytes},
      {host->region, static_cast<uint64_t>(block - host->base), geometry_.block_bytes}};
  const Descriptor remote[2] = {{file, off, kHeaderBytes},
                                {file, off + kHeaderBytes, geometry_.block_bytes}};
  STRATA_ASSIGN_OR_RETURN(DescListId local_list, engine_->PrepareDescList(local));
  ListGuard local_guard(engine_, local_list);
  STRATA_ASSIGN_OR_RETURN(DescListId remote_list, engine_->PrepareDescList(remote));
  ListGuard remote_guard(engine_, remote_list);
  const uint32_t idx[2] = {0, 1};
  return engine_->CreateRequest(op, local_list, idx, remote_list, idx, options_.backend);
}

void DiskTier::RunRequests(std::vector<std::unique_ptr<TransferRequest>>& requests,
                           std::vector<Status>* results) {
  results->assign(requests.size(), Status::Ok());
  if (requests.size() == 1) {
    // Nothing to overlap with: a small record then moves on this thread, no hand-off.
    (*results)[0] = engine_->Execute(*requests[0]);
    return;
  }
  std::vector<bool> posted(requests.size(), false);
  for (size_t i = 0; i < requests.size(); ++i) {
    (*results)[i] = engine_->Post(*requests[i]);
    posted[i] = (*results)[i].ok();
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    if (!posted[i]) continue;
    while (!requests[i]->done()) (void)requests[i]->Wait(std::chrono::seconds(10));
    (*results)[i] = requests[i]->status();
  }
}

// ---- allocation and reclaim -----------------------------------------------------------

uint32_t DiskTier::OpenRegionLocked(uint32_t g) {
  Region& region = regions_[g];
  region.epoch = next_epoch_++;
  region.fill = 0;
  region.in_fifo = true;
  fifo_.push_back(g);
  open_region_ = g;
  return g;
}

bool DiskTier::ReclaimLocked(uint32_t* out) {
  // FIFO: the oldest region whose records are neither leased nor being written. The newest
  // region (the one just filled) is never taken while there is another: when every older
  // region is pinned, evicting the blocks just written to make room for the next ones
  // would only trade new blocks for newer ones, so the write is dropped instead (kNoSpace)
  // until a lease ends. A tier of one region has no choice.
  const auto newest = fifo_.size() > 1 ? std::prev(fifo_.end()) : fifo_.end();
  for (auto it = fifo_.begin(); it != fifo_.end(); ++it) {
    const uint32_t g = *it;
    if (regions_[g].pinned != 0 || it == newest) continue;
    fifo_.erase(it);
    regions_[g].in_fifo = false;
    const uint32_t first = geometry_.first_record(g);
    for (uint32_t r = first; r < first + geometry_.records_per_region; ++r) {
      if (records_[r].state() == RecordState::kReady) {
        RemoveLocked(r, DiskRemoval::kEvicted);
        ++counters_.evictions;
      }
    }
    ++counters_.regions_reclaimed;
    if (open_region_ == g) open_region_ = UINT32_MAX;
    *out = g;
    return true;
  }
  return false;
}

uint32_t DiskTier::AllocateLocked() {
  if (open_region_ == UINT32_MAX || regions_[open_region_].fill == geometry_.records_per_region) {
    uint32_t g;
    if (!free_regions_.empty()) {
      g = free_regions_.back();
      free_regions_.pop_back();
    } else if (!ReclaimLocked(&g)) {
      return kNoRecord;
    }
    OpenRegionLocked(g);
  }
  Region& region = regions_[open_region_];
  return geometry_.first_record(open_region_) + region.fill++;
}

void DiskTier::RemoveLocked(uint32_t record, DiskRemoval why) {
  const BlockKey key = index_.key(record);
  index_.Erase(record);
  Record& r = records_[record];
  if (r.leases > 0) {
    r.set_state(RecordState::kFailed);  // freed by its last Unlease
  } else {
    r = Record{};
    --used_;
  }
  if (options_.on_remove) options_.on_remove(key, why);
}

// ---- writes ---------------------------------------------------------------------------

Result<DiskWriteOutcome> DiskTier::Write(const BlockKey& key, const NamespaceFingerprint& ns,
                                         const std::byte* block) {
  BatchWrite one{.key = key, .block = block};
  WriteBatch({&one, 1}, ns);
  if (!one.status.ok()) return one.status;
  return one.outcome;
}

void DiskTier::WriteBatch(std::span<BatchWrite> blocks, const NamespaceFingerprint& ns) {
  // Phase 1, under the lock: deduplicate and allocate a record for each new key. A key
  // repeated within the batch finds the first copy writing (kInFlight).
  std::vector<size_t> todo;
  std::vector<uint32_t> records(blocks.size(), kNoRecord);
  std::vector<disk::RecordHeader> headers(blocks.size());
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < blocks.size(); ++i) {
      BatchWrite& w = blocks[i];
      w.status = Status::Ok();
      if (w.block == nullptr) {
        w.status = Status::InvalidArgument("DiskTier::Write: block is null");
        continue;
      }
      const uint32_t existing = index_.Find(w.key);
      if (existing != BlockIndex::kNone) {
        if (records_[existing].state() == RecordState::kWriting) {
          ++counters_.write_in_flight;
          w.outcome = DiskWriteOutcome::kInFlight;
        } else {
          ++counters_.write_present;
          w.outcome = DiskWriteOutcome::kPresent;
        }
        continue;
      }
      const uint32_t record = AllocateLocked();
      if (record == kNoRecord) {
        ++counters_.write_no_space;
        w.outcome = DiskWriteOutcome::kNoSpace;
        continue;
      }
      records_[record] = Record{};
      records_[record].set_state(RecordState::kWriting);
      index_.Insert(w.key, record);
      ++regions_[geometry_.region_of(record)].pinned;
      ++used_;
      headers[i].sequence = next_sequence_++;
      headers[i].epoch = regions_[geometry_.region_of(record)].epoch;
      records[i] = record;
      todo.push_back(i);
    }
  }

  // Phase 2: the I/O, as many records in flight as staging buffers allow.
  std::vector<Status> io(blocks.size(), Status::Ok());
  std::vector<bool> zero_copy(blocks.size(), false);
  for (size_t next = 0; next < todo.size();) {
    const std::vector<uint32_t> slots = staging_->slots->AcquireUpTo(todo.size() - next);
    std::vector<std::unique_ptr<TransferRequest>> requests;
    std::vector<size_t> which;  // block index of each request
    for (size_t k = 0; k < slots.size(); ++k) {
      const size_t i = todo[next + k];
      const std::byte* block = blocks[i].block;
      std::byte* stage = staging_->data(slots[k]);
      const std::optional<HostRange> host = FindHostRange(block);
      zero_copy[i] = host.has_value();
      if (!zero_copy[i]) {
        std::memcpy(stage + kHeaderBytes, block, geometry_.block_bytes);
        std::memset(stage + kHeaderBytes + geometry_.block_bytes, 0,
                    geometry_.record_bytes - kHeaderBytes - geometry_.block_bytes);
      }
      disk::RecordHeader& header = headers[i];
      header.key = blocks[i].key;
      header.ns = ns;
      header.payload_length = geometry_.block_bytes;
      // Checksum what is written: the staged copy, or the caller's block itself.
      header.payload_checksum =
          disk::PayloadChecksum(zero_copy[i] ? block : stage + kHeaderBytes, geometry_.block_bytes);
      header.record_bytes = geometry_.record_bytes;
      header.record_index = records[i];
      disk::EncodeRecordHeader(header, stage);
      auto request = RecordRequest(TransferOp::kWrite, records[i], slots[k], host, block);
      if (!request.ok()) {
        io[i] = request.status();
        continue;
      }
      requests.push_back(std::move(request).value());
      which.push_back(i);
    }
    std::vector<Status> results;
    RunRequests(requests, &results);
    for (size_t r = 0; r < which.size(); ++r) io[which[r]] = std::move(results[r]);
    if (options_.sync_on_write) {
      // One fdatasync per file written in this round; its result is every such write's.
      std::vector<std::optional<Status>> synced(files_->num_files());
      for (size_t k = 0; k < slots.size(); ++k) {
        const size_t i = todo[next + k];
        if (!io[i].ok()) continue;
        std::optional<Status>& sync = synced[geometry_.file_of(records[i])];
        if (!sync) sync = files_->Sync(geometry_.file_of(records[i]));
        io[i] = *sync;
      }
    }
    staging_->slots->Release(slots);
    next += slots.size();
  }

  // Phase 3, under the lock: acknowledge or forget each record.
  std::lock_guard lock(mu_);
  for (size_t i : todo) {
    const uint32_t record = records[i];
    --regions_[geometry_.region_of(record)].pinned;
    if (!io[i].ok()) {
      // Never acknowledged, never indexed. Bytes that did reach the disk (a torn record) are
      // caught by the payload checksum should a recovery ever index them.
      index_.Erase(record);
      records_[record] = Record{};
      --used_;
      ++counters_.write_errors;
      blocks[i].status = io[i].WithContext(
          fmt::format("disk tier: storing block {} in record {}", blocks[i].key.ToHex(), record));
      continue;
    }
    records_[record].set_state(RecordState::kReady);
    ++counters_.writes;
    counters_.bytes_written += geometry_.record_bytes;
    if (zero_copy[i]) ++counters_.zero_copy_ios;
    blocks[i].outcome = DiskWriteOutcome::kWritten;
  }
}

// ---- leases ---------------------------------------------------------------------------

bool DiskTier::Contains(const BlockKey& key) const {
  std::lock_guard lock(mu_);
  const uint32_t r = index_.Find(key);
  return r != BlockIndex::kNone && records_[r].state() == RecordState::kReady;
}

uint32_t DiskTier::LeaseLocked(const BlockKey& key) {
  const uint32_t r = index_.Find(key);
  if (r == BlockIndex::kNone) return kNoRecord;
  Record& rec = records_[r];
  if (rec.state() != RecordState::kReady || rec.leases == Record::kMaxLeases) return kNoRecord;
  if (rec.leases++ == 0) ++leased_;
  ++regions_[geometry_.region_of(r)].pinned;
  return r;
}

uint32_t DiskTier::Lease(const BlockKey& key) {
  std::lock_guard lock(mu_);
  return LeaseLocked(key);
}

size_t DiskTier::MatchPrefix(std::span<const BlockKey> keys, std::vector<uint32_t>* leases) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (; n < keys.size(); ++n) {
    if (leases != nullptr) {
      const uint32_t r = LeaseLocked(keys[n]);
      if (r == kNoRecord) break;
      leases->push_back(r);
    } else {
      const uint32_t r = index_.Find(keys[n]);
      if (r == BlockIndex::kNone || records_[r].state() != RecordState::kReady) break;
    }
  }
  return n;
}

void DiskTier::UnleaseLocked(uint32_t record) {
  if (record >= records_.size() || records_[record].leases == 0) {
    spdlog::error("strata disk tier: Unlease of record {} that holds no lease (ignored)", record);
    return;
  }
  Record& r = records_[record];
  --regions_[geometry_.region_of(record)].pinned;
  if (--r.leases == 0) {
    --leased_;
    if (r.state() == RecordState::kFailed) {
      r = Record{};
      --used_;
    }
  }
}

void DiskTier::Unlease(uint32_t record) {
  std::lock_guard lock(mu_);
  UnleaseLocked(record);
}

void DiskTier::Unlease(std::span<const uint32_t> records) {
  std::lock_guard lock(mu_);
  for (uint32_t r : records) UnleaseLocked(r);
}

// ---- reads ----------------------------------------------------------------------------

Status DiskTier::VerifyRecord(uint32_t record, const std::byte* header_bytes,
                              const std::byte* payload, const BlockKey& expected,
                              const NamespaceFingerprint& ns, uint64_t epoch) const {
  disk::RecordHeader h;
  const disk::HeaderState hs =
      disk::DecodeRecordHeader(header_bytes, record, geometry_.record_bytes, &h);
  if (hs != disk::HeaderState::kValid)
    return Status::Corruption(fmt::format("record header: {}", disk::HeaderStateName(hs)));
  if (h.key != expected)
    return Status::Corruption(fmt::format("record holds key {}", h.key.ToHex()));
  if (h.ns != ns)
    return Status::Corruption(fmt::format("namespace fingerprint {} differs from the expected {}",
                                          h.ns.ToHex(), ns.ToHex()));
  if (h.payload_length != geometry_.block_bytes)
    return Status::Corruption(fmt::format("payload length {} differs from the block size {}",
                                          h.payload_length, geometry_.block_bytes));
  if (h.epoch != epoch)
    return Status::Corruption(
        fmt::format("stale record: region epoch {} on disk, {} expected", h.epoch, epoch));
  const uint64_t sum = disk::PayloadChecksum(payload, geometry_.block_bytes);
  if (sum != h.payload_checksum)
    return Status::Corruption(fmt::format(
        "payload checksum {:016x} differs from the header's {:016x}", sum, h.payload_checksum));
  return Status::Ok();
}

Status DiskTier::Read(uint32_t record, const BlockKey& expected, const NamespaceFingerprint& ns,
                      std::byte* out) {
  BatchRead one{.record = record, .key = expected, .out = out};
  ReadBatch({&one, 1}, ns);
  return one.status;
}

void DiskTier::ReadBatch(std::span<BatchRead> blocks, const NamespaceFingerprint& ns) {
  // Phase 1, under the lock: check each lease and take its region's epoch.
  std::vector<size_t> todo;
  std::vector<uint64_t> epochs(blocks.size(), 0);
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < blocks.size(); ++i) {
      BatchRead& b = blocks[i];
      b.status = Status::Ok();
      if (b.out == nullptr) {
        b.status = Status::InvalidArgument("DiskTier::Read: out is null");
      } else if (b.record >= records_.size() || records_[b.record].leases == 0) {
        b.status = Status::InvalidArgument(
            fmt::format("DiskTier::Read: record {} is not leased", b.record));
      } else if (records_[b.record].state() == RecordState::kFailed) {
        b.status = Status::NotFound(
            fmt::format("block {} left the disk tier after a failed load of record {}",
                        b.key.ToHex(), b.record));
      } else if (index_.key(b.record) != b.key) {
        b.status = Status::InvalidArgument(
            fmt::format("DiskTier::Read: record {} holds block {}, not {}", b.record,
                        index_.key(b.record).ToHex(), b.key.ToHex()));
      } else {
        epochs[i] = regions_[geometry_.region_of(b.record)].epoch;
        todo.push_back(i);
      }
    }
  }

  // Phase 2: the I/O and verification, as many records in flight as staging allows.
  std::vector<bool> zero_copy(blocks.size(), false);
  for (size_t next = 0; next < todo.size();) {
    const std::vector<uint32_t> slots = staging_->slots->AcquireUpTo(todo.size() - next);
    std::vector<std::unique_ptr<TransferRequest>> requests;
    std::vector<size_t> which;  // position k in this round of each request
    for (size_t k = 0; k < slots.size(); ++k) {
      BatchRead& b = blocks[todo[next + k]];
      const std::optional<HostRange> host = FindHostRange(b.out);
      zero_copy[todo[next + k]] = host.has_value();
      auto request = RecordRequest(TransferOp::kRead, b.record, slots[k], host, b.out);
      if (!request.ok()) {
        b.status = request.status();
        continue;
      }
      requests.push_back(std::move(request).value());
      which.push_back(k);
    }
    std::vector<Status> results;
    RunRequests(requests, &results);
    for (size_t r = 0; r < which.size(); ++r) {
      const size_t k = which[r];
      const size_t i = todo[next + k];
      BatchRead& b = blocks[i];
      b.status = std::move(results[r]);
      if (!b.status.ok()) continue;
      const std::byte* stage = staging_->data(slots[k]);
      const std::byte* payload = zero_copy[i] ? b.out : stage + kHeaderBytes;
      b.status = VerifyRecord(b.record, stage, payload, b.key, ns, epochs[i]);
      if (b.status.ok() && !zero_copy[i]) std::memcpy(b.out, payload, geometry_.block_bytes);
    }
    staging_->slots->Release(slots);
    next += slots.size();
  }

  // Phase 3, under the lock: count, and take every block that failed out of the index.
  std::vector<uint32_t> corrupt;
  {
    std::lock_guard lock(mu_);
    FinishReadsLocked(blocks, todo, zero_copy, &corrupt);
  }
  // A record that failed verification must not come back at the next Open: zero it on
  // disk (recovery then sees never-written space). The caller's lease still pins the
  // record, so no Write can reuse it meanwhile.
  for (uint32_t record : corrupt) {
    if (Status st = InvalidateOnDisk(record); !st.ok()) {
      const Location loc = Locate(record);
      spdlog::warn(
          "strata disk tier: could not invalidate corrupt record {} at {} offset {}: {}; a "
          "restart will index it again and its load will fail again",
          record, loc.path, loc.offset, st.ToString());
    } else {
      std::lock_guard lock(mu_);
      ++counters_.invalidated_records;
    }
  }
}

Status DiskTier::InvalidateOnDisk(uint32_t record) {
  // The whole record, staged as zeros: a rare path, so the plain staged write will do.
  const std::vector<uint32_t> slot = staging_->slots->AcquireUpTo(1);
  std::memset(staging_->data(slot[0]), 0, geometry_.record_bytes);
  Status st = [&]() -> Status {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<TransferRequest> request,
                            RecordRequest(TransferOp::kWrite, record, slot[0], std::nullopt,
                                          /*block=*/nullptr));
    STRATA_RETURN_IF_ERROR(engine_->Execute(*request));
    return options_.sync_on_write ? files_->Sync(geometry_.file_of(record)) : Status::Ok();
  }();
  staging_->slots->Release(slot);
  return st;
}

void DiskTier::FinishReadsLocked(std::span<BatchRead> blocks, const std::vector<size_t>& todo,
                                 const std::vector<bool>& zero_copy,
                                 std::vector<uint32_t>* corrupt) {
  for (size_t i : todo) {
    BatchRead& b = blocks[i];
    if (b.status.ok()) {
      ++counters_.reads;
      counters_.bytes_read += geometry_.record_bytes;
      if (zero_copy[i]) ++counters_.zero_copy_ios;
      continue;
    }
    if (b.status.code() == StatusCode::kCorruption) {
      ++counters_.corruptions;
      corrupt->push_back(b.record);
    } else {
      ++counters_.read_errors;
    }
    if (records_[b.record].state() == RecordState::kReady)
      RemoveLocked(b.record, DiskRemoval::kLoadFailed);
    const Location loc = Locate(b.record);
    spdlog::warn("strata disk tier: block {} at {} offset {} failed to load and left the index: {}",
                 b.key.ToHex(), loc.path, loc.offset, b.status.ToString());
    b.status = b.status.WithContext(fmt::format("disk tier: loading block {} from {} at offset {}",
                                                b.key.ToHex(), loc.path, loc.offset));
  }
}

// ---- misc -----------------------------------------------------------------------------

std::vector<BlockKey> DiskTier::Keys() const {
  std::lock_guard lock(mu_);
  std::vector<BlockKey> keys;
  keys.reserve(index_.size());
  for (uint32_t r = 0; r < records_.size(); ++r)
    if (records_[r].state() == RecordState::kReady) keys.push_back(index_.key(r));
  return keys;
}

Status DiskTier::Flush() {
  return files_->SyncAll();
}

DiskTier::Location DiskTier::Locate(uint32_t record) const {
  return {files_->path(geometry_.file_of(record)), geometry_.offset_of(record)};
}

DiskTierStats DiskTier::stats() const {
  std::lock_guard lock(mu_);
  DiskTierStats st = counters_;
  st.used_records = used_;
  st.leased_records = leased_;
  st.free_regions = free_regions_.size();
  st.index_bytes = index_.MemoryBytes() + records_.capacity() * sizeof(Record) +
                   regions_.capacity() * sizeof(Region) + fifo_.capacity() * sizeof(uint32_t) +
                   free_regions_.capacity() * sizeof(uint32_t);
  st.index_bytes_per_record =
      static_cast<double>(st.index_bytes) / static_cast<double>(geometry_.num_records);
  return st;
}

// ---- recovery -------------------------------------------------------------------------

Status DiskTier::Recover() {
  const auto start = std::chrono::steady_clock::now();
  const uint32_t n = geometry_.num_records;
  // Headers are read in batches through the engine, two batches in flight: the device
  // sees up to 2 x kBatch concurrent 4 KiB reads.
  constexpr uint32_t kBatch = 512;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<HostBuffer> buf,
                          HostBuffer::Allocate(2 * size_t{kBatch} * kHeaderBytes, {}));
  STRATA_ASSIGN_OR_RETURN(RegionId buf_region,
                          engine_->RegisterMemory({.type = MemoryType::kHost,
                                                   .addr = buf->data(),
                                                   .length = buf->size(),
                                                   .name = "G3 recovery header buffer"}));
  struct RegionGuard {
    TransferEngine* e;
    RegionId r;
    ~RegionGuard() { (void)e->Deregister(r); }
  } region_guard{engine_, buf_region};
  std::vector<Descriptor> local(2 * kBatch);
  for (uint32_t i = 0; i < 2 * kBatch; ++i)
    local[i] = {buf_region, uint64_t{i} * kHeaderBytes, kHeaderBytes};
  STRATA_ASSIGN_OR_RETURN(DescListId local_list, engine_->PrepareDescList(local));
  {
    ListGuard local_guard(engine_, local_list);

    struct Found {
      BlockKey key;
      uint64_t sequence = 0;
      uint64_t epoch = 0;  // 0: no valid header
    };
    std::vector<Found> found(n);
    uint64_t invalid = 0, io_errors = 0;
    std::string first_error;

    auto post = [&](uint32_t begin, uint32_t half) -> Result<std::unique_ptr<TransferRequest>> {
      const uint32_t count = std::min(kBatch, n - begin);
      std::vector<Descriptor> remote(count);
      std::vector<uint32_t> li(count), ri(count);
      for (uint32_t i = 0; i < count; ++i) {
        const uint32_t r = begin + i;
        remote[i] = {file_regions_[geometry_.file_of(r)], geometry_.offset_of(r), kHeaderBytes};
        li[i] = half * kBatch + i;
        ri[i] = i;
      }
      STRATA_ASSIGN_OR_RETURN(DescListId remote_list, engine_->PrepareDescList(remote));
      ListGuard guard(engine_, remote_list);
      STRATA_ASSIGN_OR_RETURN(auto req, engine_->CreateRequest(TransferOp::kRead, local_list, li,
                                                               remote_list, ri, options_.backend));
      STRATA_RETURN_IF_ERROR(engine_->Post(*req));
      return req;
    };

    std::unique_ptr<TransferRequest> inflight[2];
    uint32_t inflight_begin[2] = {0, 0};
    uint32_t next = 0, batch_no = 0;
    auto issue = [&]() -> Status {
      if (next >= n) return Status::Ok();
      const uint32_t half = batch_no % 2;
      STRATA_ASSIGN_OR_RETURN(inflight[half], post(next, half));
      inflight_begin[half] = next;
      next += std::min(kBatch, n - next);
      ++batch_no;
      return Status::Ok();
    };
    STRATA_RETURN_IF_ERROR(issue());
    STRATA_RETURN_IF_ERROR(issue());
    for (uint32_t done_batches = 0; inflight[done_batches % 2]; ++done_batches) {
      const uint32_t half = done_batches % 2;
      std::unique_ptr<TransferRequest> req = std::move(inflight[half]);
      while (!req->done()) (void)req->Wait(std::chrono::seconds(10));
      const uint32_t begin = inflight_begin[half];
      for (uint32_t i = 0; i < req->size(); ++i) {
        const uint32_t r = begin + i;
        if (req->state(i) != DescriptorState::kDone) {
          if (io_errors++ == 0) first_error = req->error(i).ToString();
          continue;
        }
        disk::RecordHeader h;
        const disk::HeaderState hs =
            disk::DecodeRecordHeader(buf->data() + (size_t{half} * kBatch + i) * kHeaderBytes, r,
                                     geometry_.record_bytes, &h);
        if (hs == disk::HeaderState::kEmpty) continue;
        if (hs != disk::HeaderState::kValid || h.payload_length != geometry_.block_bytes ||
            h.epoch == 0) {
          ++invalid;
          continue;
        }
        found[r] = {h.key, h.sequence, h.epoch};
      }
      req.reset();
      STRATA_RETURN_IF_ERROR(issue());  // reuses this half of the buffer
    }
    if (io_errors > 0)
      spdlog::warn(
          "strata disk tier {}: {} record headers could not be read and were skipped; "
          "first: {}",
          options_.directory, io_errors, first_error);

    // A region's live records are those of its newest epoch: older ones are leftovers
    // of an earlier fill that the region's reclaim had already evicted.
    std::lock_guard lock(mu_);
    std::vector<uint64_t> region_epoch(geometry_.num_regions, 0);
    uint64_t max_epoch = 0, max_sequence = 0;
    for (uint32_t r = 0; r < n; ++r) {
      if (found[r].epoch == 0) continue;
      uint64_t& e = region_epoch[geometry_.region_of(r)];
      e = std::max(e, found[r].epoch);
      max_epoch = std::max(max_epoch, found[r].epoch);
      max_sequence = std::max(max_sequence, found[r].sequence);
    }
    uint64_t stale = 0, duplicates = 0;
    for (uint32_t r = 0; r < n; ++r) {
      if (found[r].epoch == 0) continue;
      const uint32_t g = geometry_.region_of(r);
      if (found[r].epoch != region_epoch[g]) {
        ++stale;
        continue;
      }
      regions_[g].fill = std::max(regions_[g].fill, geometry_.slot_of(r) + 1);
      const uint32_t existing = index_.Find(found[r].key);
      if (existing != BlockIndex::kNone) {
        // The same key twice: it was evicted or failed and stored again. The newest wins.
        ++duplicates;
        if (found[existing].sequence > found[r].sequence) continue;
        index_.Erase(existing);
        records_[existing] = Record{};
        --used_;
      }
      index_.Insert(found[r].key, r);
      records_[r].set_state(RecordState::kReady);
      ++used_;
    }
    for (uint32_t g = 0; g < geometry_.num_regions; ++g) {
      const uint32_t first = geometry_.first_record(g);
      bool live = false;
      for (uint32_t r = first; r < first + geometry_.records_per_region && !live; ++r)
        live = records_[r].state() == RecordState::kReady;
      if (live) {
        regions_[g].epoch = region_epoch[g];
        regions_[g].in_fifo = true;
        fifo_.push_back(g);
      } else {
        regions_[g] = Region{};
      }
    }
    std::sort(fifo_.begin(), fifo_.end(),
              [&](uint32_t a, uint32_t b) { return regions_[a].epoch < regions_[b].epoch; });
    // Appends continue in the newest region when it has room; other partly filled regions
    // (writes in flight at a crash) keep their holes until reclaimed.
    if (!fifo_.empty() && regions_[fifo_.back()].fill < geometry_.records_per_region)
      open_region_ = fifo_.back();
    next_epoch_ = max_epoch + 1;
    next_sequence_ = max_sequence + 1;

    counters_.recovered_records = used_;
    counters_.recovery_invalid_headers = invalid + io_errors;
    counters_.recovery_stale_records = stale;
    counters_.recovery_duplicates = duplicates;
  }
  counters_.recovery_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info(
      "strata disk tier {}: recovered {} of {} records in {:.3f} s ({} invalid headers, {} stale, "
      "{} duplicates)",
      options_.directory, counters_.recovered_records, n, counters_.recovery_seconds,
      counters_.recovery_invalid_headers, counters_.recovery_stale_records,
      counters_.recovery_duplicates);
  return Status::Ok();
}

}  // namespace strata
