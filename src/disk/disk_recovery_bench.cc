// strata_disk_recovery_bench: how long a full disk tier takes to become matchable again.
//
//   strata_disk_recovery_bench <dir> <capacity GiB> [fill|open] [threads] [layers]
//
// fill (default): creates a tier of realistic 2 MiB blocks (32 layers x K/V x 8 heads x 128
// dim bf16, 16 tokens/block; <layers> changes the layer count, 64 KiB per layer), writes it full
// from <threads> threads (default 2), closes it, then reopens it. open: only reopens an existing
// tier. The reopen reports the wall time of DiskTier::Open (directory lock, meta check, reading
// every record header, rebuilding the index) and verifies a sample of the recovered blocks byte for
// byte. Built on request only (target strata_disk_recovery_bench); numbers belong in
// docs/disk_format.md.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "disk/disk_test_util.h"
#include "disk/disk_tier.h"

using namespace strata;

namespace {

KvLayout RealisticLayout(uint32_t layers) {
  KvLayout l;
  l.num_layers = layers;
  l.num_kv_heads = 8;
  l.head_dim = 128;
  l.dtype = DType::kBFloat16;
  l.tokens_per_block = 16;
  return l;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <dir> <capacity GiB> [fill|open] [threads] [layers]\n",
                 argv[0]);
    return 2;
  }
  DiskTierOptions options;
  options.directory = argv[1];
  options.capacity_bytes = static_cast<uint64_t>(std::atof(argv[2]) * double(uint64_t{1} << 30));
  options.reset_on_mismatch = true;
  const std::string mode = argc > 3 ? argv[3] : "fill";
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  const KvLayout layout =
      RealisticLayout(argc > 5 ? static_cast<uint32_t>(std::atoi(argv[5])) : 32);
  const NamespaceFingerprint ns = disk_test::TestNamespace();
  auto engine = TransferEngine::Create({});
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.status().ToString().c_str());
    return 1;
  }

  if (mode == "fill") {
    auto start = std::chrono::steady_clock::now();
    auto tier = DiskTier::Open(options, layout, engine->get());
    if (!tier.ok()) {
      std::fprintf(stderr, "%s\n", tier.status().ToString().c_str());
      return 1;
    }
    std::printf("created %u records of %llu bytes (%s) in %.3f s\n", (*tier)->capacity_records(),
                static_cast<unsigned long long>((*tier)->geometry().record_bytes),
                (*tier)->direct_io() ? "O_DIRECT" : "buffered", Seconds(start));
    const uint32_t n = (*tier)->capacity_records();
    start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        std::vector<std::byte> block((*tier)->block_bytes());
        for (uint32_t i = static_cast<uint32_t>(t); i < n; i += static_cast<uint32_t>(threads)) {
          const BlockKey key = disk_test::TestKey(1, i);
          disk_test::FillBlock(key, block.data(), block.size());
          auto r = (*tier)->Write(key, ns, block.data());
          if (!r.ok() || *r != DiskWriteOutcome::kWritten) {
            std::fprintf(stderr, "write %u: %s\n", i,
                         r.ok() ? std::string(DiskWriteOutcomeName(*r)).c_str()
                                : r.status().ToString().c_str());
            std::exit(1);
          }
        }
      });
    }
    for (auto& w : workers) w.join();
    const double secs = Seconds(start);
    std::printf("filled %u blocks (%.2f GiB) in %.2f s: %.0f MiB/s\n", n,
                double(n) * double((*tier)->block_bytes()) / double(uint64_t{1} << 30), secs,
                double(n) * double((*tier)->block_bytes()) / double(1 << 20) / secs);
    start = std::chrono::steady_clock::now();
    tier->reset();
    std::printf("closed (fdatasync) in %.3f s\n", Seconds(start));
  } else if (mode != "open") {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }

  const auto start = std::chrono::steady_clock::now();
  auto tier = DiskTier::Open(options, layout, engine->get());
  const double open_secs = Seconds(start);
  if (!tier.ok()) {
    std::fprintf(stderr, "%s\n", tier.status().ToString().c_str());
    return 1;
  }
  const DiskTierStats st = (*tier)->stats();
  std::printf(
      "reopened %.2f GiB tier: %llu of %llu records recovered in %.3f s (Open total %.3f s; "
      "%llu invalid headers), index %.1f bytes/record\n",
      double((*tier)->geometry().total_bytes()) / double(uint64_t{1} << 30),
      static_cast<unsigned long long>(st.recovered_records),
      static_cast<unsigned long long>(st.capacity_records), st.recovery_seconds, open_secs,
      static_cast<unsigned long long>(st.recovery_invalid_headers), st.index_bytes_per_record);
  // Verify every 64th recovered block.
  std::vector<std::byte> out((*tier)->block_bytes()), want((*tier)->block_bytes());
  uint32_t checked = 0, bad = 0;
  const std::vector<BlockKey> keys = (*tier)->Keys();
  for (size_t i = 0; i < keys.size(); i += 64) {
    const uint32_t rec = (*tier)->Lease(keys[i]);
    const Status s = (*tier)->Read(rec, keys[i], ns, out.data());
    (*tier)->Unlease(rec);
    disk_test::FillBlock(keys[i], want.data(), want.size());
    ++checked;
    if (!s.ok() || out != want) ++bad;
  }
  std::printf("verified %u sampled blocks: %u bad\n", checked, bad);
  return bad == 0 ? 0 : 1;
}
