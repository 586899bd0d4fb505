// capi/src/detached_scope.h: re-attaching the adapters when a training scope ends never
// throws, even when attaching fails by an exception while another exception unwinds (which
// would terminate the app's process).
#include <cstdlib>
#include <new>
#include <stdexcept>

#include "../../capi/src/detached_scope.h"
#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace fedlora::capi {
namespace {

struct FakeRuntime {
  enum class Attach { kOk, kError, kThrow };
  Attach attach = Attach::kOk;
  bool attached = true;
  int detaches = 0;

  void DetachAll() {
    ++detaches;
    attached = false;
  }
  absl::Status AttachAll() {
    if (attach == Attach::kThrow) throw std::bad_alloc();
    if (attach == Attach::kError) return absl::ResourceExhaustedError("no memory");
    attached = true;
    return absl::OkStatus();
  }
};

TEST(DetachedScopeTest, ReattachesWhenTheScopeEnds) {
  FakeRuntime rt;
  {
    BasicDetachedScope<FakeRuntime> scope(&rt);
    EXPECT_FALSE(rt.attached);
  }
  EXPECT_TRUE(rt.attached);
}

TEST(DetachedScopeTest, AFailedReattachLeavesTheRuntimeDetachedAndThrowsNothing) {
  for (auto mode : {FakeRuntime::Attach::kError, FakeRuntime::Attach::kThrow}) {
    FakeRuntime rt;
    rt.attach = mode;
    EXPECT_NO_THROW({ BasicDetachedScope<FakeRuntime> scope(&rt); });
    EXPECT_FALSE(rt.attached);
    EXPECT_EQ(rt.detaches, 2) << "detached again after the failed attach";
  }
}

TEST(DetachedScopeDeathTest, AThrowingReattachDuringUnwindingDoesNotTerminate) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // In a child process: with a destructor that lets the exception out, std::terminate kills it.
  EXPECT_EXIT(
      {
        FakeRuntime rt;
        rt.attach = FakeRuntime::Attach::kThrow;
        try {
          BasicDetachedScope<FakeRuntime> scope(&rt);
          throw std::runtime_error("training failed");  // unwinds through ~BasicDetachedScope
        } catch (const std::runtime_error&) {
        }
        std::exit(rt.attached ? 3 : 0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace fedlora::capi
