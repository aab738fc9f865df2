// Helper process for the disk tier's crash and locking tests (disk_crash_test.cc).
//
//   strata_disk_crash_child write <dir> <stream> <log> <threads> <sync 0|1> <direct 0|1>
//     Opens the tier in <dir> and writes blocks with keys TestKey(stream * 64 + thread, i)
//     from <threads> threads until killed. After each Write acknowledges a block it appends
//     "A <key hex>" to <log>; each key the tier evicts appends "E <key hex>" before its space
//     is reused. Each line is one write(2), so a SIGKILL never leaves half a line. "ready" goes
//     to stdout after the first acknowledgement. Exits by itself after 60 s should the parent
//     die.
//   strata_disk_crash_child probe <dir>
//     Tries to open the tier: exit 0 opened, 3 refused as busy (Unavailable), 1 otherwise.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "disk/disk_test_util.h"
#include "disk/disk_tier.h"

namespace {

using namespace strata;

int g_log_fd = -1;

void LogLine(char kind, const BlockKey& key) {
  const std::string line = std::string(1, kind) + " " + key.ToHex() + "\n";
  (void)!write(g_log_fd, line.data(), line.size());
}

int Write(const std::string& dir, uint64_t stream, const std::string& log, int threads, bool sync,
          bool direct) {
  g_log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (g_log_fd < 0) {
    std::perror("open log");
    return 1;
  }
  auto engine = TransferEngine::Create({});
  if (!engine.ok()) {
    std::fprintf(stderr, "engine: %s\n", engine.status().ToString().c_str());
    return 1;
  }
  DiskTierOptions options = disk_test::CrashTierOptions(dir);
  options.sync_on_write = sync;
  options.use_direct_io = direct;
  options.on_remove = [](const BlockKey& key, DiskRemoval why) {
    if (why == DiskRemoval::kEvicted) LogLine('E', key);
  };
  auto tier = DiskTier::Open(options, disk_test::SmallLayout(), engine->get());
  if (!tier.ok()) {
    std::fprintf(stderr, "open: %s\n", tier.status().ToString().c_str());
    return 1;
  }
  // The parent starts its kill timer once blocks are flowing: after the first acknowledgement.
  std::once_flag ready;
  const NamespaceFingerprint ns = disk_test::TestNamespace();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<std::byte> block((*tier)->block_bytes());
      for (uint64_t i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
        const BlockKey key = disk_test::TestKey(stream * 64 + static_cast<uint64_t>(t), i);
        disk_test::FillBlock(key, block.data(), block.size());
        auto outcome = (*tier)->Write(key, ns, block.data());
        if (outcome.ok() && *outcome == DiskWriteOutcome::kWritten) {
          LogLine('A', key);
          std::call_once(ready, [] {
            std::printf("ready\n");
            std::fflush(stdout);
          });
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return 0;
}

int Probe(const std::string& dir) {
  auto engine = TransferEngine::Create({});
  if (!engine.ok()) return 1;
  auto tier =
      DiskTier::Open(disk_test::CrashTierOptions(dir), disk_test::SmallLayout(), engine->get());
  if (tier.ok()) return 0;
  std::printf("%s\n", tier.status().ToString().c_str());
  return tier.status().code() == StatusCode::kUnavailable ? 3 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "write" && argc == 8)
    return Write(argv[2], std::strtoull(argv[3], nullptr, 10), argv[4], std::atoi(argv[5]),
                 std::atoi(argv[6]) != 0, std::atoi(argv[7]) != 0);
  if (mode == "probe" && argc == 3) return Probe(argv[2]);
  std::fprintf(stderr,
               "usage: %s write <dir> <stream> <log> <threads> <sync 0|1> <direct 0|1>\n"
               "       %s probe <dir>\n",
               argv[0], argv[0]);
  return 2;
}
