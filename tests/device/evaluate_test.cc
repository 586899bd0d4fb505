// EvaluateTexts / EvaluateIds: token accounting across windows and batches, agreement with a
// plain forward pass, and the keyboard metrics (next-word top-3, suggestions) on a model that
// has memorised one sentence.
#include "fedlora/device/evaluate.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>
#include <sstream>

#include "device_testutil.h"
#include "fedlora/device/generate.h"
#include "fedlora/device/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

using fedlora::testing::MakeLines;
using fedlora::testing::SharedTokenizer;
using fedlora::testing::SmallModel;

int64_t ExpectedTokens(const model::Tokenizer& tok, const std::vector<std::string>& texts) {
  int64_t n = 0;
  for (const auto& t : texts) n += static_cast<int64_t>(tok.EncodeWithBos(t).size()) - 1;
  return n;
}

std::vector<std::string> SplitWords(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

TEST(EvaluateTest, EveryTokenAfterBosScoredOnceAtAnyWindow) {
  const auto& tok = SharedTokenizer();
  model::LlamaModel m = SmallModel(11);
  std::vector<std::string> texts = MakeLines(1, 6, 3);
  // One long text (longer than the model's 64 positions) next to the short ones.
  std::string long_text;
  for (const auto& l : MakeLines(4, 5, 9)) long_text += l + " ";
  texts.push_back(long_text);
  ASSERT_GT(tok.EncodeWithBos(long_text).size(), 64u);
  const int64_t want = ExpectedTokens(tok, texts);
  std::vector<double> nll;
  for (int64_t window : {0, 2, 7, 16, 64}) {
    EvalOptions o;
    o.window = window;
    TextMetrics mt = EvaluateTexts(m, tok, texts, o);
    EXPECT_EQ(mt.tokens, want) << "window " << window;
    EXPECT_TRUE(std::isfinite(mt.nll_sum)) << "window " << window;
    EXPECT_GT(mt.nll_sum, 0) << "window " << window;
    EXPECT_LE(mt.top1, mt.top3);
    EXPECT_LE(mt.top3, mt.tokens);
    nll.push_back(mt.mean_nll());
  }
  // Default window = max_position_embeddings (64).
  EXPECT_DOUBLE_EQ(nll[0], nll[4]);
  // A random model's NLL is near log(vocab) whatever the context.
  for (double v : nll) EXPECT_NEAR(v, std::log(double(tok.vocab_size())), 1.0);
}

TEST(EvaluateTest, BatchSizeDoesNotChangeResults) {
  const auto& tok = SharedTokenizer();
  model::LlamaModel m = SmallModel(12);
  // Different lengths so batches are padded.
  std::vector<std::string> texts = {"hey", "hey maya want to meet", MakeLines(2, 1, 1)[0],
                                    MakeLines(3, 1, 2)[0] + " and more words here"};
  EvalOptions one;
  one.batch_size = 1;
  EvalOptions many;
  many.batch_size = 8;
  TextMetrics a = EvaluateTexts(m, tok, texts, one);
  TextMetrics b = EvaluateTexts(m, tok, texts, many);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NEAR(a.nll_sum, b.nll_sum, 1e-3);
  EXPECT_EQ(a.top1, b.top1);
  EXPECT_EQ(a.top3, b.top3);
  EXPECT_EQ(a.words, b.words);
  EXPECT_EQ(a.word_top3, b.word_top3);
}

TEST(EvaluateTest, MatchesPlainForwardPass) {
  const auto& tok = SharedTokenizer();
  model::LlamaModel m = SmallModel(13);
  const std::string text = MakeLines(5, 1, 4)[0];
  std::vector<int64_t> ids = tok.EncodeWithBos(text);
  ASSERT_LT(ids.size(), 64u);
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  torch::Tensor logits = m.Forward(x);
  const double loss = model::NextTokenLoss(logits, x).item<double>();
  torch::Tensor pred = logits[0].narrow(0, 0, x.size(1) - 1).argmax(-1);
  const int64_t top1 = pred.eq(x[0].narrow(0, 1, x.size(1) - 1)).sum().item<int64_t>();
  TextMetrics mt = EvaluateIds(m, tok, {ids});
  EXPECT_EQ(mt.tokens, static_cast<int64_t>(ids.size()) - 1);
  EXPECT_NEAR(mt.mean_nll(), loss, 1e-4);
  EXPECT_NEAR(mt.perplexity(), std::exp(loss), 1e-3 * std::exp(loss));
  EXPECT_EQ(mt.top1, top1);
  nlohmann::json j = mt.ToJson();
  EXPECT_EQ(j["tokens"], mt.tokens);
  EXPECT_NEAR(j["perplexity"].get<double>(), mt.perplexity(), 1e-9);
}

TEST(EvaluateTest, EmptyAndSingleTokenInputsScoreNothing) {
  const auto& tok = SharedTokenizer();
  model::LlamaModel m = SmallModel(14);
  TextMetrics none = EvaluateTexts(m, tok, {});
  EXPECT_EQ(none.tokens, 0);
  EXPECT_EQ(none.words, 0);
  TextMetrics bos_only = EvaluateIds(m, tok, {{tok.bos_id()}});
  EXPECT_EQ(bos_only.tokens, 0);
  EXPECT_EQ(bos_only.next_word_top3(), 0);
}

// Interpolation: the mixture at w = 1 and w = 0 scores exactly as each model alone, and in
// between its loss is at most the weighted mean of the two (Jensen: log is concave).
TEST(EvaluateTest, ScoreMixtureEndpointsAndConvexity) {
  const auto& tok = SharedTokenizer();
  model::LlamaModel a = SmallModel(31), b = SmallModel(32);
  std::vector<std::vector<int64_t>> seqs;
  for (const auto& line : MakeLines(4, 6, 2)) seqs.push_back(tok.EncodeWithBos(line));
  EvalOptions o;
  o.window = 16;
  const WindowLogProbs la = ForwardWindows(a, tok, seqs, o), lb = ForwardWindows(b, tok, seqs, o);
  const TextMetrics ma = EvaluateIds(a, tok, seqs, o), mb = EvaluateIds(b, tok, seqs, o);
  const TextMetrics at1 = ScoreMixture(la, lb, 1.0, tok), at0 = ScoreMixture(la, lb, 0.0, tok);
  // Same counts; the loss to float rounding (log_softmax of log-probabilities).
  for (const auto& [mix, alone] : {std::pair{at1, ma}, std::pair{at0, mb}}) {
    EXPECT_EQ(mix.tokens, alone.tokens);
    EXPECT_EQ(mix.top1, alone.top1);
    EXPECT_EQ(mix.top3, alone.top3);
    EXPECT_EQ(mix.word_top3, alone.word_top3);
    EXPECT_EQ(mix.key_saved, alone.key_saved);
    EXPECT_EQ(mix.key_chars, alone.key_chars);
    EXPECT_NEAR(mix.mean_nll(), alone.mean_nll(), 1e-6);
  }
  EXPECT_NE(ma.nll_sum, mb.nll_sum);
  for (double w : {0.25, 0.5, 0.75}) {
    const TextMetrics mix = ScoreMixture(la, lb, w, tok);
    EXPECT_EQ(mix.tokens, ma.tokens);
    EXPECT_LE(mix.mean_nll(), w * ma.mean_nll() + (1 - w) * mb.mean_nll() + 1e-6) << w;
  }
}

TEST(TextMetricsTest, AddSumsCounts) {
  TextMetrics a;
  a.tokens = 10;
  a.nll_sum = 20;
  a.top1 = 3;
  a.top3 = 5;
  a.words = 4;
  a.word_top3 = 2;
  TextMetrics b = a;
  b.Add(a);
  EXPECT_EQ(b.tokens, 20);
  EXPECT_DOUBLE_EQ(b.mean_nll(), 2.0);
  EXPECT_DOUBLE_EQ(b.perplexity(), std::exp(2.0));
  EXPECT_DOUBLE_EQ(b.next_token_top1(), 0.3);
  EXPECT_DOUBLE_EQ(b.next_token_top3(), 0.5);
  EXPECT_DOUBLE_EQ(b.next_word_top3(), 0.5);
}

// A SmallModel whose every parameter was trained on one repeated sentence until it predicts
// it almost perfectly. Trained once for the suite.
class MemorizedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto& tok = SharedTokenizer();
    sentence_ = new std::string(MakeLines(0, 1, 1)[0]);
    model_ = new model::LlamaModel(SmallModel(21));
    model_->SetBaseTrainable(true);
    std::vector<torch::Tensor> params;
    for (auto& [name, t] : model_->NamedParameters()) params.push_back(*t);
    // One window per copy: [BOS] sentence [EOS].
    const int64_t len = static_cast<int64_t>(tok.EncodeWithBos(*sentence_).size()) + 1;
    TokenWindows w = MakeWindows(tok, std::vector<std::string>(16, *sentence_), len);
    TrainOptions o;
    o.optimizer.lr = 1e-2;
    o.batch_size = 4;
    o.max_steps = 80;
    auto stats = Train(*model_, params, w, o);
    model_->SetBaseTrainable(false);
    ASSERT_TRUE(stats.ok()) << stats.status();
    final_loss_ = stats->last_loss;
  }
  static void TearDownTestSuite() {
    delete model_;
    delete sentence_;
  }
  static model::LlamaModel* model_;
  static std::string* sentence_;
  static double final_loss_;
};

