// WorkerGroup: N threads, each draining its own fixed-capacity task ring.
//
// Backends that move data on threads (memcpy, posix) hand each worker a range of a
// request's entries. Every worker has its own queue and lock, so posts on different
// workers never contend (NIXL's POSIX backend funnels everything through one queue and
// one lock), and a push allocates nothing.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "transfer/request.h"

namespace strata::internal {

struct TransferTask {
  RequestImpl* request = nullptr;
  uint32_t begin = 0;  // entries [begin, end)
  uint32_t end = 0;
  // Keeps backend state alive for a task that may run after its request is gone (the
  // memcpy backend's helpers, which claim work and find none left).
  std::shared_ptr<void> keep;
};

class WorkerGroup {
 public:
  using RunFn = std::function<void(const TransferTask&)>;

  WorkerGroup(uint32_t threads, uint32_t ring_capacity, std::string name, RunFn run);
  // Finishes every queued task, then joins.
  ~WorkerGroup();

  uint32_t size() const { return static_cast<uint32_t>(workers_.size()); }
  // Queues `task` on `worker`. When that ring is full the task runs on the calling
  // thread instead: a bounded queue never loses work and never allocates.
  void Push(uint32_t worker, const TransferTask& task);
  // A worker index that spreads successive requests over the group.
  uint32_t NextWorker() { return next_.fetch_add(1, std::memory_order_relaxed) % size(); }

 private:
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<TransferTask> ring;  // fixed capacity
    size_t head = 0, count = 0;      // GUARDED_BY(mu)
    bool stopping = false;           // GUARDED_BY(mu)
    std::thread thread;
  };
  void Loop(Worker& w);

  RunFn run_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<uint32_t> next_{0};
};

}  // namespace strata::internal
