// The lexicon strip and the word n-gram on a hand-made vocabulary.
#include "fedlora/device/word_strip.h"

#include <cmath>
#include <map>

#include "fedlora/device/word_ngram.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

// 0 <s>, 1 </s>, 2 the, 3 cat, 4 car, 5 s (continuation), 6 dog, 7 do, 8 g (continuation),
// 9 a, 10 rex, 11 sat
KeyboardVocab Vocab() {
  KeyboardVocab kv;
  kv.text = {"", "", "the", "cat", "car", "s", "dog", "do", "g", "a", "rex", "sat"};
  kv.starts_word = {false, false, true, true, true, false, true, true, false, true, true, true};
  kv.special = {true, true, false, false, false, false, false, false, false, false, false, false};
  return kv;
}

// A flat next-token distribution over the vocabulary, with `boost` added to some ids.
std::vector<float> Row(const std::map<int64_t, float>& boost = {}) {
  std::vector<float> r(12, 0.f);
  for (const auto& [id, v] : boost) r[id] = v;
  double z = 0;
  for (float v : r) z += std::exp(v);
  for (float& v : r) v -= static_cast<float>(std::log(z));
  return r;
}

std::shared_ptr<const PublicLexicon> Public() {
  WordNgram pub;
  pub.AddIds({0, 9, 7, 8}, Vocab());   // a dog (as do + g: the word's first piece is "do")
  pub.AddIds({0, 2, 3, 11}, Vocab());  // the cat sat
  pub.AddIds({0, 2, 6, 11}, Vocab());  // the dog sat
  pub.AddIds({0, 2, 4, 5}, Vocab());   // the cars
  return std::make_shared<PublicLexicon>(pub, Vocab());
}

TEST(WordNgramTest, SpansFollowTheWordUnit) {
  const auto spans = WordSpans({0, 2, 4, 5, 7, 8, 1, 3}, Vocab());
  ASSERT_EQ(spans.size(), 4u);
  EXPECT_EQ(spans[1].text, "cars");
  EXPECT_EQ(spans[2].text, "dog");  // do + g
  EXPECT_EQ(spans[2].end, 6);       // the special piece ends it
  EXPECT_EQ(spans[3].text, "cat");
}

TEST(WordNgramTest, SerializeRoundTripsAndRejectsJunk) {
  WordNgram g;
  g.AddIds({0, 2, 3, 11}, Vocab());
  g.AddIds({0, 2, 3}, Vocab());
  auto back = WordNgram::Parse(g.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Serialize(), g.Serialize());
  EXPECT_EQ(back->unigrams().at("cat").count, 2);
  EXPECT_EQ(back->unigrams().at("cat").first_piece, 3);
  EXPECT_EQ(back->trigrams().at(WordNgram::Context("the", "cat")).at("sat"), 1);
  EXPECT_FALSE(WordNgram::Parse("not an ngram\n").ok());
  EXPECT_FALSE(WordNgram::Parse("fedlora-word-ngram 1\nu\tcat\tx\t3\n").ok());
}

TEST(WordNgramTest, PruneMeetsTheBudgetRarestFirst) {
  WordNgram g;
  for (int i = 0; i < 5; ++i) g.AddIds({0, 2, 3, 11}, Vocab());
  g.AddIds({0, 9, 6, 10}, Vocab());
  const size_t full = g.ApproxBytes();
  g.Prune(full - 1);
  EXPECT_LE(g.ApproxBytes(), full - 1);
  // The count-1 trigrams went first; the frequent ones stay.
  EXPECT_EQ(g.trigrams().count(WordNgram::Context("a", "dog")), 0u);
  EXPECT_EQ(g.trigrams().at(WordNgram::Context("the", "cat")).at("sat"), 5);
  g.Prune(200);
  EXPECT_LE(g.ApproxBytes(), 200u);
}

TEST(WordStripTest, ShowsWholeWordsTheLanguageModelStartsWithOnePiece) {
  // The model likes "do" as a first piece; the lexicon completes it to "dog" (a greedy strip
  // would need the model to spell "g" next).
  StripWeights w;
  w.public_ngram = 0;
  WordStrip strip(Public(), nullptr, w);
  std::vector<float> p;
  const std::vector<float> row = Row({{7, 6}});
  strip.Distribution("<s>", "a", row.data(), &p);
  const auto top = strip.Top(p, "", 3);
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(top[0].first, "dog");
  bool shown = false;
  const WordKeystrokes ks = strip.Keystrokes(p, "dog", &shown);
  EXPECT_TRUE(shown);
  EXPECT_EQ(ks.chars, 3);
  EXPECT_EQ(ks.saved, 2);
  // A word outside the lexicon is never shown.
  const WordKeystrokes rex = strip.Keystrokes(p, "rex", &shown);
  EXPECT_FALSE(shown);
  EXPECT_EQ(rex.saved, 0);
  EXPECT_EQ(rex.chars, 3);
}

