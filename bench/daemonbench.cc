// strata-daemonbench: what client mode costs. One process runs, side by side on the same
// device blocks and the same keys, an in-process BlockManager (its tiers in the process) and
// a BlockManager in client mode attached to a `daemon::DaemonServer` started in this process
// on a private socket (G2 the daemon's shared memory mapped into the client; match, lease,
// reserve, commit and load-round bookkeeping over the Unix socket). Same G2 size, no G3, no
// G4, same worker threads and transfer options. For each block size:
//
//   store   `round_mib` of fresh blocks (new keys every round, so nothing is skipped) Stored
//           from emulated device memory into G2 in calls of `call_mib`, all calls submitted
//           at once, timed to the last handle done; median of `reps` rounds
//   load    those prompts Matched (all in G2) and Loaded into other device blocks, waited for,
//           Released; timed from the first Match to the last Release; median of `reps`
//           (each round runs in both modes back to back, alternating which goes first, and
//           the ratio is given both of the medians and as the median of the per-round ratios)
//   match   Match of an 8K-token prompt (512 blocks of 16 tokens) fully in G2, then Release:
//           p50/p99 of each call, `match_iters` times (in chunks alternating the two modes)
//   calls   the Store call and the Load call alone (not the transfer), with nothing else
//           queued: one `call_mib` call, wait for its handle (not timed), next; p50/p99
//
// Before timing, each manager's G2 is prefaulted and then written once end to end (warm-up
// store rounds, untimed), so neither mode pays first touch — in client mode the client's own
// mapping of the daemon's memory faults in on first use too — and 64 blocks of the warm-up
// load are compared byte for byte with the device blocks they were stored from.
//
// Only the public API (strata/block_manager.h) is used on the engine side, as an engine would;
// the daemon is daemon::DaemonServer, as `strata daemon` runs it.
#include <sys/socket.h>
#include <unistd.h>

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "daemon/daemon_server.h"
#include "strata/block_manager.h"

namespace {

using namespace strata;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string sizes = "64,256,1024,2048";  // KiB
  double round_mib = 256;                  // per store/load round
  double call_mib = 16;                    // per Store / per prompt
  uint32_t reps = 15;
  double g2_factor = 1.25;  // G2 = this x a round (at least 2 x the latency prompt)
  uint32_t latency_blocks = 512;
  uint32_t match_iters = 5000;
  uint32_t call_iters = 200;
  uint32_t worker_threads = 2;
  uint32_t connections = 8;
  bool huge_pages = false;
  std::string order = "kv_major";
  std::string hash = "sha256";
  std::string modes = "both";
  std::string json;
  bool verbose = false;
};

[[noreturn]] void Die(const std::string& what) {
  fmt::print(stderr, "strata-daemonbench: {}\n", what);
  std::exit(1);
}
template <typename T>
T Must(Result<T> r, std::string_view what) {
  if (!r.ok()) Die(fmt::format("{}: {}", what, r.status().ToString()));
  return std::move(r).value();
}
void Must(const Status& st, std::string_view what) {
  if (!st.ok()) Die(fmt::format("{}: {}", what, st.ToString()));
}

double Us(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}
double Median(std::vector<double> v) {
  return Percentile(std::move(v), 0.5);
}
// y[i] / x[i]: the two modes ran round i back to back, so each pair saw the same machine.
std::vector<double> PairRatios(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<double> r;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) r.push_back(y[i] / x[i]);
  return r;
}

