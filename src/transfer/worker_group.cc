// WorkerGroup: per-worker rings with their own mutex and condition variable.
#include "transfer/worker_group.h"

#include <pthread.h>

namespace strata::internal {

WorkerGroup::WorkerGroup(uint32_t threads, uint32_t ring_capacity, std::string name, RunFn run)
    : run_(std::move(run)) {
  for (uint32_t i = 0; i < threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->ring.resize(ring_capacity);
    workers_.push_back(std::move(w));
  }
  for (uint32_t i = 0; i < threads; ++i) {
    Worker& w = *workers_[i];
    w.thread = std::thread([this, &w] { Loop(w); });
    pthread_setname_np(w.thread.native_handle(), (name + std::to_string(i)).substr(0, 15).c_str());
  }
}

WorkerGroup::~WorkerGroup() {
  for (auto& w : workers_) {
    {
      std::lock_guard lock(w->mu);
      w->stopping = true;
    }
    w->cv.notify_one();
  }
  for (auto& w : workers_) w->thread.join();
}

void WorkerGroup::Push(uint32_t worker, const TransferTask& task) {
  Worker& w = *workers_[worker % workers_.size()];
  {
    std::lock_guard lock(w.mu);
    if (w.count < w.ring.size()) {
      w.ring[(w.head + w.count) % w.ring.size()] = task;
      ++w.count;
      w.cv.notify_one();
      return;
    }
  }
  run_(task);  // ring full: do it here rather than drop or allocate
}

void WorkerGroup::Loop(Worker& w) {
  for (;;) {
    TransferTask task;
    {
      std::unique_lock lock(w.mu);
      w.cv.wait(lock, [&] { return w.stopping || w.count > 0; });
      if (w.count == 0) return;          // stopping and drained
      task = std::move(w.ring[w.head]);  // the slot must not keep `keep` alive
      w.head = (w.head + 1) % w.ring.size();
      --w.count;
    }
    run_(task);
  }
}

}  // namespace strata::internal
