// A `strata daemon` client that stores and loads prompts until it is killed — the child of
// the daemon crash tests. Prints "ACK <seed>" once every block of prompt <seed> is stored
// (the daemon acknowledged the commit), and checks every block it loads back against the
// bytes it stored: a wrong one prints "WRONG <seed> <block>" and exits 3.
//
// usage: strata_daemon_crash_client SOCKET FIRST_SEED
#include <cstdio>
#include <cstdlib>
#include <string>

#include "daemon_test_util.h"

using namespace strata;
using namespace strata::daemon_test;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SOCKET FIRST_SEED\n", argv[0]);
    return 2;
  }
  BlockManagerOptions o;
  o.model_fingerprint = "daemon-crash";
  o.layout = TinyLayout();
  o.daemon.socket = argv[1];
  o.daemon.io_timeout = 2s;
  o.daemon.reconnect_interval = 20ms;
  auto manager = BlockManager::Create(o);
  if (!manager.ok()) {
    std::fprintf(stderr, "client: %s\n", manager.status().ToString().c_str());
    return 2;
  }
  BlockManager& m = **manager;
  HostDevice device(4 * kPromptBlocks);
  if (Status s = m.RegisterDeviceCache(device.cache); !s.ok()) return 2;
  const uint32_t first = static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 10));
  std::printf("READY\n");
  std::fflush(stdout);
  for (uint32_t seed = first;; ++seed) {
    const RequestContext store_ctx{"store"};
    auto keys = m.ComputeKeys(Prompt(seed), store_ctx);
    std::vector<uint32_t> dev;
    for (uint32_t i = 0; i < kPromptBlocks; ++i) {
      device.Fill(i, seed, i);
      dev.push_back(i);
    }
    auto h = m.Store(store_ctx, *keys, dev);
    if (h.ok() && h->Wait(10s).ok()) {
      bool all = true;
      for (size_t i = 0; i < h->num_blocks(); ++i)
        all = all && (h->state(i) == BlockState::kDone || h->state(i) == BlockState::kSkipped);
      if (all) {
        std::printf("ACK %u\n", seed);
        std::fflush(stdout);
      }
    }
    if (seed == first) continue;
    // Load an earlier prompt into blocks 16.. and check every usable block.
    const uint32_t back = first + (seed * 7919u) % (seed - first);
    const RequestContext ctx{"load"};
    auto match = m.Match(Prompt(back), ctx);
    if (!match.ok()) continue;
    std::vector<uint32_t> into;
    for (uint32_t i = 0; i < match->num_matched_blocks(); ++i) into.push_back(16 + i);
    auto load = m.Load(*match, into);
    if (load.ok() && load->Wait(10s).ok()) {
      for (uint32_t i = 0; i < load->usable_blocks(); ++i) {
        if (!device.Holds(16 + i, back, i)) {
          std::printf("WRONG %u %u\n", back, i);
          std::fflush(stdout);
          return 3;
        }
      }
    }
    m.Release("load");
  }
}
