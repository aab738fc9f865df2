// strata-sharedfsbench: the shared-filesystem G4 store (FsStore) putting, then getting,
// `total` bytes of blocks on one directory, so it can stand beside fio on the same
// directory (bench/run_sharedfs_baselines.sh).
//
// For every block size x thread count: `threads` client threads each put single-block
// batches (queue depth = threads, like fio psync with numjobs = threads) into a fresh
// store with io_threads = threads; the page cache is dropped; then every block is got
// back in a shuffled order and checked. Reports decimal GB/s of block payload and the
// mean / p99 latency of one object.
//
//   strata-sharedfsbench [--dir DIR] [--total-gib G] [--block-kib 256,2048]
//                        [--threads 1,4,8] [--direct on|off] [--fsync on|off] [--json FILE]
//                        [--no-verify] [--no-drop-caches]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "remote/fs_store.h"

namespace {

using namespace strata;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string dir = "/var/tmp/strata-sharedfsbench";
  double total_gib = 1.0;
  std::vector<uint32_t> block_kib = {256, 2048};
  std::vector<uint32_t> threads = {1, 4, 8};
  bool direct = true;
  bool fsync = true;
  bool drop_caches = true;
  bool verify = true;
  std::string json;
};

struct Phase {
  double gbps = 0;
  double mean_ms = 0;
  double p99_ms = 0;
  uint64_t errors = 0;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// Drops the page cache so gets read the device (we run as root; a container may refuse).
bool DropCaches() {
  sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  if (!f) return false;
  f << "3\n";
  f.flush();
  return static_cast<bool>(f);
}

// Runs `op(i)` for i in [0, n) on `threads` client threads, each taking the next index;
// op returns the latency (ms) of its store call. Returns those and the wall time.
template <typename Op>
std::pair<std::vector<double>, double> Drive(size_t n, uint32_t threads, Op op) {
  std::vector<double> lat(n);
  std::atomic<size_t> next{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (uint32_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) lat[i] = op(i);
    });
  }
  for (auto& th : pool) th.join();
  return {std::move(lat), std::chrono::duration<double>(Clock::now() - t0).count()};
}

