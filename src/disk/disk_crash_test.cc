// Crash consistency of the disk tier across processes: a child storing blocks from several
// threads is SIGKILLed at random moments, over and over; after each kill every block it
// acknowledged (and that was not evicted since) is found with its exact bytes, and every
// block the tier serves passes verification. Also: a second process cannot open a directory
// a tier holds.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

#include "disk/disk_test_util.h"
#include "disk/disk_tier.h"

extern char** environ;

namespace strata {
namespace {

// Starts the helper with `args`; with `stdout_fd` non-null its stdout is a pipe whose read
// end is returned there.
pid_t SpawnChild(const std::vector<std::string>& args, int* stdout_fd = nullptr) {
  std::vector<char*> argv;
  std::string program = STRATA_DISK_CRASH_CHILD;
  argv.push_back(program.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int fds[2] = {-1, -1};
  if (stdout_fd != nullptr) {
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  }
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "posix_spawn " << program << ": " << strerror(rc);
  if (stdout_fd != nullptr) {
    close(fds[1]);
    *stdout_fd = fds[0];
  }
  return rc == 0 ? pid : -1;
}

// Waits (up to a minute: sanitizer builds start slowly) for the line `want` on `fd`; other
// lines (the child's log output) are skipped.
bool WaitForLine(int fd, std::string_view want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  std::string line;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char c;
    const ssize_t n = read(fd, &c, 1);
    if (n <= 0) return false;  // the child died or closed stdout
    if (c != '\n') {
      line += c;
    } else if (line == want) {
      return true;
    } else {
      line.clear();
    }
  }
  return false;
}

int WaitExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

class DiskCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           (std::string("strata_disk_crash_") + info->name() + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto engine = TransferEngine::Create({});
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::unique_ptr<TransferEngine> engine_;
};

TEST_F(DiskCrashTest, AcknowledgedBlocksSurviveSigkillAndNothingTornIsServed) {
  constexpr int kKills = 24;
  const std::string tier_dir = (dir_ / "tier").string();
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(5, 200);
  const NamespaceFingerprint ns = disk_test::TestNamespace();

  std::unordered_set<BlockKey, BlockKeyHash> acked, evicted;
  uint64_t verified = 0, torn = 0, served = 0;
  for (int it = 0; it < kKills; ++it) {
    SCOPED_TRACE("kill " + std::to_string(it));
    const std::string log = (dir_ / ("log-" + std::to_string(it))).string();
    // Mostly O_DIRECT; every third kill hits a child that syncs each write, every fourth
    // one that writes through the page cache (where a kill can cut a write short).
    int child_out = -1;
    const pid_t pid = SpawnChild({"write", tier_dir, std::to_string(it), log, "3",
                                  it % 3 == 2 ? "1" : "0", it % 4 == 3 ? "0" : "1"},
                                 &child_out);
    ASSERT_GT(pid, 0);
    // The kill lands a random 5-200 ms after the child's first acknowledged block.
    // (The pipe stays open until the child is dead: its logging must not meet SIGPIPE.)
    const bool ready = WaitForLine(child_out, "ready");
    if (ready) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    const int status = WaitExit(pid);
    close(child_out);
    ASSERT_TRUE(ready) << "the child never reported ready";
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child ended before it was killed: "
        << (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                              : "signal " + std::to_string(WTERMSIG(status)));

    uint64_t acked_now = 0;
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      if (line.size() != 66 || line[1] != ' ') continue;  // never half a line, but be strict
      auto key = BlockKey::FromHex(std::string_view(line).substr(2));
      ASSERT_TRUE(key.ok()) << line;
      if (line[0] == 'A') {
        acked.insert(*key);
        ++acked_now;
      } else if (line[0] == 'E') {
        evicted.insert(*key);
      }
    }
    EXPECT_GT(acked_now, 0u) << "the child reported ready before acknowledging a block";

    auto tier = DiskTier::Open(disk_test::CrashTierOptions(tier_dir), disk_test::SmallLayout(),
                               engine_.get());
    ASSERT_TRUE(tier.ok()) << tier.status().ToString();
    std::vector<std::byte> out((*tier)->block_bytes()), want((*tier)->block_bytes());
    // Every acknowledged block that was not evicted since is found, with its bytes.
    for (const BlockKey& k : acked) {
      if (evicted.count(k) != 0) continue;
      const uint32_t rec = (*tier)->Lease(k);
      ASSERT_NE(rec, DiskTier::kNoRecord) << "acknowledged block " << k.ToHex() << " is lost";
      const Status st = (*tier)->Read(rec, k, ns, out.data());
      (*tier)->Unlease(rec);
      ASSERT_TRUE(st.ok()) << "acknowledged block " << k.ToHex() << ": " << st.ToString();
      disk_test::FillBlock(k, want.data(), want.size());
      ASSERT_EQ(out, want) << k.ToHex();
      ++verified;
    }
    // Every block the tier holds either loads with exactly the bytes its key implies, or is
    // refused as corrupt (a write in flight at the kill): never wrong bytes.
    for (const BlockKey& k : (*tier)->Keys()) {
      const uint32_t rec = (*tier)->Lease(k);
      if (rec == DiskTier::kNoRecord) continue;  // refused already in the loop above
      const Status st = (*tier)->Read(rec, k, ns, out.data());
      (*tier)->Unlease(rec);
      if (st.ok()) {
        disk_test::FillBlock(k, want.data(), want.size());
        ASSERT_EQ(out, want) << "served wrong bytes for " << k.ToHex();
        ++served;
      } else {
        ASSERT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
        ++torn;
      }
    }
  }
  std::printf(
      "[ crash ] %d kills while writing, %zu blocks acknowledged, %zu evicted, "
      "%llu acknowledged blocks verified, %llu served, %llu torn records refused\n",
      kKills, acked.size(), evicted.size(), static_cast<unsigned long long>(verified),
      static_cast<unsigned long long>(served), static_cast<unsigned long long>(torn));
  EXPECT_GT(verified, 0u);
}

TEST_F(DiskCrashTest, AnotherProcessCannotOpenALockedDirectory) {
  const std::string tier_dir = (dir_ / "tier").string();
  {
    auto tier = DiskTier::Open(disk_test::CrashTierOptions(tier_dir), disk_test::SmallLayout(),
                               engine_.get());
    ASSERT_TRUE(tier.ok()) << tier.status().ToString();
    const int status = WaitExit(SpawnChild({"probe", tier_dir}));
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 3) << "a second process opened a locked tier directory";
  }
  const int status = WaitExit(SpawnChild({"probe", tier_dir}));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the directory stayed locked after the tier closed";
}

}  // namespace
}  // namespace strata
