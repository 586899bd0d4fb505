// Keystroke savings on hand-made vocabularies and log-probabilities.
#include "fedlora/device/keystrokes.h"

#include <cmath>
#include <map>

#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

// 0 <s>, 1 </s>, 2 the, 3 cat, 4 car, 5 s (continuation), 6 dog, 7 do, 8 g (continuation), 9 a
KeyboardVocab Vocab() {
  KeyboardVocab kv;
  kv.text = {"", "", "the", "cat", "car", "s", "dog", "do", "g", "a"};
  kv.starts_word = {false, false, true, true, true, false, true, true, false, true};
  kv.special = {true, true, false, false, false, false, false, false, false, false};
  return kv;
}

// One row of log-probabilities from {id: logit} (the rest very unlikely).
std::vector<float> Row(const std::map<int64_t, float>& logits) {
  std::vector<float> r(10, -30.f);
  for (const auto& [id, v] : logits) r[id] = v;
  double z = 0;
  for (float v : r) z += std::exp(v);
  for (float& v : r) v -= static_cast<float>(std::log(z));
  return r;
}

WordKeystrokes Score(const std::vector<int64_t>& word, const std::vector<std::vector<float>>& rows,
                     const std::vector<int64_t>& greedy) {
  std::vector<const float*> p;
  for (const auto& r : rows) p.push_back(r.data());
  return WordKeystrokeSavings(word, p.data(), 10, greedy, Vocab());
}

TEST(KeystrokesTest, AWordPredictedAtOnceSavesAllButOneKeystroke) {
  auto ks = Score({3}, {Row({{3, 5}, {2, 1}})}, {3, 2});
  EXPECT_EQ(ks.chars, 3);
  EXPECT_EQ(ks.saved, 2);
}

TEST(KeystrokesTest, AWordNeverPredictedSavesNone) {
  // The strip would complete "cat" into "cats": the word never shows.
  auto ks = Score({3}, {Row({{3, 5}})}, {3, 5});
  EXPECT_EQ(ks.chars, 3);
  EXPECT_EQ(ks.saved, 0);
  // A one-letter word below three others: typing it is as cheap as picking it.
  auto low = Score({9}, {Row({{3, 5}, {2, 4}, {4, 3}, {9, 2}})}, {3, 2});
  EXPECT_EQ(low.chars, 1);
  EXPECT_EQ(low.saved, 0);
}

TEST(KeystrokesTest, TypedCharactersNarrowTheStrip) {
  // "dog" is fifth at first; after "d" only dog and do remain: found after one character.
  auto ks = Score({6}, {Row({{2, 5}, {3, 4}, {4, 3}, {9, 2}, {6, 1}, {7, 0}})}, {2, 9});
  EXPECT_EQ(ks.chars, 3);
  EXPECT_EQ(ks.saved, 1);
  // "car" after "c": cat and car remain, car is in the strip.
  auto car = Score({4}, {Row({{2, 5}, {6, 4}, {9, 3}, {3, 2}, {4, 1}})}, {2, 2});
  EXPECT_EQ(car.saved, 1);
}

TEST(KeystrokesTest, AMultiTokenWordNeedsItsGreedyCompletion) {
  // "dogs" = do + g + s. Greedy spells it: found at once, 3 of 4 keystrokes saved.
  auto ok = Score({7, 8, 5}, {Row({{7, 5}}), Row({{8, 5}}), Row({{5, 5}})}, {7, 8, 5, 2});
  EXPECT_EQ(ok.chars, 4);
  EXPECT_EQ(ok.saved, 3);
  // Greedy stops after "dog": the strip shows "dog", never "dogs" until its last letter.
  auto stop = Score({7, 8, 5}, {Row({{7, 5}}), Row({{8, 5}}), Row({{1, 5}, {5, 1}})},
                    {7, 8, 1, 2});
  EXPECT_EQ(stop.saved, 0);
}

}  // namespace
}  // namespace fedlora::device
