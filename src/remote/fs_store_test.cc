// FsStore: round trips, atomic publication with racing writers (threads, instances and
// processes), reader verification, eviction and its grace-period rule, O_DIRECT fallback,
// availability. Periods are short (grace 200 ms) and waits generous, so the suite stays
// quick yet robust on a loaded machine.
#include "remote/fs_store.h"

#include <fcntl.h>
#include <grp.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "disk/disk_test_util.h"
#include "remote/fs_files.h"
#include "remote/object_format.h"

extern char** environ;

namespace strata {
namespace {

// spdlog creates its registry on first use, inside libspdlog (not built with TSAN): have
// that happen on the main thread at start-up, before any test starts threads that log, so
// TSAN sees the creation ordered before every use.
[[maybe_unused]] const bool kSpdlogReady = (spdlog::default_logger_raw(), true);

namespace fsys = std::filesystem;
using disk_test::FillBlock;
using disk_test::TestKey;
using disk_test::TestNamespace;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr size_t kBlock = 16 * 1024;  // small blocks keep the suite fast; 2 MiB in the bench

std::string MakeTempDir(const char* parent = nullptr) {
  std::string base = parent ? parent : fsys::temp_directory_path().string();
  std::string tmpl = base + "/strata-fs-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl;
  return tmpl;
}

struct TempDir {
  explicit TempDir(const char* parent = nullptr) : path(MakeTempDir(parent)) {}
  ~TempDir() {
    std::error_code ec;
    fsys::remove_all(path, ec);
  }
  std::string path;
};

FsStoreOptions TestOptions(const std::string& dir, const std::string& node = "") {
  FsStoreOptions o;
  o.directory = dir;
  o.block_bytes = kBlock;
  o.node_id = node;
  o.grace_period = milliseconds(200);
  o.background_eviction = false;  // tests run passes with EvictNow
  o.io_timeout = milliseconds(10'000);
  o.health_interval = milliseconds(50);
  o.retry_backoff = milliseconds(20);
  o.max_retry_backoff = milliseconds(200);
  o.fsync_on_publish = false;  // durability is not under test; keeps the suite quick
  return o;
}

std::unique_ptr<FsStore> MustCreate(const FsStoreOptions& o) {
  Result<std::unique_ptr<FsStore>> r = FsStore::Create(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

std::vector<std::byte> Block(const BlockKey& key) {
  std::vector<std::byte> b(kBlock);
  FillBlock(key, b.data(), b.size());
  return b;
}

// Puts keys [first, first + n) of `stream`; returns how many were written.
size_t PutKeys(FsStore& store, uint64_t stream, uint64_t first, uint64_t n,
               const NamespaceFingerprint& ns = TestNamespace()) {
  std::vector<std::vector<std::byte>> blocks;
  std::vector<RemoteStore::Put> puts(n);
  for (uint64_t i = 0; i < n; ++i) {
    puts[i].key = TestKey(stream, first + i);
    blocks.push_back(Block(puts[i].key));
  }
  for (uint64_t i = 0; i < n; ++i) puts[i].block = blocks[i];
  store.PutBatch(puts, ns);
  size_t written = 0;
  for (const auto& p : puts) {
    EXPECT_TRUE(p.status.ok()) << p.status.ToString();
    written += p.written;
  }
  return written;
}

// Gets `keys` and checks each against its expected bytes; returns the statuses.
std::vector<Status> GetKeys(FsStore& store, const std::vector<BlockKey>& keys,
                            const NamespaceFingerprint& ns = TestNamespace()) {
  std::vector<std::vector<std::byte>> outs(keys.size(), std::vector<std::byte>(kBlock));
  std::vector<RemoteStore::Get> gets(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    gets[i].key = keys[i];
    gets[i].out = outs[i];
  }
  store.GetBatch(gets, ns);
  std::vector<Status> statuses;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (gets[i].status.ok()) {
      EXPECT_TRUE(outs[i] == Block(keys[i])) << "bytes differ for key " << keys[i].ToHex();
    }
    statuses.push_back(gets[i].status);
  }
  return statuses;
}

Status GetOne(FsStore& store, const BlockKey& key,
              const NamespaceFingerprint& ns = TestNamespace()) {
  return GetKeys(store, {key}, ns)[0];
}

std::vector<BlockKey> Keys(uint64_t stream, uint64_t first, uint64_t n) {
  std::vector<BlockKey> keys;
  for (uint64_t i = 0; i < n; ++i) keys.push_back(TestKey(stream, first + i));
  return keys;
}

size_t CountFiles(const std::string& dir, std::string_view containing) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fsys::recursive_directory_iterator(dir, ec); it != fsys::end(it);
       it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file() &&
        it->path().filename().string().find(containing) != std::string::npos)
      ++n;
  }
  return n;
}

// Sets a file's mtime `age` in the past: the store's notion of last use.
void Age(const std::string& path, std::chrono::seconds age) {
  timespec times[2];
  clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= age.count();
  times[1] = times[0];
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path << ": " << strerror(errno);
}

// Polls `pred` for up to `limit` (generous: the machine may be loaded).
template <typename Pred>
bool WaitFor(Pred pred, milliseconds limit = milliseconds(20'000)) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return pred();
}

void FlipByte(const std::string& path, off_t offset) {
  const int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  unsigned char c = 0;
  ASSERT_EQ(pread(fd, &c, 1, offset), 1);
  c ^= 0x10;
  ASSERT_EQ(pwrite(fd, &c, 1, offset), 1);
  close(fd);
}

TEST(FsStoreTest, OptionsAreValidated) {
  FsStoreOptions o = TestOptions("/tmp/x");
  EXPECT_TRUE(o.Validate().ok());
  auto bad = [&](auto mutate) {
    FsStoreOptions b = o;
    mutate(b);
    return b.Validate().code() == StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(bad([](FsStoreOptions& b) { b.directory.clear(); }));
  EXPECT_TRUE(bad([](FsStoreOptions& b) { b.block_bytes = 0; }));
  EXPECT_TRUE(bad([](FsStoreOptions& b) { b.io_threads = 0; }));
  EXPECT_TRUE(bad([](FsStoreOptions& b) { b.capacity_bytes = 100; }));
  EXPECT_TRUE(bad([](FsStoreOptions& b) { b.grace_period = milliseconds(0); }));
  EXPECT_TRUE(bad([](FsStoreOptions& b) { b.eviction_target = 0; }));
  EXPECT_TRUE(bad([](FsStoreOptions& b) { b.node_id = "a/b"; }));
  EXPECT_TRUE(bad([](FsStoreOptions& b) { b.max_retry_backoff = milliseconds(1); }));
}

TEST(FsStoreTest, RoundTripOfManyBlocksIsByteIdentical) {
  TempDir dir;
  auto store = MustCreate(TestOptions(dir.path));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->kind(), "fs");
  EXPECT_EQ(store->describe(), "fs://" + fsys::canonical(dir.path).string());
  for (uint64_t first = 0; first < 256; first += 32) EXPECT_EQ(PutKeys(*store, 1, first, 32), 32u);
  for (uint64_t first = 0; first < 256; first += 64)
    for (const Status& s : GetKeys(*store, Keys(1, first, 64))) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(GetOne(*store, TestKey(2, 0)).code(), StatusCode::kNotFound);
  const RemoteStoreStats st = store->stats();
  EXPECT_EQ(st.puts, 256u);
  EXPECT_EQ(st.gets, 256u);
  EXPECT_EQ(st.get_misses, 1u);
  EXPECT_EQ(st.bytes_written, 256u * remote::ObjectBytes(kBlock));
  EXPECT_EQ(st.bytes_read, 256u * remote::ObjectBytes(kBlock));
  EXPECT_TRUE(st.available);
  // Every object sits at its content address, whole; nothing temporary is left.
  struct stat s {};
  ASSERT_EQ(stat(store->ObjectPath(TestKey(1, 7)).c_str(), &s), 0);
  EXPECT_EQ(static_cast<size_t>(s.st_size), remote::ObjectBytes(kBlock));
  EXPECT_EQ(CountFiles(dir.path, ".obj"), 256u);
  EXPECT_EQ(CountFiles(dir.path, ".tmp."), 0u);
}

TEST(FsStoreTest, CreatesWithExplicitModesAndRefusesAWorldWritableDirectory) {
  TempDir dir;
  const std::string root = dir.path + "/store";  // created by the store
  const mode_t old_umask = umask(0);
  auto store = MustCreate(TestOptions(root));
  ASSERT_TRUE(store);
  EXPECT_EQ(PutKeys(*store, 1, 0, 2), 2u);
  umask(old_umask);
  auto mode = [](const std::string& p) {
    struct stat st {};
    EXPECT_EQ(stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode(root), 0750u);
  const std::string object = store->ObjectPath(TestKey(1, 0));
  EXPECT_EQ(mode(object), 0640u);
  EXPECT_EQ(mode(fsys::path(object).parent_path().string()), 0750u);
  store.reset();

  ASSERT_EQ(chmod(root.c_str(), 0777), 0);
  auto refused = FsStore::Create(TestOptions(root));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("writable by every user"), std::string::npos)
      << refused.status().ToString();
  ASSERT_EQ(chmod(root.c_str(), 0770), 0);  // group sharing is allowed
  EXPECT_TRUE(MustCreate(TestOptions(root)));
}

TEST(FsStoreTest, HmacKeyedNodesServeOnlyObjectsTheKeyAuthenticated) {
  TempDir dir;
  FsStoreOptions keyed = TestOptions(dir.path);
  keyed.hmac_key = "0123456789abcdef0123456789abcdef";
  FsStoreOptions other_key = keyed;
  other_key.hmac_key = "another key of at least 16 bytes";
  auto a = MustCreate(keyed);
  auto b = MustCreate(keyed);
  auto plain = MustCreate(TestOptions(dir.path));
  ASSERT_TRUE(a && b && plain);
  EXPECT_EQ(PutKeys(*a, 1, 0, 3), 3u);
  for (const Status& s : GetKeys(*b, Keys(1, 0, 3))) EXPECT_TRUE(s.ok()) << s.ToString();
  // A node without the key reads authenticated objects (XXH3 still checks them).
  for (const Status& s : GetKeys(*plain, Keys(1, 0, 3))) EXPECT_TRUE(s.ok()) << s.ToString();

  // What a writer without the key publishes, a keyed node refuses and removes.
  EXPECT_EQ(PutKeys(*plain, 2, 0, 1), 1u);
  Status s = GetOne(*a, TestKey(2, 0));
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("no HMAC tag"), std::string::npos) << s.ToString();
  EXPECT_FALSE(fsys::exists(a->ObjectPath(TestKey(2, 0))));
  // So does a node holding another key.
  auto c = MustCreate(other_key);
  s = GetOne(*c, TestKey(1, 0));
  EXPECT_NE(s.message().find("HMAC mismatch"), std::string::npos) << s.ToString();

  FsStoreOptions short_key = TestOptions(dir.path);
  short_key.hmac_key = "short";
  EXPECT_EQ(FsStore::Create(short_key).status().code(), StatusCode::kInvalidArgument);
}

TEST(FsStoreTest, AGroupSharesTheStoreWhateverTheUmask) {
  TempDir dir;
  group* g = getgrgid(getegid());
  ASSERT_NE(g, nullptr);
  FsStoreOptions o = TestOptions(dir.path + "/store");
  o.group = g->gr_name;
  const mode_t old_umask = umask(077);
  auto store = MustCreate(o);
  ASSERT_TRUE(store);
  EXPECT_EQ(PutKeys(*store, 1, 0, 1), 1u);
  umask(old_umask);
  auto stat_of = [](const std::string& p) {
    struct stat st {};
    EXPECT_EQ(stat(p.c_str(), &st), 0) << p;
    return st;
  };
  EXPECT_EQ(stat_of(o.directory).st_mode & 07777, 02770u);
  EXPECT_EQ(stat_of(o.directory).st_gid, g->gr_gid);
  const std::string object = store->ObjectPath(TestKey(1, 0));
  EXPECT_EQ(stat_of(object).st_mode & 07777, 0660u);
  EXPECT_EQ(stat_of(fsys::path(object).parent_path().string()).st_mode & 07777, 02770u);
  EXPECT_EQ(stat_of(object).st_gid, g->gr_gid);

  o.group = "no-such-group-strata";
  auto missing = FsStore::Create(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos)
      << missing.status().ToString();
}

TEST(FsStoreTest, BlocksOfTheWrongSizeAreInvalidArgument) {
  TempDir dir;
  auto store = MustCreate(TestOptions(dir.path));
  std::vector<std::byte> small(kBlock - 1);
  RemoteStore::Put put{TestKey(1, 0), small};
  store->PutBatch(std::span(&put, 1), TestNamespace());
  EXPECT_EQ(put.status.code(), StatusCode::kInvalidArgument) << put.status.ToString();
  RemoteStore::Get get{TestKey(1, 0), small};
  store->GetBatch(std::span(&get, 1), TestNamespace());
  EXPECT_EQ(get.status.code(), StatusCode::kInvalidArgument) << get.status.ToString();
}

TEST(FsStoreTest, PutOfAnExistingKeyIsNotRewritten) {
  TempDir dir;
  auto store = MustCreate(TestOptions(dir.path));
  EXPECT_EQ(PutKeys(*store, 1, 0, 4), 4u);
  struct stat before {};
  ASSERT_EQ(stat(store->ObjectPath(TestKey(1, 0)).c_str(), &before), 0);
  EXPECT_EQ(PutKeys(*store, 1, 0, 4), 0u);
  struct stat after {};
  ASSERT_EQ(stat(store->ObjectPath(TestKey(1, 0)).c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);  // the same file, not a replacement
  EXPECT_EQ(store->stats().puts_present, 4u);
}

TEST(FsStoreTest, TwoNodesShareOneDirectory) {
  TempDir dir;
  auto a = MustCreate(TestOptions(dir.path, "node-a"));
  auto b = MustCreate(TestOptions(dir.path, "node-b"));
  EXPECT_EQ(PutKeys(*a, 3, 0, 16), 16u);
  const std::vector<BlockKey> keys = Keys(3, 0, 16);
  EXPECT_EQ(b->MatchPrefix(keys), 16u);
  for (const Status& s : GetKeys(*b, keys)) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(PutKeys(*b, 3, 0, 16), 0u);  // already published by a
}

TEST(FsStoreTest, ConcurrentWritersOfTheSameKeysOnTwoNodesPublishEachOnce) {
  TempDir dir;
  // One node_id for both (containers sharing a host name and pid): O_EXCL on the
  // temporary names keeps the writers apart anyway.
  FsStoreOptions oa = TestOptions(dir.path, "twin"), ob = TestOptions(dir.path, "twin");
  oa.io_threads = ob.io_threads = 4;
  auto a = MustCreate(oa);
  auto b = MustCreate(ob);
  constexpr uint64_t kKeys = 64;
  std::atomic<size_t> written{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      FsStore& store = t % 2 ? *a : *b;
      std::vector<uint64_t> order(kKeys);
      for (uint64_t i = 0; i < kKeys; ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), std::mt19937(t));
      for (size_t i = 0; i < kKeys; i += 8) {
        std::vector<std::vector<std::byte>> blocks;
        std::vector<RemoteStore::Put> puts(8);
        for (size_t j = 0; j < 8; ++j) {
          puts[j].key = TestKey(4, order[i + j]);
          blocks.push_back(Block(puts[j].key));
        }
        for (size_t j = 0; j < 8; ++j) puts[j].block = blocks[j];
        store.PutBatch(puts, TestNamespace());
        for (const auto& p : puts) {
          EXPECT_TRUE(p.status.ok()) << p.status.ToString();
          written += p.written;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  // renameat2(RENAME_NOREPLACE) or link: exactly one writer of each key wins.
  EXPECT_EQ(written.load(), kKeys);
  for (const Status& s : GetKeys(*a, Keys(4, 0, kKeys))) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(CountFiles(dir.path, ".tmp."), 0u);
  EXPECT_EQ(a->stats().puts + b->stats().puts, kKeys);
}

// A child process of FsStoreProcessTest: puts keys [0, 48) of stream 5 from two threads in
// shuffled order once <dir>/go exists, and writes "<written> <errors>" to a file. Skipped
// unless started by that test.
TEST(FsStoreChildProcess, Writer) {
  const char* dir = std::getenv("STRATA_FS_CHILD_DIR");
  const char* out = std::getenv("STRATA_FS_CHILD_OUT");
  if (dir == nullptr || out == nullptr) GTEST_SKIP() << "runs only as FsStoreProcessTest's child";
  auto store = MustCreate(TestOptions(dir));
  ASSERT_TRUE(store);
  ASSERT_TRUE(WaitFor([&] { return fsys::exists(std::string(dir) + "/go"); }));
  std::atomic<size_t> written{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint64_t> order(48);
      for (uint64_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), std::mt19937(getpid() * 2 + t));
      for (size_t i = 0; i < order.size(); i += 4) {
        std::vector<std::vector<std::byte>> blocks;
        std::vector<RemoteStore::Put> puts(4);
        for (size_t j = 0; j < 4; ++j) {
          puts[j].key = TestKey(5, order[i + j]);
          blocks.push_back(Block(puts[j].key));
        }
        for (size_t j = 0; j < 4; ++j) puts[j].block = blocks[j];
        store->PutBatch(puts, TestNamespace());
        for (const auto& p : puts) {
          if (p.status.ok())
            written += p.written;
          else
            ++errors;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::ofstream(out) << written.load() << " " << errors.load() << "\n";
}

pid_t SpawnSelf(const std::string& dir, const std::string& out) {
  std::string exe = fsys::read_symlink("/proc/self/exe").string();
  std::string filter = "--gtest_filter=FsStoreChildProcess.Writer";
  std::vector<char*> argv = {exe.data(), filter.data(), nullptr};
  std::vector<std::string> env_vars = {"STRATA_FS_CHILD_DIR=" + dir, "STRATA_FS_CHILD_OUT=" + out};
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  for (auto& v : env_vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "posix_spawn " << exe << ": " << strerror(rc);
  return rc == 0 ? pid : -1;
}

TEST(FsStoreProcessTest, TwoProcessesWritingTheSameKeysPublishEachOnce) {
  TempDir dir;
  const std::string store_dir = dir.path + "/store";
  std::vector<pid_t> children;
  for (int c = 0; c < 2; ++c)
    children.push_back(SpawnSelf(store_dir, fmt::format("{}/child{}.out", dir.path, c)));
  // Both children wait for "go", so their writes overlap.
  ASSERT_TRUE(WaitFor([&] { return fsys::exists(store_dir + "/strata-g4.meta"); }));
  std::ofstream(store_dir + "/go") << "go\n";
  size_t written = 0;
  for (int c = 0; c < 2; ++c) {
    int status = 0;
    ASSERT_EQ(waitpid(children[c], &status, 0), children[c]);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    std::ifstream in(fmt::format("{}/child{}.out", dir.path, c));
    size_t w = 0, errors = 1;
    in >> w >> errors;
    EXPECT_EQ(errors, 0u);
    written += w;
  }
  EXPECT_EQ(written, 48u);
  auto store = MustCreate(TestOptions(store_dir));
  for (const Status& s : GetKeys(*store, Keys(5, 0, 48))) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(CountFiles(store_dir, ".tmp."), 0u);
}

TEST(FsStoreTest, FlippedBitsAreCorruptionAndTheObjectIsRemoved) {
  TempDir dir;
  auto store = MustCreate(TestOptions(dir.path));
  PutKeys(*store, 6, 0, 3);
  const off_t offsets[] = {remote::kObjectHeaderBytes + 1000, 50, 100};  // payload, key, reserved
  for (int i = 0; i < 3; ++i) {
    const std::string path = store->ObjectPath(TestKey(6, i));
    FlipByte(path, offsets[i]);
    const Status s = GetOne(*store, TestKey(6, i));
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
    EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
    EXPECT_FALSE(fsys::exists(path));
    EXPECT_EQ(GetOne(*store, TestKey(6, i)).code(), StatusCode::kNotFound);
  }
  EXPECT_EQ(store->stats().get_corrupt, 3u);
  // A writer can publish the key again.
  EXPECT_EQ(PutKeys(*store, 6, 0, 3), 3u);
  for (const Status& s : GetKeys(*store, Keys(6, 0, 3))) EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(FsStoreTest, AnotherNamespaceFingerprintIsCorruption) {
  TempDir dir;
  auto store = MustCreate(TestOptions(dir.path));
  PutKeys(*store, 7, 0, 1, TestNamespace(1));
  const Status s = GetOne(*store, TestKey(7, 0), TestNamespace(2));
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("fingerprint"), std::string::npos) << s.ToString();
}

TEST(FsStoreTest, TornAndForeignFilesAreCorruption) {
  TempDir dir;
  auto store = MustCreate(TestOptions(dir.path));
  PutKeys(*store, 8, 0, 2);
  // A torn write by hand: half the object.
  const std::string torn = store->ObjectPath(TestKey(8, 0));
  ASSERT_EQ(truncate(torn.c_str(), static_cast<off_t>(remote::ObjectBytes(kBlock) / 2)), 0);
  Status s = GetOne(*store, TestKey(8, 0));
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_FALSE(fsys::exists(torn));
  // The right size but not an object (e.g. a zero-filled file after a crash).
  const std::string zeros = store->ObjectPath(TestKey(8, 1));
  fsys::remove(zeros);
  { std::ofstream(zeros) << std::string(remote::ObjectBytes(kBlock), '\0'); }
  s = GetOne(*store, TestKey(8, 1));
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("magic"), std::string::npos) << s.ToString();
}

TEST(FsStoreTest, StrayTempFilesAreNeverServedAndAreCleanedAfterTheGracePeriod) {
  TempDir dir;
  auto store = MustCreate(TestOptions(dir.path));
  // A valid object left under a temporary name by a writer that crashed before publishing.
  PutKeys(*store, 9, 0, 2);
  const std::string final0 = store->ObjectPath(TestKey(9, 0));
  const std::string stray = final0 + ".tmp.crashed-node.7";
  fsys::rename(final0, stray);
  EXPECT_EQ(GetOne(*store, TestKey(9, 0)).code(), StatusCode::kNotFound);
  const std::vector<BlockKey> keys = Keys(9, 0, 2);
  EXPECT_EQ(store->MatchPrefix(keys), 0u);
  // Fresh: it may belong to a live writer, so it stays.
  Result<FsStoreScan> scan = store->EvictNow();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_EQ(scan->temps_removed, 0u);
  EXPECT_TRUE(fsys::exists(stray));
  Age(stray, std::chrono::seconds(5));  // older than the 200 ms grace period
  scan = store->EvictNow();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_EQ(scan->temps_removed, 1u);
  EXPECT_FALSE(fsys::exists(stray));
  EXPECT_EQ(scan->objects, 1u);
}

TEST(FsStoreTest, EvictionKeepsUsageWithinBudgetAndEvictsTheLeastRecentlyUsed) {
  TempDir dir;
  FsStoreOptions o = TestOptions(dir.path);
  const uint64_t object = remote::ObjectBytes(kBlock);
  o.capacity_bytes = 20 * object;
  o.eviction_target = 1.0;
  auto store = MustCreate(o);
  PutKeys(*store, 10, 0, 40);
  // Last use i seconds ago for key 40 - i: key 0 is the least recently used.
  for (uint64_t i = 0; i < 40; ++i)
    Age(store->ObjectPath(TestKey(10, i)), std::chrono::seconds(100 - i));
  // Reading the five oldest makes them the most recently used.
  for (const Status& s : GetKeys(*store, Keys(10, 0, 5))) EXPECT_TRUE(s.ok()) << s.ToString();
  Result<FsStoreScan> scan = store->EvictNow();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_EQ(scan->evicted, 20u) << scan->objects << " objects, " << scan->object_bytes << " bytes, "
                                << scan->protected_objects << " protected";
  EXPECT_LE(scan->object_bytes, o.capacity_bytes);
  EXPECT_EQ(scan->trash_bytes, 20 * object);
  EXPECT_EQ(store->stats().evictions, 20u);
  for (uint64_t i = 0; i < 40; ++i) {
    const bool kept = i < 5 || i >= 25;  // read just now, or the 15 most recent others
    EXPECT_EQ(fsys::exists(store->ObjectPath(TestKey(10, i))), kept) << "key " << i;
  }
  // Evicted objects wait in trash/ for a grace period, then go.
  EXPECT_EQ(CountFiles(dir.path + "/trash", ".obj"), 20u);
  std::this_thread::sleep_for(milliseconds(450));
  scan = store->EvictNow();
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->trash_removed, 20u);
  EXPECT_EQ(CountFiles(dir.path + "/trash", ".obj"), 0u);
}

TEST(FsStoreTest, BackgroundEvictorStartsWhenWritesPassTheBudget) {
  TempDir dir;
  FsStoreOptions o = TestOptions(dir.path);
  o.capacity_bytes = 10 * remote::ObjectBytes(kBlock);
  o.grace_period = milliseconds(100);
  o.eviction_interval = milliseconds(100);
  o.background_eviction = true;
  auto store = MustCreate(o);
  for (uint64_t i = 0; i < 30; i += 5) {
    PutKeys(*store, 11, i, 5);
    std::this_thread::sleep_for(milliseconds(60));
  }
  // Objects written over the last grace period are protected; after it the evictor catches up.
  EXPECT_TRUE(WaitFor([&] {
    const FsStoreScan s = store->last_scan();
    return s.objects > 0 && s.object_bytes <= o.capacity_bytes &&
           CountFiles(dir.path + "/objects", ".obj") <= 10;
  })) << "usage "
      << store->last_scan().object_bytes << " of " << o.capacity_bytes;
  EXPECT_GE(store->stats().evictions, 20u);
}

TEST(FsStoreTest, ObjectsUsedWithinTheGracePeriodSurviveTwoNodesEvictingAtOnce) {
  TempDir dir;
  const uint64_t object = remote::ObjectBytes(kBlock);
  FsStoreOptions oa = TestOptions(dir.path, "node-a"), ob = TestOptions(dir.path, "node-b");
  oa.capacity_bytes = ob.capacity_bytes = 4 * object;
  oa.grace_period = ob.grace_period = milliseconds(5'000);
  auto a = MustCreate(oa);
  auto b = MustCreate(ob);
  PutKeys(*a, 12, 0, 24);
  for (uint64_t i = 0; i < 24; ++i) Age(a->ObjectPath(TestKey(12, i)), std::chrono::seconds(60));
  // Node b reads six objects: far over the 4-object budget, yet they stay.
  for (const Status& s : GetKeys(*b, Keys(12, 0, 6))) EXPECT_TRUE(s.ok()) << s.ToString();
  for (int round = 0; round < 3; ++round) {
    Result<FsStoreScan> ra = Status::Internal("not run"), rb = Status::Internal("not run");
    std::thread ta([&] { ra = a->EvictNow(); });
    std::thread tb([&] { rb = b->EvictNow(); });
    ta.join();
    tb.join();
    ASSERT_TRUE(ra.ok()) << ra.status().ToString();
    ASSERT_TRUE(rb.ok()) << rb.status().ToString();
  }
  for (uint64_t i = 0; i < 24; ++i)
    EXPECT_EQ(fsys::exists(a->ObjectPath(TestKey(12, i))), i < 6) << "key " << i;
  // Each eviction is counted by exactly the node whose rename succeeded.
  EXPECT_EQ(a->stats().evictions + b->stats().evictions, 18u);
  EXPECT_EQ(CountFiles(dir.path + "/trash", ".obj"), 18u);
  EXPECT_EQ(a->last_scan().protected_objects, 6u);
  for (const Status& s : GetKeys(*a, Keys(12, 0, 6))) EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(FsStoreTest, AnEvictedObjectStaysReadableThroughAnOpenDescriptor) {
  TempDir dir;
  FsStoreOptions o = TestOptions(dir.path);
  o.capacity_bytes = remote::ObjectBytes(kBlock);
  o.eviction_target = 0.5;
  auto store = MustCreate(o);
  PutKeys(*store, 13, 0, 2);  // over budget; key 1 is recent, so key 0 is the one to go
  const std::string path = store->ObjectPath(TestKey(13, 0));
  Age(path, std::chrono::seconds(60));
  const int fd = open(path.c_str(), O_RDONLY);  // a reader on another node, mid-read
  ASSERT_GE(fd, 0);
  Result<FsStoreScan> scan = store->EvictNow();
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->evicted, 1u);
  EXPECT_EQ(GetOne(*store, TestKey(13, 0)).code(), StatusCode::kNotFound);
  std::vector<std::byte> object(remote::ObjectBytes(kBlock));
  EXPECT_EQ(pread(fd, object.data(), object.size(), 0), static_cast<ssize_t>(object.size()));
  close(fd);
  EXPECT_TRUE(remote::VerifyObject(object, TestKey(13, 0), TestNamespace(), kBlock).ok());
}

TEST(FsStoreTest, MatchPrefixStopsAtTheFirstMissingKey) {
  TempDir dir;
  FsStoreOptions o = TestOptions(dir.path);
  o.io_threads = 2;  // several waves
  auto store = MustCreate(o);
  PutKeys(*store, 14, 0, 5);
  PutKeys(*store, 14, 6, 4);
  const std::vector<BlockKey> keys = Keys(14, 0, 10);
  EXPECT_EQ(store->MatchPrefix(keys), 5u);
  EXPECT_EQ(store->MatchPrefix(std::span(keys).first(4)), 4u);
  EXPECT_EQ(store->MatchPrefix(std::span(keys).subspan(6)), 4u);
  EXPECT_EQ(store->MatchPrefix(std::span(keys).subspan(5)), 0u);
  EXPECT_EQ(store->MatchPrefix({}), 0u);
}

TEST(FsStoreTest, DirectIoRefusedFallsBackToBufferedWithANote) {
  TempDir dir;
  FsStoreOptions o = TestOptions(dir.path);
  o.use_direct_io = true;
  o.faults = std::make_shared<FaultInjector>();
  o.faults->FailNext(TransferOp::kWrite, EINVAL);  // the O_DIRECT probe at Create
  auto store = MustCreate(o);
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->direct_io());
  EXPECT_NE(store->notes().find("refuses O_DIRECT"), std::string::npos) << store->notes();
  EXPECT_EQ(PutKeys(*store, 15, 0, 8), 8u);
  for (const Status& s : GetKeys(*store, Keys(15, 0, 8))) EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(FsStoreTest, DirectIoRefusedAtWriteTimeFallsBackToBuffered) {
  TempDir dir("/var/tmp");
  FsStoreOptions o = TestOptions(dir.path);
  o.faults = std::make_shared<FaultInjector>();
  auto store = MustCreate(o);
  ASSERT_TRUE(store);
  if (!store->direct_io()) GTEST_SKIP() << "O_DIRECT refused here already: " << store->notes();
  o.faults->FailNext(TransferOp::kWrite, EINVAL);
  EXPECT_EQ(PutKeys(*store, 15, 0, 4), 4u);
  EXPECT_FALSE(store->direct_io());
  EXPECT_NE(store->notes().find("O_DIRECT fail with EINVAL"), std::string::npos) << store->notes();
  for (const Status& s : GetKeys(*store, Keys(15, 0, 4))) EXPECT_TRUE(s.ok()) << s.ToString();
}

// tmpfs refused O_DIRECT before Linux 6.6 and accepts it since: either way the store works,
// and says so when it had to fall back.
TEST(FsStoreTest, WorksOnTmpfs) {
  if (!fsys::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm";
  TempDir dir("/dev/shm");
  auto store = MustCreate(TestOptions(dir.path));
  ASSERT_TRUE(store);
  if (!store->direct_io()) {
    EXPECT_NE(store->notes().find("O_DIRECT"), std::string::npos) << store->notes();
  }
  EXPECT_EQ(PutKeys(*store, 15, 0, 8), 8u);
  for (const Status& s : GetKeys(*store, Keys(15, 0, 8))) EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(FsStoreTest, DirectIoWhereAllowedPadsAndTruncatesObjects) {
  TempDir dir("/var/tmp");
  auto store = MustCreate(TestOptions(dir.path));
  ASSERT_TRUE(store);
  if (!store->direct_io()) GTEST_SKIP() << "O_DIRECT refused here: " << store->notes();
  EXPECT_EQ(PutKeys(*store, 16, 0, 8), 8u);
  struct stat s {};
  ASSERT_EQ(stat(store->ObjectPath(TestKey(16, 0)).c_str(), &s), 0);
  EXPECT_EQ(static_cast<size_t>(s.st_size), remote::ObjectBytes(kBlock));  // not padded
  for (const Status& st : GetKeys(*store, Keys(16, 0, 8))) EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(FsStoreTest, MetaFileOfAnotherBlockSizeIsRefusedUnlessReset) {
  TempDir dir;
  {
    auto store = MustCreate(TestOptions(dir.path));
    PutKeys(*store, 17, 0, 3);
  }
  FsStoreOptions other = TestOptions(dir.path);
  other.block_bytes = 2 * kBlock;
  Result<std::unique_ptr<FsStore>> refused = FsStore::Create(other);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("block_bytes"), std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ(CountFiles(dir.path + "/objects", ".obj"), 3u);  // nothing wiped
  other.reset_on_mismatch = true;
  auto reset = MustCreate(other);
  ASSERT_TRUE(reset);
  EXPECT_NE(reset->notes().find("reset"), std::string::npos) << reset->notes();
  EXPECT_EQ(CountFiles(dir.path + "/objects", ".obj"), 0u);
}

TEST(FsStoreTest, InjectedWriteErrorsFailTheirItemOnly) {
  TempDir dir;
  FsStoreOptions o = TestOptions(dir.path);
  o.faults = std::make_shared<FaultInjector>();
  o.io_threads = 1;  // the first put meets the fault
  auto store = MustCreate(o);
  o.faults->FailNext(TransferOp::kWrite, ENOSPC, 1);
  std::vector<std::vector<std::byte>> blocks;
  std::vector<RemoteStore::Put> puts(4);
  for (size_t i = 0; i < 4; ++i) {
    puts[i].key = TestKey(18, i);
    blocks.push_back(Block(puts[i].key));
    puts[i].block = blocks[i];
  }
  store->PutBatch(puts, TestNamespace());
  size_t failed = 0;
  for (const auto& p : puts) {
    if (!p.status.ok()) {
      ++failed;
      EXPECT_EQ(p.status.sys_errno(), ENOSPC) << p.status.ToString();
    }
  }
  EXPECT_EQ(failed, 1u);
  EXPECT_TRUE(store->available());  // a full disk is not an unreachable one
  EXPECT_EQ(store->stats().put_errors, 1u);
  EXPECT_EQ(CountFiles(dir.path, ".tmp."), 0u);
}

TEST(FsStoreTest, UnreachableDirectoryIsUnavailableFastAndRecovers) {
  TempDir dir;
  const std::string store_dir = dir.path + "/store", moved = dir.path + "/moved";
  auto store = MustCreate(TestOptions(store_dir));
  PutKeys(*store, 19, 0, 4);
  // The mount goes away (the directory is gone from its path).
  fsys::rename(store_dir, moved);
  std::vector<std::byte> block = Block(TestKey(19, 9));
  RemoteStore::Put put{TestKey(19, 9), block};
  store->PutBatch(std::span(&put, 1), TestNamespace());
  EXPECT_FALSE(put.status.ok());
  ASSERT_TRUE(WaitFor([&] { return !store->available(); }));
  const auto t0 = Clock::now();
  const Status s = GetOne(*store, TestKey(19, 0));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_LT(Clock::now() - t0, milliseconds(2'000));  // fails fast; no I/O attempted
  EXPECT_EQ(store->MatchPrefix(Keys(19, 0, 4)), 0u);
  EXPECT_FALSE(store->stats().available);
  EXPECT_GE(store->stats().unavailable_events, 1u);
  // It comes back.
  fsys::rename(moved, store_dir);
  ASSERT_TRUE(WaitFor([&] { return store->available(); }));
  for (const Status& st : GetKeys(*store, Keys(19, 0, 4))) EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(FsStoreTest, HungMountTimesOutWithoutTouchingTheCallersBuffer) {
  TempDir dir;
  FsStoreOptions o = TestOptions(dir.path);
  o.faults = std::make_shared<FaultInjector>();
  o.io_timeout = milliseconds(300);
  o.grace_period = milliseconds(1'000);
  // Long enough that the second get below surely meets the store still marked down.
  o.retry_backoff = o.max_retry_backoff = milliseconds(2'000);
  auto store = MustCreate(o);
  PutKeys(*store, 20, 0, 2);
  o.faults->SetDelay(TransferOp::kRead, std::chrono::microseconds(1'500'000));  // a hung read
  std::vector<std::byte> out(kBlock, std::byte{0xAA});
  RemoteStore::Get get{TestKey(20, 0), out};
  const auto t0 = Clock::now();
  store->GetBatch(std::span(&get, 1), TestNamespace());
  EXPECT_EQ(get.status.code(), StatusCode::kTimedOut) << get.status.ToString();
  EXPECT_LT(Clock::now() - t0, milliseconds(1'400));  // before the read would have finished
  EXPECT_FALSE(store->available());
  RemoteStore::Get again{TestKey(20, 1), out};
  store->GetBatch(std::span(&again, 1), TestNamespace());
  EXPECT_EQ(again.status.code(), StatusCode::kUnavailable) << again.status.ToString();
  o.faults->Clear();
  // The stuck read finishes into its own buffer, never into `out`.
  std::this_thread::sleep_for(milliseconds(1'600));
  EXPECT_TRUE(
      std::all_of(out.begin(), out.end(), [](std::byte b) { return b == std::byte{0xAA}; }));
  ASSERT_TRUE(WaitFor([&] { return store->available(); }));
  EXPECT_TRUE(GetOne(*store, TestKey(20, 1)).ok());
}

// The fallbacks NFS and link-less filesystems use, exercised directly: each publishes the
// first writer's file and (link) refuses the second without replacing.
TEST(FsStoreTest, EveryPublishMethodIsAtomicAndTheNoReplaceOnesKeepTheFirstWriter) {
  TempDir dir;
  using fs_detail::PublishMethod;
  for (PublishMethod method :
       {PublishMethod::kRenameNoReplace, PublishMethod::kLink, PublishMethod::kRename}) {
    const std::string final_path = fmt::format("{}/object.{}", dir.path, static_cast<int>(method));
    auto publish = [&](const std::string& content) -> Result<bool> {
      const std::string tmp = final_path + ".tmp." + content;
      const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
      EXPECT_GE(fd, 0);
      EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
      PublishMethod m = method;
      Result<bool> r = fs_detail::Publish(fd, tmp, final_path, &m);
      close(fd);
      EXPECT_EQ(m, method);  // ext4 and tmpfs support all three
      EXPECT_FALSE(fsys::exists(tmp));
      return r;
    };
    Result<bool> first = publish("first");
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_TRUE(*first);
    Result<bool> second = publish("second");
    ASSERT_TRUE(second.ok()) << second.status().ToString();
    std::string content;
    std::ifstream(final_path) >> content;
    if (method == PublishMethod::kRename) {
      EXPECT_TRUE(*second);  // the last resort replaces (with identical bytes, for objects)
      EXPECT_EQ(content, "second");
    } else {
      EXPECT_FALSE(*second);
      EXPECT_EQ(content, "first");
    }
  }
}

TEST(FsStoreTest, NodesCreatingTheStoreAtOnceAgreeOnOneMetaFile) {
  TempDir dir;
  std::vector<std::unique_ptr<FsStore>> stores(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back(
        [&, i] { stores[i] = MustCreate(TestOptions(dir.path, fmt::format("node-{}", i))); });
  for (auto& t : threads) t.join();
  for (auto& s : stores) EXPECT_TRUE(s);
  EXPECT_EQ(CountFiles(dir.path, ".tmp."), 0u);
  EXPECT_TRUE(fsys::exists(dir.path + "/strata-g4.meta"));
}

}  // namespace
}  // namespace strata
