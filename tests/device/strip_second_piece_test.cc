// The lexicon strip's second pieces on a real (small, random) model: the rows the evaluation
// runs after each expanded first piece are the model's own next step, and the evaluation
// (EvaluateIds) scores exactly what the live strip (SuggestLexiconWords) shows keystroke by
// keystroke.
#include <torch/types.h>

#include <memory>

#include "device_testutil.h"
#include "fedlora/device/evaluate.h"
#include "fedlora/device/generate.h"
#include "fedlora/device/word_strip.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

using fedlora::testing::MakeLines;
using fedlora::testing::MakeLinesLexicon;
using fedlora::testing::SharedTokenizer;
using fedlora::testing::SmallModel;

TEST(StripSecondPieceTest, TheRowAfterAFirstPieceIsTheModelsNextStep) {
  const auto& tok = SharedTokenizer();
  const model::LlamaModel model = SmallModel(5);
  StripWeights w;
  w.second_pieces = 64;  // every expandable piece that fits
  const WordStrip strip(MakeLinesLexicon(), nullptr, w);
  std::vector<std::vector<int64_t>> seqs;
  for (const auto& line : MakeLines(2, 6, 3)) seqs.push_back(tok.EncodeWithBos(line));
  EvalOptions o;
  o.window = 12;  // several windows per line, so positions inside a longer cache are masked
  o.strip = &strip;
  const WindowLogProbs a = ForwardWindows(model, tok, seqs, o);
  ASSERT_EQ(a.next.size(), a.windows.size());
  int compared = 0, rows = 0;
  for (size_t wi = 0; wi < a.windows.size(); ++wi) {
    const auto& ids = a.windows[wi];
    const WindowNextPieces& n = a.next[wi];
    for (size_t i = 0; i + 2 < ids.size(); ++i) {
      for (int64_t r = n.offset[i]; r < n.offset[i + 1]; ++r) {
        ++rows;
        if (n.piece[r] != ids[i + 1]) continue;
        // The model read ids[0..i] and then the word's own first piece: row i + 1.
        EXPECT_TRUE(torch::allclose(n.logp[r], a.logp[wi][i + 1], 1e-4, 1e-4))
            << "window " << wi << " position " << i;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 5);
  EXPECT_GT(rows, compared);
}

// Replays `line` word by word through SuggestLexiconWords, typing each word's characters one
// at a time, and counts what keystrokes.h's rule counts (the line's last word has no piece
// after it in the window, so the evaluation does not score it).
TextMetrics Replay(const model::LlamaModel& model, const WordStrip& strip, const std::string& line) {
  TextMetrics m;
  const auto& tok = SharedTokenizer();
  const std::vector<int64_t> ids = tok.EncodeWithBos(line);
  std::string context;
  const std::vector<WordSpan> spans = WordSpans(ids, strip.vocab());
  for (size_t i = 0; i + 1 < spans.size(); ++i) {
    const WordSpan& w = spans[i];
    m.words += 1;
    m.key_chars += static_cast<int64_t>(w.text.size());  // ASCII test text
    for (size_t c = 0; c < w.text.size(); ++c) {
      const std::string text = context + (context.empty() ? "" : " ") + w.text.substr(0, c);
      auto s = SuggestLexiconWords(model, tok, strip, text, 3);
      EXPECT_TRUE(s.ok()) << s.status();
      bool shown = false;
      for (const auto& x : *s) shown = shown || x.word == w.text;
      if (shown) {
        m.key_saved += static_cast<int64_t>(w.text.size() - c - 1);
        m.word_top3 += c == 0;
        break;
      }
    }
    context += (context.empty() ? "" : " ") + w.text;
  }
  return m;
}

TEST(StripSecondPieceTest, TheLiveStripShowsWhatTheEvaluationScores) {
  const auto& tok = SharedTokenizer();
  const model::LlamaModel model = SmallModel(7);
  for (int k : {0, 4}) {
    StripWeights w;
    w.second_pieces = k;
    const WordStrip strip(MakeLinesLexicon(), nullptr, w);
    TextMetrics live, eval;
    for (const auto& line : MakeLines(1, 4, 9)) {
      live.Add(Replay(model, strip, line));
      EvalOptions o;
      o.strip = &strip;
      eval.Add(EvaluateIds(model, tok, {tok.EncodeWithBos(line)}, o));
    }
    EXPECT_EQ(eval.words, live.words) << "K = " << k;
    EXPECT_EQ(eval.key_chars, live.key_chars) << "K = " << k;
    EXPECT_EQ(eval.key_saved, live.key_saved) << "K = " << k;
    EXPECT_EQ(eval.word_top3, live.word_top3) << "K = " << k;
    EXPECT_GT(eval.key_saved, 0) << "K = " << k;
  }
}

}  // namespace
}  // namespace fedlora::device