model::LlamaModel* MemorizedTest::model_ = nullptr;
std::string* MemorizedTest::sentence_ = nullptr;
double MemorizedTest::final_loss_ = 0;

TEST_F(MemorizedTest, NextWordTop3IsPerfectAndWordsCounted) {
  ASSERT_NE(model_, nullptr);
  ASSERT_LT(final_loss_, 0.1) << "memorisation did not converge";
  const auto& tok = SharedTokenizer();
  TextMetrics mt = EvaluateTexts(*model_, tok, {*sentence_});
  EXPECT_EQ(mt.tokens, ExpectedTokens(tok, {*sentence_}));
  EXPECT_EQ(mt.top1, mt.tokens);
  EXPECT_LT(mt.perplexity(), 1.2);
  // Every word but the last is scored: the last has no following token to show where it
  // ends (EvaluateTexts appends no EOS).
  const std::vector<std::string> words = SplitWords(*sentence_);
  EXPECT_EQ(mt.words, static_cast<int64_t>(words.size()) - 1);
  // The same count from the tokenizer: word-starting pieces after BOS, minus the last word.
  int64_t starts = 0;
  for (int64_t id : tok.Encode(*sentence_)) starts += tok.StartsWord(id);
  EXPECT_EQ(mt.words, starts - 1);
  EXPECT_DOUBLE_EQ(mt.next_word_top3(), 1.0);
  // Every scored word is in the strip before its first letter: each saves all but one
  // keystroke, so saved = characters - words exactly.
  int64_t chars = 0;
  for (size_t i = 0; i + 1 < words.size(); ++i) chars += static_cast<int64_t>(words[i].size());
  EXPECT_EQ(mt.key_chars, chars);
  EXPECT_EQ(mt.key_saved, chars - mt.words);
  EXPECT_NEAR(mt.keystroke_savings(), double(chars - mt.words) / chars, 1e-12);
  EXPECT_TRUE(mt.ToJson().contains("keystroke_savings"));

  // A sentence the model never saw scores worse on every metric.
  TextMetrics other = EvaluateTexts(*model_, tok, {"cheers zoe see you at the beach"});
  EXPECT_GT(other.perplexity(), 2 * mt.perplexity());
  EXPECT_LT(other.next_word_top3(), 1.0);
  EXPECT_LT(other.keystroke_savings(), mt.keystroke_savings());
  EXPECT_GE(other.key_saved, 0);
  EXPECT_LE(other.key_saved, other.key_chars - other.words);
}

