// strata-redisbench: RedisStore PutBatch / GetBatch throughput against a running Redis
// server, per value size and pipeline depth, for comparison with redis-benchmark at the same
// value size and depth (bench/run_redis_baselines.sh runs both and prints the ratio).
//
// Every configuration writes distinct new keys (SET NX really stores), then reads them all
// back verified, over one connection (connections_per_node = 1, like redis-benchmark -c 1).
// MB/s are decimal megabytes of objects (128-byte header + payload) per second, the bytes
// redis-benchmark counts with -d <object size>.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "disk/disk_test_util.h"
#include "remote/object_format.h"
#include "remote/redis_connection.h"
#include "remote/redis_protocol.h"
#include "remote/redis_store.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

struct Phase {
  double seconds = 0;
  size_t passes = 1;  // times every block moved
  std::vector<double> batch_ms;
  size_t failures = 0;
  std::string first_error;
};

struct Row {
  size_t payload = 0;
  uint32_t depth = 0;
  size_t blocks = 0;
  Phase put, get;
};

double MBps(const Row& row, const Phase& phase) {
  if (phase.passes == 0 || phase.seconds <= 0) return 0;
  return static_cast<double>(phase.passes * row.blocks * remote::ObjectBytes(row.payload)) / 1e6 /
         phase.seconds;
}
double Mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}
double P99(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(0.99 * static_cast<double>(v.size())))];
}