// Block sizes with 16 tokens of bf16 K/V per block: bytes = layers x heads x dim x 64.
KvLayout LayoutFor(uint32_t kib) {
  KvLayout l{.num_layers = 32,
             .num_kv_heads = 8,
             .head_dim = 128,
             .dtype = DType::kBFloat16,
             .tokens_per_block = 16};
  switch (kib) {
    case 64:  // 8 layers x 2 heads x 64 dim
      l.num_layers = 8, l.num_kv_heads = 2, l.head_dim = 64;
      break;
    case 256:  // 16 x 2 x 128
      l.num_layers = 16, l.num_kv_heads = 2, l.head_dim = 128;
      break;
    case 1024:  // 32 x 4 x 128
      l.num_kv_heads = 4;
      break;
    case 2048:  // 32 x 8 x 128 (a Llama-3-8B shard)
      break;
    default: {
      // Any other multiple of 64 KiB: 32 layers x 128 dim, heads to fit.
      if (kib % 64 != 0) Die(fmt::format("block size {} KiB is not a multiple of 64 KiB", kib));
      l.num_kv_heads = kib / 256 ? kib / 256 : 1;
      l.num_layers = kib / 8 / l.num_kv_heads;
    }
  }
  if (l.block_bytes() != size_t{kib} << 10) Die(fmt::format("no layout of {} KiB", kib));
  return l;
}

// The engine's device cache in host memory: one arena shared by every layout (and both
// managers), faulted in once.
struct DeviceArena {
  explicit DeviceArena(size_t bytes) : size(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) Die("mmap of the device arena");
    base = static_cast<std::byte*>(p);
    std::mt19937_64 rng(42);
    auto* w = reinterpret_cast<uint64_t*>(base);
    for (size_t i = 0; i < bytes / 8; ++i) w[i] = rng();
  }
  ~DeviceArena() { munmap(base, size); }
  // A dense view of `blocks` blocks of `layout` over the arena.
  DeviceCache View(const KvLayout& layout, uint32_t blocks, DeviceOrder order) const {
    DeviceCache c;
    c.kind = DeviceMemoryKind::kHostEmulated;
    c.view.layout = layout;
    c.view.order = order;
    c.view.num_blocks = blocks;
    const size_t layer = size_t{blocks} * layout.layer_block_bytes();
    if (layer * layout.num_layers > size) Die("device arena too small");
    for (uint32_t l = 0; l < layout.num_layers; ++l) c.view.layer_base.push_back(base + l * layer);
    return c;
  }
  std::byte* base = nullptr;
  size_t size = 0;
};

// Every full block of a prompt; equal ids give equal prompts, different ids share no block.
std::vector<TokenId> PromptTokens(uint64_t id, uint32_t blocks, uint32_t tokens_per_block) {
  std::vector<TokenId> t(size_t{blocks} * tokens_per_block);
  for (size_t i = 0; i < t.size(); ++i)
    t[i] = static_cast<TokenId>((id * 1000003 + i * 7919) % 50000);
  t[0] = static_cast<TokenId>(id);
  return t;
}

struct Prompt {
  std::vector<TokenId> tokens;
  std::vector<BlockKey> keys;
  std::vector<uint32_t> src, dst;  // device blocks stored from / loaded into
  RequestContext ctx;
};

// One of the two managers under test.
struct Side {
  std::string name;  // "inproc" or "daemon"
  std::unique_ptr<daemon::DaemonServer> server;
  std::unique_ptr<BlockManager> manager;
  // Results.
  std::vector<double> store_gbps, load_gbps;
  std::vector<double> store_call_busy_us, load_call_busy_us;  // calls inside the rounds
  std::vector<double> match_us, release_us, match_release_us;
  std::vector<double> store_call_us, load_call_us;  // idle: one call at a time
};

void WaitAll(const std::vector<TransferHandle>& handles, const char* what, const Side& s) {
  for (const TransferHandle& h : handles) {
    Must(h.Wait(std::chrono::minutes(2)), fmt::format("{} {} wait", s.name, what));
    for (size_t i = 0; i < h.num_blocks(); ++i)
      if (h.state(i) != BlockState::kDone)
        Die(fmt::format("{} {}: block {} is {}: {}", s.name, what, i, BlockStateName(h.state(i)),
                        h.error(i).ToString()));
  }
}

