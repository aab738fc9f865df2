// WorkerPool: jobs run, the queue is bounded, destruction drains.
#include "manager/worker_pool.h"

#include <atomic>
#include <future>

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(WorkerPoolTest, RunsEveryJob) {
  std::atomic<int> ran{0};
  {
    WorkerPool pool(2, 1000, "test");
    for (int i = 0; i < 500; ++i) ASSERT_TRUE(pool.TrySubmit([&] { ran++; }));
  }  // destructor drains
  EXPECT_EQ(ran.load(), 500);
}

TEST(WorkerPoolTest, FullQueueRefusesInsteadOfBlocking) {
  // Declared before the pool so they outlive its threads.
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::promise<void> started;
  WorkerPool pool(1, 2, "test");
  ASSERT_TRUE(pool.TrySubmit([&] {
    started.set_value();
    open.wait();
  }));
  started.get_future().wait();  // the only worker is now busy
  EXPECT_TRUE(pool.TrySubmit([] {}));
  EXPECT_TRUE(pool.TrySubmit([] {}));
  EXPECT_EQ(pool.queued(), 2u);
  EXPECT_FALSE(pool.TrySubmit([] {}));  // bounded: refused at once
  gate.set_value();
}

}  // namespace
}  // namespace strata
