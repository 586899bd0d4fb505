// The lexicon strip that learns each line once it has been typed (ScoreStripLearning, a
// phone's observe after every line): line i is scored with the counts of the lines before it,
// exactly as a strip compiled from those counts scores that line alone.
#include <torch/types.h>

#include <memory>

#include "device_testutil.h"
#include "fedlora/device/evaluate.h"
#include "fedlora/device/word_strip.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

using fedlora::testing::MakeLines;
using fedlora::testing::MakeLinesLexicon;
using fedlora::testing::SharedTokenizer;
using fedlora::testing::SmallModel;

// A user who keeps typing a word the public lexicon lacks ("marina").
std::vector<std::string> TypedLines() {
  return {"hey otto want to meet at the marina later? cheers zoe",
          "hey otto want to meet at the marina later? cheers zoe",
          "see you at the marina for tacos later? cheers zoe", "hey otto the marina again"};
}

std::vector<std::vector<int64_t>> Encode(const std::vector<std::string>& lines) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& l : lines) out.push_back(SharedTokenizer().EncodeWithBos(l));
  return out;
}

TEST(StripLearningTest, EachLineIsScoredWithTheCountsOfTheLinesBeforeIt) {
  const auto& tok = SharedTokenizer();
  const model::LlamaModel model = SmallModel(3);
  const auto lex = MakeLinesLexicon();
  WordNgram start;
  start.AddLines(tok, lex->kv, MakeLines(1, 3, 2));
  const std::vector<std::string> lines = TypedLines();
  StripWeights w1, w2;
  w1.personal = 0.3;
  w2.personal = 0.9;
  EvalOptions o;
  o.window = 24;  // the first line takes two windows: a line's windows stay together
  const WindowLogProbs all = ForwardWindows(model, tok, Encode(lines), o);
  ASSERT_EQ(all.sequence_start.size(), lines.size() + 1);
  ASSERT_GT(all.windows.size(), lines.size());
  const std::vector<TextMetrics> got =
      ScoreStripLearning(all, tok, lex, start, lines, {w1, w2}, size_t{1} << 20);
  ASSERT_EQ(got.size(), 2u);

  // By hand: the strip of the counts so far, on each line alone.
  for (int j = 0; j < 2; ++j) {
    WordNgram counts = start;
    TextMetrics want;
    for (const auto& line : lines) {
      const WordStrip strip(lex, &counts, j == 0 ? w1 : w2);
      want.Add(ScoreStrip(ForwardWindows(model, tok, Encode({line}), o), tok, strip));
      counts.AddLines(tok, lex->kv, {line});
    }
    EXPECT_EQ(got[j].words, want.words) << j;
    EXPECT_EQ(got[j].key_chars, want.key_chars) << j;
    EXPECT_EQ(got[j].key_saved, want.key_saved) << j;
    EXPECT_EQ(got[j].word_top3, want.word_top3) << j;
    EXPECT_NEAR(got[j].nll_sum, want.nll_sum, 1e-3) << j;  // batched against one line
  }

  // Without learning the same strip never shows "marina"; learning it saves keystrokes.
  const WordStrip fixed(lex, &start, w2);
  const TextMetrics without = ScoreStrip(all, tok, fixed);
  EXPECT_EQ(without.key_chars, got[1].key_chars);
  EXPECT_GT(got[1].key_saved, without.key_saved + 5);
  EXPECT_GT(got[1].word_top3, without.word_top3);
}

TEST(StripLearningTest, LinesSliceOneSequencesWindows) {
  const auto& tok = SharedTokenizer();
  const model::LlamaModel model = SmallModel(4);
  EvalOptions o;
  o.window = 6;
  const std::vector<std::string> lines = TypedLines();
  const WindowLogProbs all = ForwardWindows(model, tok, Encode(lines), o);
  for (size_t i = 0; i < lines.size(); ++i) {
    const WindowLogProbs one = ForwardWindows(model, tok, Encode({lines[i]}), o);
    const WindowLogProbs cut = all.Lines(i, i + 1);
    ASSERT_EQ(cut.windows, one.windows) << i;
    ASSERT_EQ(cut.sequence_start, one.sequence_start) << i;
    for (size_t w = 0; w < cut.logp.size(); ++w) {
      EXPECT_TRUE(torch::allclose(cut.logp[w], one.logp[w], 1e-5, 1e-5)) << i << " " << w;
    }
  }
  EXPECT_THROW(all.Lines(2, lines.size() + 1), c10::Error);
  const auto lex = MakeLinesLexicon();
  EXPECT_THROW(
      ScoreStripLearning(all, tok, lex, WordNgram(), {lines[0]}, {StripWeights()}, 1 << 20),
      c10::Error);  // windows of 4 lines, 1 line given
}

}  // namespace
}  // namespace fedlora::device