// Stores every prompt (all calls submitted, then waited for): seconds.
double StoreRound(Side& s, const std::vector<Prompt>& prompts, bool record) {
  std::vector<TransferHandle> handles;
  handles.reserve(prompts.size());
  const auto t0 = Clock::now();
  for (const Prompt& p : prompts) {
    const auto c0 = Clock::now();
    auto h = s.manager->Store(p.ctx, p.keys, p.src);
    if (record) s.store_call_busy_us.push_back(Us(Clock::now() - c0));
    handles.push_back(Must(std::move(h), s.name + " Store"));
  }
  WaitAll(handles, "store", s);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Matches and loads every prompt (all loads submitted, then waited for), then Releases: seconds.
double LoadRound(Side& s, const std::vector<Prompt>& prompts, bool record) {
  std::vector<TransferHandle> handles;
  handles.reserve(prompts.size());
  const auto t0 = Clock::now();
  for (const Prompt& p : prompts) {
    MatchResult m = Must(s.manager->Match(p.tokens, p.ctx), s.name + " Match");
    if (m.num_matched_blocks() != p.keys.size())
      Die(fmt::format("{}: matched {} of {} blocks of a stored prompt", s.name,
                      m.num_matched_blocks(), p.keys.size()));
    const auto c0 = Clock::now();
    auto h = s.manager->Load(m, p.dst);
    if (record) s.load_call_busy_us.push_back(Us(Clock::now() - c0));
    handles.push_back(Must(std::move(h), s.name + " Load"));
  }
  WaitAll(handles, "load", s);
  for (const Prompt& p : prompts) s.manager->Release(p.ctx.request_id);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void WaitPrefault(const Side& s, uint64_t bytes) {
  const auto t0 = Clock::now();
  while (s.manager->stats().host_prefaulted_bytes < bytes &&
         Clock::now() - t0 < std::chrono::minutes(2))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

struct Json {
  std::FILE* file = nullptr;
  void Line(const std::string& s) {
    fmt::print("RESULT {}\n", s);
    if (file) fmt::print(file, "{}\n", s);
  }
};

std::string Dist(const std::vector<double>& v, uint32_t kib, std::string_view mode,
                 std::string_view metric, std::string_view unit) {
  return fmt::format(
      R"({{"bench":"daemonbench","block_kib":{},"mode":"{}","metric":"{}","unit":"{}","n":{},)"
      R"("p50":{:.3f},"p90":{:.3f},"p99":{:.3f},"min":{:.3f},"max":{:.3f}}})",
      kib, mode, metric, unit, v.size(), Percentile(v, 0.5), Percentile(v, 0.9),
      Percentile(v, 0.99), v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()),
      v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()));
}

// The floor under every daemon call, measured beside it: a round trip of a request and a
// reply of the given sizes between two threads over a Unix stream socket pair, nothing else.
std::vector<double> SocketRoundTrips(size_t request_bytes, size_t reply_bytes, uint32_t iters) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return {};
  auto exact = [](int fd, void* buf, size_t n, bool write_it) {
    auto* p = static_cast<char*>(buf);
    for (size_t done = 0; done < n;) {
      const ssize_t r = write_it ? write(fd, p + done, n - done) : read(fd, p + done, n - done);
      if (r <= 0) return false;
      done += static_cast<size_t>(r);
    }
    return true;
  };
  std::thread echo([&] {
    std::vector<char> in(request_bytes), out(reply_bytes);
    while (exact(fds[1], in.data(), in.size(), false) &&
           exact(fds[1], out.data(), out.size(), true)) {
    }
  });
  std::vector<char> req(request_bytes, 1), rep(reply_bytes);
  std::vector<double> us;
  for (uint32_t i = 0; i < iters + 100; ++i) {
    const auto t0 = Clock::now();
    if (!exact(fds[0], req.data(), req.size(), true) ||
        !exact(fds[0], rep.data(), rep.size(), false))
      break;
    if (i >= 100) us.push_back(Us(Clock::now() - t0));
  }
  close(fds[0]);
  echo.join();
  close(fds[1]);
  return us;
}