TEST(WordStripTest, TheProbabilitiesSumToAtMostOne) {
  WordStrip strip(Public(), nullptr, StripWeights{});
  std::vector<float> p;
  const std::vector<float> row = Row();
  strip.Distribution("the", "cat", row.data(), &p);
  double sum = 0;
  for (float x : p) sum += x;
  EXPECT_GT(sum, 0.5);
  EXPECT_LE(sum, 1.0 + 1e-5);
}

TEST(WordStripTest, TheUsersOwnWordsAndNgramsEnterTheStrip) {
  // This user's dog is called Rex: "rex" is not a public word.
  WordNgram mine;
  for (int i = 0; i < 3; ++i) mine.AddIds({0, 2, 6, 10}, Vocab());  // the dog rex
  StripWeights w;
  WordStrip pub_only(Public(), nullptr, w);
  w.personal = 0.5;
  WordStrip personal(Public(), &mine, w);
  EXPECT_EQ(personal.size(), pub_only.size() + 1);
  const std::vector<float> row = Row();
  std::vector<float> p;
  bool shown = false;
  pub_only.Distribution("the", "dog", row.data(), &p);
  EXPECT_EQ(pub_only.Keystrokes(p, "rex", &shown).saved, 0);
  personal.Distribution("the", "dog", row.data(), &p);
  const WordKeystrokes ks = personal.Keystrokes(p, "rex", &shown);
  EXPECT_TRUE(shown);
  EXPECT_EQ(ks.saved, 2);
  EXPECT_EQ(personal.Top(p, "", 1)[0].first, "rex");
  // Weight 0 leaves the personal n-gram out of the mixture: the public trigram wins.
  w.personal = 0;
  personal.set_weights(w);
  personal.Distribution("the", "dog", row.data(), &p);
  EXPECT_NE(personal.Top(p, "", 1)[0].first, "rex");
}

TEST(WordStripTest, TypedCharactersNarrowTheStrip) {
  StripWeights w;
  w.public_ngram = 0;
  WordStrip strip(Public(), nullptr, w);
  // "cars" is the least likely word at first; after "c" only cat is above it.
  const std::vector<float> row = Row({{2, 5}, {7, 5}, {9, 5}, {11, 5}, {3, 2}, {4, -5}});
  std::vector<float> p;
  strip.Distribution("<s>", "the", row.data(), &p);
  bool shown = true;
  const WordKeystrokes ks = strip.Keystrokes(p, "cars", &shown);
  EXPECT_FALSE(shown);
  EXPECT_EQ(ks.chars, 4);
  EXPECT_EQ(ks.saved, 2);  // found after "c"
  const auto top = strip.Top(p, "ca", 3);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].first, "cat");
  EXPECT_EQ(top[1].first, "cars");
}

// Second pieces: 0 <s>, 1 </s>, 2 do, 3 g, 4 ve, 5 t (continuations), 6 a, 7 cat, 8 ca (start),
// 9 r (continuation). "do", "dog", "dot", "dove" share the first piece "do"; "car" and "cat"
// do not ("cat" is one piece), so only "do" is expandable.
KeyboardVocab Vocab2() {
  KeyboardVocab kv;
  kv.text = {"", "", "do", "g", "ve", "t", "a", "cat", "ca", "r"};
  kv.starts_word = {false, false, true, false, false, false, true, true, true, false};
  kv.special = {true, true, false, false, false, false, false, false, false, false};
  return kv;
}

std::vector<float> Row2(const std::map<int64_t, float>& boost = {}) {
  std::vector<float> r(10, 0.f);
  for (const auto& [id, v] : boost) r[id] = v;
  double z = 0;
  for (float v : r) z += std::exp(v);
  for (float& v : r) v -= static_cast<float>(std::log(z));
  return r;
}

std::shared_ptr<const PublicLexicon> Public2() {
  WordNgram pub;
  for (int i = 0; i < 5; ++i) pub.AddIds({0, 6, 2, 3}, Vocab2());  // a dog (x5)
  pub.AddIds({0, 6, 2, 4}, Vocab2());                               // a dove
  pub.AddIds({0, 6, 2, 5}, Vocab2());                               // a dot
  pub.AddIds({0, 6, 2}, Vocab2());                                  // a do
  pub.AddIds({0, 7, 8, 9}, Vocab2());                               // cat car
  return std::make_shared<PublicLexicon>(pub, Vocab2());
}