// Stores keys key:000000000000 ... of `bytes` each, the names redis-benchmark -r uses, with
// `depth` SETs in flight (batches of `depth`), so its GETs read a keyspace written like
// strata's own: every key once, just before, at the same pipeline depth. (How values were
// written changes how fast Redis serves them the first time: values SET one at a time are
// read at about half the speed of values SET 16 at a time, by any client.)
int FillBaselineKeys(const std::string& endpoint, const std::string& password, size_t keys,
                     size_t bytes, size_t depth) {
  Result<remote::RedisEndpoint> e = remote::ParseRedisEndpoint(endpoint);
  if (!e.ok()) {
    fmt::print(stderr, "strata-redisbench: {}\n", e.status().ToString());
    return 1;
  }
  remote::RedisConnectionOptions co;
  co.password = password;
  co.io_timeout = std::chrono::milliseconds(30000);
  auto conn = remote::RedisConnection::Connect(*e, co);
  if (!conn.ok()) {
    fmt::print(stderr, "strata-redisbench: {}\n", conn.status().ToString());
    return 1;
  }
  const std::vector<std::byte> value(bytes, std::byte{'x'});
  const std::span<const std::byte> bulk[] = {value};
  for (size_t first = 0; first < keys; first += depth) {
    const size_t n = std::min(depth, keys - first);
    std::vector<std::string> names;
    for (size_t k = first; k < first + n; ++k) names.push_back(fmt::format("key:{:012}", k));
    for (const std::string& name : names) {
      const std::string_view head[] = {"SET", name};
      (*conn)->AppendCommandWithBulk(head, bulk, {});
    }
    Status s = (*conn)->Flush();
    for (size_t i = 0; i < n && s.ok(); ++i)
      if (auto reply = (*conn)->ReadReply(); !reply.ok()) s = reply.status();
    if (!s.ok()) {
      fmt::print(stderr, "strata-redisbench: filling baseline keys: {}\n", s.ToString());
      return 1;
    }
  }
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"RedisStore PutBatch/GetBatch throughput against a Redis server"};
  std::string endpoint = "127.0.0.1:6379";
  std::vector<size_t> sizes = {64 << 10, 256 << 10, 1 << 20, 2 << 20};
  std::vector<uint32_t> depths = {1, 16};
  double total_mb = 512;
  size_t batch = 32;
  std::string password;
  bool flush = true;
  bool csv = false;
  std::string key_prefix = fmt::format("bench:{}:", getpid());
  bool skip_put = false;
  int get_passes = 1;
  int warmup_passes = 0;
  size_t fill_keys = 0;
  size_t fill_bytes = 0;
  size_t fill_depth = 16;
  app.add_option("--endpoint", endpoint, "host:port of the server")->capture_default_str();
  app.add_option("--sizes", sizes, "block payload sizes in bytes")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--depths", depths, "pipeline depths")->delimiter(',')->capture_default_str();
  app.add_option("--total-mb", total_mb, "object MB (decimal) written and read per configuration")
      ->capture_default_str();
  app.add_option("--batch", batch, "blocks per PutBatch/GetBatch call")->capture_default_str();
  app.add_option("--password", password, "AUTH password");
  app.add_flag("!--no-flush", flush,
               "keep the keys (default: FLUSHALL after each configuration: a throwaway server!)");
  app.add_flag("--csv", csv, "print op,payload,depth,blocks,MB/s,mean_ms,p99_ms lines");
  app.add_option("--key-prefix", key_prefix,
                 "Redis key prefix; payload and depth are appended (default bench:<pid>:)");
  app.add_flag("--skip-put", skip_put,
               "only read: the keys exist from an earlier --no-flush run with this --key-prefix");
  app.add_option("--get-passes", get_passes, "times every block is read")->capture_default_str();
  app.add_option("--warmup-passes", warmup_passes,
                 "unmeasured reads of every block before the measured ones (Redis serves a "
                 "value faster once it has been read)")
      ->capture_default_str();
  app.add_option("--fill-baseline-keys", fill_keys,
                 "only store keys key:000000000000... (redis-benchmark -r names) of "
                 "--fill-bytes each, then exit");
  app.add_option("--fill-bytes", fill_bytes, "value bytes for --fill-baseline-keys");
  app.add_option("--fill-depth", fill_depth, "SETs in flight for --fill-baseline-keys")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (fill_keys > 0)
    return FillBaselineKeys(endpoint, password, fill_keys, fill_bytes,
                            std::max<size_t>(1, fill_depth));

  std::vector<Row> rows;
  for (const size_t payload : sizes) {
    for (const uint32_t depth : depths) {
      RedisStoreOptions o;
      o.endpoints = {endpoint};
      o.password = password;
      o.block_bytes = payload;
      o.pipeline_depth = depth;
      o.connections_per_node = 1;
      o.io_timeout = std::chrono::milliseconds(10000);
      o.key_prefix = fmt::format("{}{}:{}:", key_prefix, payload, depth);
      Result<std::unique_ptr<RedisStore>> created = RedisStore::Create(o);
      if (!created.ok() || !(*created)->available()) {
        fmt::print(stderr, "strata-redisbench: {}\n",
                   created.ok() ? (*created)->last_error() : created.status().ToString());
        return 1;
      }
      RedisStore& store = **created;
      Row row;
      row.payload = payload;
      row.depth = depth;
      const size_t object = remote::ObjectBytes(payload);
      const size_t batches = std::max<size_t>(
          1, static_cast<size_t>(total_mb * 1e6 / static_cast<double>(object)) / batch);
      row.blocks = batches * batch;

      // `batch` source buffers, reused with new keys per batch (each object is still
      // distinct: its header names its key).
      std::vector<std::vector<std::byte>> data(batch, std::vector<std::byte>(payload));
      for (size_t i = 0; i < batch; ++i)
        disk_test::FillBlock(disk_test::TestKey(7, i), data[i].data(), payload);
      const NamespaceFingerprint ns = disk_test::TestNamespace();

      std::vector<RemoteStore::Put> puts(batch);
      auto t0 = Clock::now();
      for (size_t b = 0; b < (skip_put ? 0 : batches); ++b) {
        for (size_t i = 0; i < batch; ++i) {
          puts[i] = RemoteStore::Put{};
          puts[i].key = disk_test::TestKey(payload * 100 + depth, b * batch + i);
          puts[i].block = data[i];
        }
        const auto start = Clock::now();
        store.PutBatch(puts, ns);
        row.put.batch_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        for (const auto& p : puts) {
          if (p.status.ok() && p.written) continue;
          if (row.put.failures++ == 0)
            row.put.first_error = p.status.ok() ? "object already present" : p.status.ToString();
        }
      }
      row.put.seconds = std::chrono::duration<double>(Clock::now() - t0).count();

      std::vector<std::vector<std::byte>> out(batch, std::vector<std::byte>(payload));
      std::vector<RemoteStore::Get> gets(batch);
      const size_t warmup_batches = batches * static_cast<size_t>(warmup_passes);
      for (size_t pass_batch = 0; pass_batch < warmup_batches + batches * get_passes;
           ++pass_batch) {
        if (pass_batch == warmup_batches) {
          t0 = Clock::now();
          row.get.batch_ms.clear();
        }
        const size_t b = pass_batch % batches;
        for (size_t i = 0; i < batch; ++i) {
          gets[i] = RemoteStore::Get{};
          gets[i].key = disk_test::TestKey(payload * 100 + depth, b * batch + i);
          gets[i].out = out[i];
        }
        const auto start = Clock::now();
        store.GetBatch(gets, ns);
        row.get.batch_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        for (const auto& g : gets) {
          if (g.status.ok()) continue;
          if (row.get.failures++ == 0) row.get.first_error = g.status.ToString();
        }
      }
      row.get.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      row.get.passes = static_cast<size_t>(get_passes);
      if (skip_put) row.put.passes = 0;
      // Spot check: the last batch read back what was written.
      for (size_t i = 0; i < batch; ++i)
        if (out[i] != data[i] && row.get.failures++ == 0)
          row.get.first_error = "read bytes differ from written bytes";

      if (flush) {
        Result<remote::RedisEndpoint> e = remote::ParseRedisEndpoint(endpoint);
        remote::RedisConnectionOptions co;
        co.password = password;
        co.io_timeout = std::chrono::milliseconds(30000);
        if (e.ok())
          if (auto conn = remote::RedisConnection::Connect(*e, co); conn.ok())
            (void)(*conn)->Command({"FLUSHALL"});
      }
      for (const Phase* p : {&row.put, &row.get})
        if (p->failures)
          fmt::print(stderr, "strata-redisbench: {} failures at {} B depth {}: {}\n", p->failures,
                     payload, depth, p->first_error);
      rows.push_back(std::move(row));
      if (csv) {
        const Row& r = rows.back();
        for (const auto& [name, p] : {std::pair{"put", &r.put}, std::pair{"get", &r.get}})
          fmt::print("{},{},{},{},{:.1f},{:.3f},{:.3f}\n", name, r.payload, r.depth, r.blocks,
                     MBps(r, *p), Mean(p->batch_ms), P99(p->batch_ms));
        std::fflush(stdout);
      }
    }
  }
  if (!csv) {
    fmt::print("{:>9} {:>5} {:>7} {:>5} | {:>9} {:>9} {:>9} | batch of {}\n", "payload", "depth",
               "blocks", "op", "MB/s", "mean ms", "p99 ms", batch);
    for (const Row& r : rows)
      for (const auto& [name, p] : {std::pair{"put", &r.put}, std::pair{"get", &r.get}})
        fmt::print("{:>9} {:>5} {:>7} {:>5} | {:>9.1f} {:>9.3f} {:>9.3f}\n", r.payload, r.depth,
                   r.blocks, name, MBps(r, *p), Mean(p->batch_ms), P99(p->batch_ms));
  }
  for (const Row& r : rows)
    if (r.put.failures || r.get.failures) return 1;
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  return strata::Main(argc, argv);
}