int Run(const Config& cfg) {
  std::vector<uint32_t> sizes;
  {
    std::stringstream ss(cfg.sizes);
    for (std::string item; std::getline(ss, item, ',');) sizes.push_back(std::stoul(item));
  }
  const DeviceOrder order =
      cfg.order == "block_major" ? DeviceOrder::kBlockMajor : DeviceOrder::kKvMajor;
  const HashAlgorithm hash = Must(ParseHashAlgorithm(cfg.hash), "--hash");
  const uint64_t round_bytes = static_cast<uint64_t>(cfg.round_mib * double(1 << 20));
  const uint64_t call_bytes = static_cast<uint64_t>(cfg.call_mib * double(1 << 20));
  const bool run_inproc = cfg.modes != "daemon", run_daemon = cfg.modes != "inproc";

  // Device: stored-from half, loaded-into half.
  uint64_t max_block = 0;
  for (uint32_t kib : sizes) max_block = std::max<uint64_t>(max_block, uint64_t{kib} << 10);
  // Every prompt of a size (a round's, the latency prompt, a call's) fits in a round.
  const uint64_t arena_bytes = 2 * (std::max(round_bytes, max_block) + max_block);
  auto t_arena = Clock::now();
  DeviceArena arena(arena_bytes);
  fmt::print(
      "strata-daemonbench: {} MiB device arena filled in {:.2f} s; rounds of {} MiB in calls of "
      "{} MiB, {} reps; G2 {:.2f} x a round; {} workers, {} socket connections, {} device "
      "order, {} keys, huge pages {}\n",
      arena_bytes >> 20, std::chrono::duration<double>(Clock::now() - t_arena).count(),
      cfg.round_mib, cfg.call_mib, cfg.reps, cfg.g2_factor, cfg.worker_threads, cfg.connections,
      cfg.order, cfg.hash, cfg.huge_pages);

  char tmpl[] = "/tmp/strata-daemonbench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
  const std::string dir = tmpl;
  Json json;
  if (!cfg.json.empty()) {
    json.file = std::fopen(cfg.json.c_str(), "a");
    if (!json.file) Die("cannot open " + cfg.json);
  }

  struct Row {
    uint32_t kib;
    uint32_t lat_blocks;
    std::vector<Side> sides;
  };
  std::vector<Row> rows;

  uint64_t next_id = 1;
  for (size_t si = 0; si < sizes.size(); ++si) {
    const uint32_t kib = sizes[si];
    const KvLayout layout = LayoutFor(kib);
    const uint64_t block = layout.block_bytes();
    const uint32_t round_blocks = static_cast<uint32_t>(std::max<uint64_t>(1, round_bytes / block));
    const uint32_t call_blocks =
        static_cast<uint32_t>(std::clamp<uint64_t>(call_bytes / block, 1, round_blocks));
    const uint32_t calls = (round_blocks + call_blocks - 1) / call_blocks;
    const uint32_t g2_blocks =
        static_cast<uint32_t>(std::ceil(double(round_blocks) * cfg.g2_factor)) + 1;
    const uint32_t lat_blocks = std::min({cfg.latency_blocks, g2_blocks / 2, round_blocks});
    const uint32_t device_blocks = static_cast<uint32_t>(arena_bytes / block);
    const uint32_t dst_base = device_blocks / 2;

    BlockManagerOptions base;
    base.model_fingerprint = "strata-daemonbench";
    base.layout = layout;
    base.hash_algorithm = hash;
    base.host.capacity_bytes = uint64_t{g2_blocks} * block;
    base.host.huge_pages = cfg.huge_pages;
    base.host.pin_for_cuda = false;
    base.disk.capacity_bytes = 0;
    base.worker_threads = cfg.worker_threads;
    const DeviceCache device = arena.View(layout, device_blocks, order);

    Row row{kib, lat_blocks, {}};
    const auto t_setup = Clock::now();
    if (run_inproc) {
      Side s;
      s.name = "inproc";
      s.manager = Must(BlockManager::Create(base), "in-process BlockManager");
      row.sides.push_back(std::move(s));
    }
    if (run_daemon) {
      Side s;
      s.name = "daemon";
      const std::string socket = fmt::format("{}/d{}.sock", dir, kib);
      s.server = Must(daemon::DaemonServer::Start(base, {.socket_path = socket}), "DaemonServer");
      BlockManagerOptions client;
      client.model_fingerprint = base.model_fingerprint;
      client.layout = layout;
      client.hash_algorithm = hash;
      client.host.huge_pages = cfg.huge_pages;
      client.host.pin_for_cuda = false;
      client.worker_threads = cfg.worker_threads;
      client.transfer = base.transfer;
      client.daemon.socket = socket;
      client.daemon.connections = cfg.connections;
      s.manager = Must(BlockManager::Create(client), "client-mode BlockManager");
      row.sides.push_back(std::move(s));
    }
    for (Side& s : row.sides) {
      Must(s.manager->RegisterDeviceCache(device), s.name + " RegisterDeviceCache");
      WaitPrefault(s, base.host.capacity_bytes);
    }
    const double prefault_s = std::chrono::duration<double>(Clock::now() - t_setup).count();

    // Prompts of call_blocks blocks covering a round; src [0, round), dst [dst_base, +round).
    auto make_round = [&](uint32_t blocks_total, uint32_t per_call) {
      std::vector<Prompt> ps;
      for (uint32_t first = 0; first < blocks_total; first += per_call) {
        const uint32_t n = std::min(per_call, blocks_total - first);
        Prompt p;
        const uint64_t id = next_id++;
        p.tokens = PromptTokens(id, n, layout.tokens_per_block);
        p.ctx.request_id = fmt::format("r{}", id);
        p.keys = Must(row.sides[0].manager->ComputeKeys(p.tokens, p.ctx), "ComputeKeys");
        for (uint32_t i = 0; i < n; ++i) {
          p.src.push_back(first + i);
          p.dst.push_back(dst_base + first + i);
        }
        ps.push_back(std::move(p));
      }
      return ps;
    };

    // ---- warm-up: every G2 slot written once, one load verified -----------------------
    const auto t_warm = Clock::now();
    const uint32_t warm_rounds = (g2_blocks + round_blocks - 1) / round_blocks + 1;
    std::vector<Prompt> last;
    for (uint32_t w = 0; w < warm_rounds; ++w) {
      last = make_round(round_blocks, call_blocks);
      for (Side& s : row.sides) StoreRound(s, last, false);
    }
    for (Side& s : row.sides) {
      for (uint32_t i = 0; i < round_blocks; ++i)  // clear the blocks the load writes
        for (uint32_t l = 0; l < layout.num_layers; ++l)
          for (uint32_t c = 0; c < layout.num_components(); ++c)
            std::memset(device.view.chunk(l, c, dst_base + i), 0, layout.chunk_bytes());
      LoadRound(s, last, false);
      // Every 64th block, gathered in block-contiguous order, against the block it was stored from.
      std::vector<std::byte> a(block), b(block);
      for (uint32_t i = 0; i < round_blocks; i += std::max<uint32_t>(1, round_blocks / 64)) {
        Must(GatherBlock(device.view, i, a), "GatherBlock");
        Must(GatherBlock(device.view, dst_base + i, b), "GatherBlock");
        if (std::memcmp(a.data(), b.data(), block) != 0)
          Die(fmt::format("{}: loaded block {} differs from the stored one", s.name, i));
      }
    }
    const double warm_s = std::chrono::duration<double>(Clock::now() - t_warm).count();

    // ---- throughput: rounds alternating which mode goes first --------------------------
    for (uint32_t r = 0; r < cfg.reps; ++r) {
      const std::vector<Prompt> ps = make_round(round_blocks, call_blocks);
      std::vector<Side*> order_now;
      for (Side& s : row.sides) order_now.push_back(&s);
      if (r % 2 == 1) std::reverse(order_now.begin(), order_now.end());
      for (Side* s : order_now) {
        const double sec = StoreRound(*s, ps, true);
        s->store_gbps.push_back(double(round_blocks) * double(block) / sec / 1e9);
      }
      for (Side* s : order_now) {
        const double sec = LoadRound(*s, ps, true);
        s->load_gbps.push_back(double(round_blocks) * double(block) / sec / 1e9);
      }
    }

    // ---- latency: Match + Release of a prompt fully in G2 ------------------------------
    const std::vector<Prompt> lat = make_round(lat_blocks, lat_blocks);
    const Prompt& lp = lat[0];
    for (Side& s : row.sides) StoreRound(s, lat, false);
    const RequestContext lctx{"latency"};
    auto match_once = [&](Side& s, bool record) {
      const auto t0 = Clock::now();
      MatchResult m = Must(s.manager->Match(lp.tokens, lctx), s.name + " Match");
      const auto t1 = Clock::now();
      s.manager->Release(lctx.request_id);
      const auto t2 = Clock::now();
      if (m.num_matched_blocks() != lat_blocks)
        Die(fmt::format("{}: the latency prompt matched {} of {} blocks", s.name,
                        m.num_matched_blocks(), lat_blocks));
      if (record) {
        s.match_us.push_back(Us(t1 - t0));
        s.release_us.push_back(Us(t2 - t1));
        s.match_release_us.push_back(Us(t2 - t0));
      }
    };
    for (Side& s : row.sides)
      for (int i = 0; i < 50; ++i) match_once(s, false);
    constexpr uint32_t kChunk = 100;
    for (uint32_t done = 0; done < cfg.match_iters; done += kChunk)
      for (Side& s : row.sides)
        for (uint32_t i = done; i < std::min(cfg.match_iters, done + kChunk); ++i)
          match_once(s, true);

    // ---- latency: the Load call and the Store call alone, nothing else queued ----------
    const uint32_t cl_blocks = std::min(call_blocks, lat_blocks);
    const std::vector<TokenId> load_tokens(lp.tokens.begin(),
                                           lp.tokens.begin() + cl_blocks * layout.tokens_per_block);
    const std::vector<uint32_t> load_dst(lp.dst.begin(), lp.dst.begin() + cl_blocks);
    for (uint32_t i = 0; i < cfg.call_iters + 5; ++i) {
      for (Side& s : row.sides) {
        MatchResult m = Must(s.manager->Match(load_tokens, lctx), s.name + " Match");
        if (m.num_matched_blocks() != cl_blocks) Die(s.name + ": load-call prompt not in G2");
        const auto t0 = Clock::now();
        auto h = s.manager->Load(m, load_dst);
        const double us = Us(Clock::now() - t0);
        WaitAll({Must(std::move(h), s.name + " Load")}, "load", s);
        s.manager->Release(lctx.request_id);
        if (i >= 5) s.load_call_us.push_back(us);
      }
    }
    for (uint32_t i = 0; i < cfg.call_iters + 5; ++i) {
      const std::vector<Prompt> one = make_round(cl_blocks, cl_blocks);
      for (Side& s : row.sides) {
        const auto t0 = Clock::now();
        auto h = s.manager->Store(one[0].ctx, one[0].keys, one[0].src);
        const double us = Us(Clock::now() - t0);
        WaitAll({Must(std::move(h), s.name + " Store")}, "store", s);
        if (i >= 5) s.store_call_us.push_back(us);
      }
    }

    fmt::print(
        "{:>5} KiB blocks ({}): G2 {} blocks ({} MiB); {} calls x {} blocks a round; latency "
        "prompt {} blocks ({} tokens); call latency {} blocks; setup+prefault {:.2f} s, warm-up "
        "{:.2f} s, total {:.2f} s\n",
        kib, layout.ToString(), g2_blocks, (uint64_t{g2_blocks} * block) >> 20, calls, call_blocks,
        lat_blocks, lat_blocks * layout.tokens_per_block, cl_blocks, prefault_s, warm_s,
        std::chrono::duration<double>(Clock::now() - t_setup).count());
    std::fflush(stdout);

    // Tear down: client before its daemon.
    for (Side& s : row.sides) {
      s.manager.reset();
      s.server.reset();
    }
    rows.push_back(std::move(row));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);

  // ---- report ------------------------------------------------------------------------
  // A Match of the latency prompt sends its keys (16 + 4 + 32 B a block) and gets 5 B a block.
  const std::vector<double> floor_us = SocketRoundTrips(
      20 + size_t{cfg.latency_blocks} * 32, 44 + size_t{cfg.latency_blocks} * 5, cfg.match_iters);
  fmt::print(
      "\nfloor, measured now: a bare Unix-socket round trip between two threads with a Match's "
      "message sizes ({} B out, {} B back): p50/p99 {:.1f}/{:.1f} µs\n",
      20 + size_t{cfg.latency_blocks} * 32, 44 + size_t{cfg.latency_blocks} * 5,
      Percentile(floor_us, 0.5), Percentile(floor_us, 0.99));
  fmt::print("\n{:>8} {:>7} | {:>19} | {:>19} | {:>15} | {:>15} | {:>13} | {:>15} | {:>15}\n",
             "block", "mode", "store GB/s [min-max]", "load GB/s [min-max]", "Match p50/p99 µs",
             "+Release p50/p99", "Release p50", "Store call p50/p99", "Load call p50/p99");
  auto range = [](const std::vector<double>& v) {
    if (v.empty()) return std::string("-");
    return fmt::format("{:.2f} [{:.2f}-{:.2f}]", Median(v), *std::min_element(v.begin(), v.end()),
                       *std::max_element(v.begin(), v.end()));
  };
  auto pp = [](const std::vector<double>& v) {
    return fmt::format("{:.1f}/{:.1f}", Percentile(v, 0.5), Percentile(v, 0.99));
  };
  for (const Row& row : rows) {
    for (const Side& s : row.sides) {
      fmt::print(
          "{:>4} KiB {:>7} | {:>19} | {:>19} | {:>15} | {:>15} | {:>13.1f} | {:>15} | {:>15}\n",
          row.kib, s.name, range(s.store_gbps), range(s.load_gbps), pp(s.match_us),
          pp(s.match_release_us), Percentile(s.release_us, 0.5), pp(s.store_call_us),
          pp(s.load_call_us));
    }
    if (row.sides.size() == 2) {
      const Side& a = row.sides[0];
      const Side& d = row.sides[1];
      auto diff = [](const std::vector<double>& x, const std::vector<double>& y) {
        return fmt::format("{:+.1f}/{:+.1f}", Percentile(y, 0.5) - Percentile(x, 0.5),
                           Percentile(y, 0.99) - Percentile(x, 0.99));
      };
      const double sr = Median(d.store_gbps) / Median(a.store_gbps);
      const double lr = Median(d.load_gbps) / Median(a.load_gbps);
      const double spr = Median(PairRatios(a.store_gbps, d.store_gbps));
      const double lpr = Median(PairRatios(a.load_gbps, d.load_gbps));
      fmt::print(
          "{:>4} KiB {:>7} | {:>19} | {:>19} | {:>15} | {:>15} | {:>13.1f} | {:>15} | {:>15}\n",
          row.kib, "d / i", fmt::format("{:.3f} / pair {:.3f}", sr, spr),
          fmt::format("{:.3f} / pair {:.3f}", lr, lpr), diff(a.match_us, d.match_us),
          diff(a.match_release_us, d.match_release_us),
          Percentile(d.release_us, 0.5) - Percentile(a.release_us, 0.5),
          diff(a.store_call_us, d.store_call_us), diff(a.load_call_us, d.load_call_us));
    }
  }
  fmt::print(
      "(Match latency: a {}-block prompt where G2 holds 2x it, else fewer blocks — see each "
      "size's line above. Targets: daemon/inproc throughput >= 0.90 for blocks >= 256 KiB; "
      "< 20 µs added per Match. d / i: ratio of the medians / median of the per-round ratios, "
      "each round's two modes having run back to back.)\n\n",
      cfg.latency_blocks);

  json.Line(Dist(floor_us, 0, "socketpair", fmt::format("round_trip_{}blk_us", cfg.latency_blocks),
                 "us"));
  for (const Row& row : rows) {
    for (const Side& s : row.sides) {
      json.Line(Dist(s.store_gbps, row.kib, s.name, "store_gbps", "GB/s"));
      json.Line(Dist(s.load_gbps, row.kib, s.name, "load_gbps", "GB/s"));
      json.Line(
          Dist(s.match_us, row.kib, s.name, fmt::format("match_{}blk_us", row.lat_blocks), "us"));
      json.Line(Dist(s.release_us, row.kib, s.name, fmt::format("release_{}blk_us", row.lat_blocks),
                     "us"));
      json.Line(Dist(s.match_release_us, row.kib, s.name,
                     fmt::format("match_release_{}blk_us", row.lat_blocks), "us"));
      json.Line(Dist(s.store_call_us, row.kib, s.name, "store_call_idle_us", "us"));
      json.Line(Dist(s.load_call_us, row.kib, s.name, "load_call_idle_us", "us"));
      json.Line(Dist(s.store_call_busy_us, row.kib, s.name, "store_call_in_round_us", "us"));
      json.Line(Dist(s.load_call_busy_us, row.kib, s.name, "load_call_in_round_us", "us"));
    }
    if (row.sides.size() == 2) {
      const Side& a = row.sides[0];
      const Side& d = row.sides[1];
      json.Line(fmt::format(
          R"({{"bench":"daemonbench","block_kib":{},"mode":"daemon/inproc","store_ratio":{:.4f},)"
          R"("load_ratio":{:.4f},"store_ratio_pairs":{:.4f},"load_ratio_pairs":{:.4f},)"
          R"("match_added_p50_us":{:.2f},"match_added_p99_us":{:.2f},)"
          R"("match_release_added_p50_us":{:.2f},"match_release_added_p99_us":{:.2f},"latency_blocks":{}}})",
          row.kib, Median(d.store_gbps) / Median(a.store_gbps),
          Median(d.load_gbps) / Median(a.load_gbps), Median(PairRatios(a.store_gbps, d.store_gbps)),
          Median(PairRatios(a.load_gbps, d.load_gbps)),
          Percentile(d.match_us, 0.5) - Percentile(a.match_us, 0.5),
          Percentile(d.match_us, 0.99) - Percentile(a.match_us, 0.99),
          Percentile(d.match_release_us, 0.5) - Percentile(a.match_release_us, 0.5),
          Percentile(d.match_release_us, 0.99) - Percentile(a.match_release_us, 0.99),
          row.lat_blocks));
    }
  }
  if (json.file) std::fclose(json.file);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"strata-daemonbench: in-process BlockManager vs client mode on a strata daemon"};
  app.add_option("--sizes", cfg.sizes, "comma-separated block sizes, KiB (multiples of 64)");
  app.add_option("--round-mib", cfg.round_mib, "MiB stored (and loaded) per timed round");
  app.add_option("--call-mib", cfg.call_mib, "MiB per Store call / per loaded prompt");
  app.add_option("--reps", cfg.reps, "timed store and load rounds per size (median reported)");
  app.add_option("--g2-factor", cfg.g2_factor, "G2 capacity in rounds (>= 1)")
      ->check(CLI::Range(1.0, 16.0));
  app.add_option("--latency-blocks", cfg.latency_blocks,
                 "blocks of the Match-latency prompt (512 = 8K tokens)");
  app.add_option("--match-iters", cfg.match_iters, "Match + Release calls timed per mode");
  app.add_option("--call-iters", cfg.call_iters, "idle Store and Load calls timed per mode");
  app.add_option("--workers", cfg.worker_threads, "BlockManager worker_threads (both modes)");
  app.add_option("--connections", cfg.connections, "client-mode sockets to the daemon");
  app.add_flag("--huge-pages", cfg.huge_pages, "G2 on huge pages (both modes)");
  app.add_option("--order", cfg.order, "device order")
      ->check(CLI::IsMember({"kv_major", "block_major"}));
  app.add_option("--hash", cfg.hash, "block-key hash")
      ->check(CLI::IsMember({"sha256", "xxh3_128"}));
  app.add_option("--modes", cfg.modes, "inproc | daemon | both")
      ->check(CLI::IsMember({"inproc", "daemon", "both"}));
  app.add_option("--json", cfg.json, "append the RESULT lines (JSON) to this file");
  app.add_flag("--verbose", cfg.verbose, "show the library's info log");
  CLI11_PARSE(app, argc, argv);
  if (!cfg.verbose) spdlog::set_level(spdlog::level::warn);
  return Run(cfg);
}