Phase Summarize(const std::vector<double>& lat, double seconds, uint64_t bytes, uint64_t errors) {
  Phase p;
  p.gbps = static_cast<double>(bytes) / seconds / 1e9;
  p.mean_ms = std::accumulate(lat.begin(), lat.end(), 0.0) / static_cast<double>(lat.size());
  p.p99_ms = Percentile(lat, 0.99);
  p.errors = errors;
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"strata-sharedfsbench: FsStore put/get throughput and latency"};
  app.add_option("--dir", c.dir, "directory on the filesystem under test (not tmpfs)");
  app.add_option("--total-gib", c.total_gib, "GiB of blocks per run");
  app.add_option("--block-kib", c.block_kib, "block sizes in KiB")->delimiter(',');
  app.add_option("--threads", c.threads, "client threads = io_threads (queue depth)")
      ->delimiter(',');
  std::string direct = "on", fsync_opt = "on";
  app.add_option("--direct", direct, "O_DIRECT: on or off")->check(CLI::IsMember({"on", "off"}));
  app.add_option("--fsync", fsync_opt, "fdatasync each object before publishing: on or off")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_flag("!--no-drop-caches", c.drop_caches, "do not drop the page cache before gets");
  app.add_flag("!--no-verify", c.verify, "do not compare got bytes with what was put");
  app.add_option("--json", c.json, "append one JSON object per run to this file");
  CLI11_PARSE(app, argc, argv);
  c.direct = direct == "on";
  c.fsync = fsync_opt == "on";

  const auto ns = [] {
    NamespaceFingerprint f;
    for (size_t i = 0; i < f.bytes.size(); ++i) f.bytes[i] = static_cast<uint8_t>(i * 13 + 1);
    return f;
  }();
  std::mt19937_64 rng(static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  std::printf("# strata-sharedfsbench dir %s, %.2f GiB per run, O_DIRECT %s, fsync %s\n",
              c.dir.c_str(), c.total_gib, direct.c_str(), fsync_opt.c_str());
  std::printf("%-9s %-7s %-6s | %-9s %-9s %-9s | %-9s %-9s %-9s | %s\n", "block", "threads",
              "direct", "put GB/s", "mean ms", "p99 ms", "get GB/s", "mean ms", "p99 ms", "notes");
  bool all_ok = true;
  for (uint32_t kib : c.block_kib) {
    const size_t block = size_t{kib} * 1024;
    const size_t n = std::max<size_t>(
        1, static_cast<size_t>(c.total_gib * 1024 * 1024 * 1024 / static_cast<double>(block)));
    // 16 distinct payloads, reused: keys differ, so every object is a new file.
    std::vector<std::vector<std::byte>> payloads(16, std::vector<std::byte>(block));
    for (auto& p : payloads) {
      for (size_t i = 0; i + 8 <= block; i += 8) {
        const uint64_t v = rng();
        std::memcpy(p.data() + i, &v, 8);
      }
    }
    for (uint32_t threads : c.threads) {
      const std::string dir = fmt::format("{}/run-{}k-{}t", c.dir, kib, threads);
      std::filesystem::remove_all(dir);
      FsStoreOptions o;
      o.directory = dir;
      o.block_bytes = block;
      o.io_threads = threads;
      o.use_direct_io = c.direct;
      o.fsync_on_publish = c.fsync;
      o.background_eviction = false;
      o.io_timeout = std::chrono::seconds(120);
      o.grace_period = std::chrono::seconds(300);
      Result<std::unique_ptr<FsStore>> created = FsStore::Create(o);
      if (!created.ok()) {
        std::fprintf(stderr, "creating the store in %s: %s\n", dir.c_str(),
                     created.status().ToString().c_str());
        return 1;
      }
      FsStore& store = **created;
      std::vector<BlockKey> keys(n);
      for (auto& k : keys)
        for (size_t w = 0; w < 4; ++w) {
          const uint64_t v = rng();
          std::memcpy(k.bytes.data() + 8 * w, &v, 8);
        }
      std::atomic<uint64_t> put_errors{0}, get_errors{0};
      auto [put_lat, put_s] = Drive(n, threads, [&](size_t i) {
        RemoteStore::Put p{keys[i], payloads[i % payloads.size()]};
        const auto t = Clock::now();
        store.PutBatch(std::span(&p, 1), ns);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t).count();
        if (!p.status.ok() || !p.written) {
          if (put_errors.fetch_add(1) == 0)
            std::fprintf(stderr, "put: %s\n", p.status.ToString().c_str());
        }
        return ms;
      });
      const bool dropped = c.drop_caches && DropCaches();
      std::vector<size_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<std::vector<std::byte>> outs(threads, std::vector<std::byte>(block));
      std::atomic<uint32_t> next_out{0};
      thread_local int out_slot = -1;
      auto [get_lat, get_s] = Drive(n, threads, [&](size_t j) {
        if (out_slot < 0) out_slot = static_cast<int>(next_out.fetch_add(1));
        std::vector<std::byte>& out = outs[static_cast<size_t>(out_slot)];
        const size_t i = order[j];
        RemoteStore::Get g{keys[i], out};
        const auto t = Clock::now();
        store.GetBatch(std::span(&g, 1), ns);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t).count();
        // The store verified the checksum; this comparison (outside the latency, inside the
        // throughput) checks the store itself.
        const bool ok = g.status.ok() &&
                        (!c.verify ||
                         std::memcmp(out.data(), payloads[i % payloads.size()].data(), block) == 0);
        if (!ok && get_errors.fetch_add(1) == 0)
          std::fprintf(stderr, "get: %s\n", g.status.ToString().c_str());
        return ms;
      });
      out_slot = -1;
      const Phase put = Summarize(put_lat, put_s, uint64_t{n} * block, put_errors.load());
      const Phase get = Summarize(get_lat, get_s, uint64_t{n} * block, get_errors.load());
      std::string notes = store.notes();
      if (!dropped) notes += std::string(notes.empty() ? "" : "; ") + "page cache NOT dropped";
      if (put.errors + get.errors > 0) {
        all_ok = false;
        notes += fmt::format("; {} put and {} get errors", put.errors, get.errors);
      }
      std::printf("%-9s %-7u %-6s | %-9.3f %-9.2f %-9.2f | %-9.3f %-9.2f %-9.2f | %s\n",
                  fmt::format("{} KiB", kib).c_str(), threads, store.direct_io() ? "yes" : "no",
                  put.gbps, put.mean_ms, put.p99_ms, get.gbps, get.mean_ms, get.p99_ms,
                  notes.c_str());
      std::fflush(stdout);
      if (!c.json.empty()) {
        std::ofstream j(c.json, std::ios::app);
        j << fmt::format(
            "{{\"block_kib\": {}, \"threads\": {}, \"direct\": {}, \"fsync\": {}, \"objects\": {}, "
            "\"put_gbps\": {:.4f}, \"put_mean_ms\": {:.3f}, \"put_p99_ms\": {:.3f}, "
            "\"get_gbps\": {:.4f}, \"get_mean_ms\": {:.3f}, \"get_p99_ms\": {:.3f}, "
            "\"errors\": {}, \"cache_dropped\": {}}}\n",
            kib, threads, store.direct_io(), c.fsync, n, put.gbps, put.mean_ms, put.p99_ms,
            get.gbps, get.mean_ms, get.p99_ms, put.errors + get.errors, dropped);
      }
      created->reset();
      std::filesystem::remove_all(dir);
    }
  }
  return all_ok ? 0 : 1;
}
