// WorkerPool: a fixed set of threads draining a bounded job queue.
//
// TrySubmit never blocks: when the queue is full it returns false and the caller
// drops or fails the work (the engine must never wait on Strata).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace strata {

class WorkerPool {
 public:
  WorkerPool(uint32_t threads, uint32_t max_queued, std::string name);
  // Runs every queued job, then joins the threads.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `job`; false when the queue holds max_queued jobs already or the pool is stopping.
  bool TrySubmit(std::function<void()> job);
  // Jobs queued and not yet started.
  size_t queued() const;

 private:
  void Run();

  const uint32_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
};

}  // namespace strata
