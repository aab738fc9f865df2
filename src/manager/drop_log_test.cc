// DropLog: one warning line per period at most, with the count since the last line.
#include "manager/drop_log.h"

#include <gtest/gtest.h>

#include "manager/manager_test_util.h"

namespace strata {
namespace {

using namespace std::chrono_literals;

using manager_test::CapturedLog;

TEST(DropLogTest, AtMostOneLinePerPeriodWithTheCountSinceTheLastLine) {
  CapturedLog log;
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  {
    DropLog drops("the G3 disk tier", "advice", 10s, [&] { return now; });
    drops.Note("offload queue full", 3);  // the first drop is logged at once
    ASSERT_EQ(log.Lines().size(), 1u);
    EXPECT_NE(log.Lines()[0].find("3 blocks were not written to the G3 disk tier since start-up"),
              std::string::npos)
        << log.Lines()[0];
    EXPECT_NE(log.Lines()[0].find("offload queue full 3"), std::string::npos);
    EXPECT_NE(log.Lines()[0].find("advice"), std::string::npos);
    for (int i = 0; i < 100; ++i) {  // a burst within the period: counted, not logged
      now += 50ms;
      drops.Note(i % 2 ? "offload queue full" : "write errors", 1, "EIO at offset 4096");
    }
    EXPECT_EQ(log.Lines().size(), 1u);
    now += 6s;  // 11 s since the first line
    drops.Note("offload queue full", 1);
    ASSERT_EQ(log.Lines().size(), 2u);
    const std::string second = log.Lines()[1];
    EXPECT_NE(second.find("101 blocks were not written"), std::string::npos) << second;
    EXPECT_NE(second.find("in the last 11.0 s"), std::string::npos) << second;
    EXPECT_NE(second.find("write errors 50"), std::string::npos) << second;
    EXPECT_NE(second.find("offload queue full 51"), std::string::npos) << second;
    EXPECT_NE(second.find("latest error: EIO at offset 4096"), std::string::npos) << second;
    now += 1s;
    drops.Note("offload queue full", 2);  // pending at destruction
    EXPECT_EQ(drops.lines(), 2u);
  }
  ASSERT_EQ(log.Lines().size(), 3u);
  EXPECT_NE(log.Lines()[2].find("2 blocks were not written"), std::string::npos);
}

}  // namespace
}  // namespace strata
