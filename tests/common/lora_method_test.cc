// The adapter blob's slot layout and the LoRA methods' shared positions (torch-free: what the
// coordinator maps the summed vector back into the flat adapter with).
#include "fedlora/common/lora_method.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora {
namespace {

AdapterBlob TwoSlots() {
  AdapterBlob b;
  b.lora = {{"r", 2}};
  b.slots = {{3, 2}, {1, 4}};
  for (int i = 0; i < 10; ++i) b.values.push_back(static_cast<float>(i));
  return b;
}

TEST(LoraMethodTest, SlotsRoundTripAndMustAddUpToDim) {
  const AdapterBlob b = TwoSlots();
  auto back = DecodeAdapterBlob(EncodeAdapterBlob(b));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->slots, b.slots);
  AdapterBlob bad = b;
  bad.slots = {{3, 2}, {1, 3}};  // 9 of 10 values
  auto refused = DecodeAdapterBlob(EncodeAdapterBlob(bad));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("slots"));
  AdapterBlob none = b;
  none.slots.clear();  // older blobs: no layout, still readable
  auto old = DecodeAdapterBlob(EncodeAdapterBlob(none));
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->slots.empty());
}

TEST(LoraMethodTest, SharedPositionsPerMethod) {
  const AdapterBlob b = TwoSlots();
  EXPECT_EQ(*SharedPositions(b, LoraMethod::kLora),
            (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(*SharedPositions(b, LoraMethod::kFfa), (std::vector<size_t>{3, 4, 6, 7, 8, 9}));
  EXPECT_EQ(*SharedPositions(b, LoraMethod::kFedSa), (std::vector<size_t>{0, 1, 2, 5}));
  AdapterBlob none = b;
  none.slots.clear();
  EXPECT_EQ(SharedPositions(none, LoraMethod::kFfa).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(SharedPositions(none, LoraMethod::kLora).ok());
  std::vector<float> full(10, 0.0f);
  ASSERT_TRUE(Scatter({1, 2, 3, 4}, *SharedPositions(b, LoraMethod::kFedSa), &full).ok());
  EXPECT_EQ(Gather(full, {0, 5}), (std::vector<float>{1, 4}));
  EXPECT_FALSE(Scatter({1}, {10}, &full).ok());
  EXPECT_EQ(*ParseLoraMethod("ffa"), LoraMethod::kFfa);
  EXPECT_FALSE(ParseLoraMethod("qlora").ok());
}

}  // namespace
}  // namespace fedlora