TEST_F(MemorizedTest, SuggestNextWordsPutsTrueWordFirst) {
  ASSERT_NE(model_, nullptr);
  const auto& tok = SharedTokenizer();
  const std::vector<std::string> words = SplitWords(*sentence_);
  ASSERT_GE(words.size(), 6u);
  for (size_t cut = 1; cut + 1 < words.size(); ++cut) {
    std::string prefix;
    for (size_t i = 0; i < cut; ++i) prefix += (i ? " " : "") + words[i];
    auto s = SuggestNextWords(*model_, tok, prefix + " ", 3);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_EQ(s->size(), 3u) << prefix;
    EXPECT_EQ((*s)[0].word, words[cut]) << "after '" << prefix << "'";
    EXPECT_GT((*s)[0].log_prob, (*s)[1].log_prob) << prefix;
    EXPECT_GT((*s)[0].log_prob, -0.5) << prefix;
    EXPECT_NE((*s)[1].word, (*s)[0].word);
    EXPECT_NE((*s)[2].word, (*s)[0].word);
  }
  EXPECT_FALSE(SuggestNextWords(*model_, tok, "hey", 0).ok());
}

// A keyboard's strip keeps the prefix's KV cache between calls: typing on reuses all but the
// new tokens, going back (a deleted word) reuses the shared part, and the words and their
// log-probabilities are those of a call without the state.
TEST_F(MemorizedTest, SuggestStateReusesThePrefixAndChangesNothing) {
  ASSERT_NE(model_, nullptr);
  const auto& tok = SharedTokenizer();
  const std::vector<std::string> words = SplitWords(*sentence_);
  SuggestState state;
  std::vector<std::string> prefixes;
  for (size_t cut = 1; cut + 1 < words.size(); ++cut) {
    std::string p;
    for (size_t i = 0; i < cut; ++i) p += (i ? " " : "") + words[i];
    prefixes.push_back(p);
  }
  prefixes.push_back(prefixes[1]);  // back to an earlier prefix
  prefixes.push_back("cheers zoe");  // something else altogether
  int64_t reused = 0;
  for (const std::string& p : prefixes) {
    auto plain = SuggestNextWords(*model_, tok, p, 3);
    auto kept = SuggestNextWords(*model_, tok, p, 3, 8, &state);
    ASSERT_TRUE(plain.ok() && kept.ok()) << p;
    ASSERT_EQ(plain->size(), kept->size()) << p;
    for (size_t i = 0; i < plain->size(); ++i) {
      EXPECT_EQ((*plain)[i].word, (*kept)[i].word) << p;
      EXPECT_NEAR((*plain)[i].log_prob, (*kept)[i].log_prob, 1e-4) << p;
    }
    EXPECT_EQ(state.cache.length(), static_cast<int64_t>(state.ids.size()));
    EXPECT_LT(state.reused_tokens, static_cast<int64_t>(state.ids.size()));
    reused += state.reused_tokens;
  }
  EXPECT_GT(reused, 0);
  // Typing on from the last long prefix reuses every token it had.
  SuggestState s2;
  ASSERT_TRUE(SuggestNextWords(*model_, tok, prefixes[2], 3, 8, &s2).ok());
  const size_t had = s2.ids.size();
  ASSERT_TRUE(SuggestNextWords(*model_, tok, prefixes[3], 3, 8, &s2).ok());
  EXPECT_EQ(s2.reused_tokens, static_cast<int64_t>(had));
}

TEST_F(MemorizedTest, GreedyGenerationRecitesTheSentence) {
  ASSERT_NE(model_, nullptr);
  const auto& tok = SharedTokenizer();
  const std::vector<std::string> words = SplitWords(*sentence_);
  GenerateOptions o;
  o.temperature = 0;
  o.max_new_tokens = 64;
  auto r = Generate(*model_, tok, words[0], o);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string rest;
  for (size_t i = 1; i < words.size(); ++i) rest += (i > 1 ? " " : "") + words[i];
  EXPECT_EQ(r->text, " " + rest);  // keeps the space, and stops at the memorised EOS
  EXPECT_EQ(r->prompt_ids, tok.EncodeWithBos(words[0]));
}

}  // namespace
}  // namespace fedlora::device
