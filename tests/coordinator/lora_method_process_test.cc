// FedSA-LoRA with FedAdam through the real processes: `coordinator init --lora-method fedsa
// --server-optimizer fedadam`, a TLS coordinator and two `device run` processes. Only A is
// summed (the global B never moves), each phone keeps its own trained B in its state folder
// (0600), and the coordinator's FedAdam moments are stored with the latest version.
#include <filesystem>

#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/lora_method.h"
#include "fedlora/common/private_file.h"
#include "fedlora/coordinator/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "process_testutil.h"

namespace fedlora {
namespace {

TEST_F(CoordinatorProcessTest, FedsaWithFedAdamKeepsEachDevicesBOnTheDevice) {
  Init(2, "--lora-method fedsa --server-optimizer fedadam");
  const int port = testing::FreeLoopbackPort();
  auto coord = StartCoordinator(port, "coordinator");
  ASSERT_THAT(coord.WaitForLine("listening on", 30), ::testing::HasSubstr("(TLS)")) << coord.Err();
  Enroll(0, port, false);
  Enroll(1, port, false);
  auto d0 = StartDevice(0, port, false, 2);
  auto d1 = StartDevice(1, port, false, 2);
  ASSERT_EQ(d0.Wait(240), 0) << d0.Out() << d0.Err() << coord.Out();
  ASSERT_EQ(d1.Wait(240), 0) << d1.Out() << d1.Err();
  ASSERT_EQ(coord.Wait(60), 0) << coord.Out() << coord.Err();
  EXPECT_THAT(coord.Out(), ::testing::HasSubstr("committed: adapter version 3"));

  auto store = coordinator::OpenSqliteStore(dir_ + "/coord");
  ASSERT_TRUE(store.ok()) << store.status();
  auto versions = (*store)->ListAdapterVersions();
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 3u);
  auto initial = DecodeAdapterBlob(*(*store)->ReadBlob(versions->front().sha256));
  auto latest = DecodeAdapterBlob(*(*store)->ReadBlob(versions->back().sha256));
  ASSERT_TRUE(initial.ok() && latest.ok());
  auto b = BPositions(*latest);
  ASSERT_TRUE(b.ok()) << b.status();
  std::vector<bool> is_b(latest->values.size(), false);
  for (size_t i : *b) is_b[i] = true;
  size_t a_moved = 0;
  for (size_t i = 0; i < is_b.size(); ++i) {
    if (is_b[i]) {
      ASSERT_EQ(latest->values[i], initial->values[i]) << "the global B moved at " << i;
    } else {
      a_moved += latest->values[i] != initial->values[i];
    }
  }
  EXPECT_GT(a_moved, (is_b.size() - b->size()) / 2);
  // FedAdam's m and v of every A value, stored with version 3.
  auto state = (*store)->OptimizerState();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->size() - state->find('\n') - 1, 16 * (is_b.size() - b->size()));

  // Each phone's own B: owner-only, B-sized, trained (the global B is all zeros).
  for (int i = 0; i < 2; ++i) {
    auto bytes = ReadPrivateFile(Phone(i) + "/fedsa/personal_b.blob");
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto own = DecodeAdapterBlob(*bytes);
    ASSERT_TRUE(own.ok()) << own.status();
    ASSERT_EQ(own->values.size(), b->size());
    size_t nonzero = 0;
    for (float v : own->values) nonzero += v != 0.0f;
    EXPECT_GT(nonzero, b->size() / 2) << "phone " << i;
  }
}

}  // namespace
}  // namespace fedlora