TEST(WordNgramTest, KeepsTheSecondPieceAndReadsOldFiles) {
  WordNgram g;
  g.AddIds({0, 6, 2, 4, 2}, Vocab2());  // a dove do
  EXPECT_EQ(g.unigrams().at("dove").second_piece, 4);
  EXPECT_EQ(g.unigrams().at("do").second_piece, WordNgram::kOnePiece);
  auto back = WordNgram::Parse(g.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->unigrams().at("dove").second_piece, 4);
  // A file from before second pieces (4 columns): unknown, and such a piece is not expanded.
  auto old = WordNgram::Parse("fedlora-word-ngram 1\nu\tdove\t1\t2\nu\tdog\t1\t2\n");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->unigrams().at("dove").second_piece, WordNgram::kUnknownPiece);
  EXPECT_FALSE(PublicLexicon(*old, Vocab2()).expandable[2]);
  EXPECT_FALSE(WordNgram::Parse("fedlora-word-ngram 1\nu\tdove\t1\t2\t-7\n").ok());
}

TEST(WordStripTest, TheModelsSecondPieceRanksWordsThatShareAFirstPiece) {
  StripWeights w;
  w.public_ngram = 0;
  w.second_pieces = 2;
  w.second_piece_weight = 1;  // the split by the second piece alone
  WordStrip strip(Public2(), nullptr, w);
  const std::vector<float> first = Row2({{2, 6}});  // the model starts a word with "do"
  // Only "do" has words with different second pieces; "ca" fits the typed "c", "do" does not.
  EXPECT_EQ(strip.PiecesToExpand(first.data(), ""), std::vector<int32_t>({2}));
  EXPECT_TRUE(strip.PiecesToExpand(first.data(), "c").empty());
  EXPECT_EQ(strip.PiecesToExpand(first.data(), "dov"), std::vector<int32_t>({2}));
  // After "do" the model is sure of "ve".
  const std::vector<float> after_do = Row2({{4, 8}});
  NextPieceRows rows;
  rows.first = {2};
  rows.logp = {after_do.data()};
  StripScores s;
  strip.Score("<s>", "a", first.data(), &s);
  // The first-piece formula ranks the group by its counts: dog; dove is not in the strip.
  EXPECT_EQ(strip.Top(s.p, "", 1)[0].first, "dog");
  bool shown = true;
  EXPECT_EQ(strip.Keystrokes(s.p, "dove", &shown).saved, 0);
  EXPECT_FALSE(shown);
  // With the second piece, dove leads, from the first keystroke on.
  std::vector<float> p;
  strip.Refine(s, {2}, rows, &p);
  EXPECT_EQ(strip.Top(p, "", 1)[0].first, "dove");
  const WordKeystrokes ks = strip.Keystrokes(s, first.data(), &rows, "dove", &shown);
  EXPECT_TRUE(shown);
  EXPECT_EQ(ks.saved, 3);
  // The group keeps the first piece's mass; only its split changes.
  double before = 0, after = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (strip.word(i).rfind("do", 0) == 0) {
      before += s.p[i];
      after += p[i];
    }
  }
  EXPECT_NEAR(before, after, 1e-5);
  // A one-piece word takes the mass of the pieces that end it (a word start or a special).
  const std::vector<float> ends = Row2({{6, 8}});
  rows.logp = {ends.data()};
  strip.Refine(s, {2}, rows, &p);
  EXPECT_EQ(strip.Top(p, "d", 1)[0].first, "do");
  // a = 0.5: halfway between the counts' split and the second piece's.
  rows.logp = {after_do.data()};
  strip.Refine(s, {2}, rows, &p);
  const int32_t dove = [&] {
    for (size_t i = 0; i < strip.size(); ++i) {
      if (strip.word(i) == "dove") return static_cast<int32_t>(i);
    }
    return -1;
  }();
  ASSERT_GE(dove, 0);
  const float by_second = p[dove];
  w.second_piece_weight = 0.5;
  strip.set_weights(w);
  std::vector<float> half;
  strip.Refine(s, {2}, rows, &half);
  EXPECT_NEAR(half[dove], 0.5 * (s.p[dove] + by_second), 1e-6);
  // K = 0 is the first-piece formula.
  w.second_pieces = 0;
  strip.set_weights(w);
  EXPECT_TRUE(strip.PiecesToExpand(first.data(), "").empty());
  EXPECT_EQ(strip.Keystrokes(s, first.data(), &rows, "dove", &shown).saved, 0);
}

}  // namespace
}  // namespace fedlora::device
