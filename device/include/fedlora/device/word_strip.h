// The lexicon suggestion strip (docs/device.md, "Keyboard strip"): a keyboard ranks whole
// words of a lexicon, not greedy completions of one token. The lexicon is the public
// n-gram's words (shipped with the base model) plus the user's own words (personal n-gram,
// on the device only). Each word gets
//
//   P(w) = l P_me(w | h) + (1 - l) [ m P_pub(w | h) + (1 - m) P_lm(first(w) | ctx) C(w | first(w), h) ]
//
// h = the two previous words, P_pub / P_me = Witten-Bell interpolated 3-gram of the public /
// personal counts, P_lm = the language model's probability of the word's first piece
// (renormalized over word-starting pieces), C = how the n-grams complete that first piece
// (the public counts, mixed with the personal ones when there are any). l = 0 without a
// personal n-gram, so the federated model's strip is the bracket alone. After c typed
// characters the strip shows the 3 most probable lexicon words that start with them.
//
// Second pieces: for the K first pieces the model finds most probable among those that fit
// the typed characters and whose public words differ in their second piece, the model runs
// one more step, and that first piece's mass P_lm(f) is split over its words by
//   a P_lm(second(w) | ctx, f) / Q_f * C(w | f, second(w), h) + (1 - a) C(w | f, h)
// (second(w) = the end of the word for a word of one piece: the mass of word-starting and
// special pieces; Q_f = the mass of the second pieces the group's words have) instead of by
// C(w | f, h) alone. K = StripWeights::second_pieces (0 is the first-piece formula),
// a = second_piece_weight.
#ifndef FEDLORA_DEVICE_WORD_STRIP_H_
#define FEDLORA_DEVICE_WORD_STRIP_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fedlora/device/keystrokes.h"
#include "fedlora/device/word_ngram.h"

namespace fedlora::device {

// Counts compiled against a lexicon: per context, Witten-Bell's weights and the followers.
struct CompiledNgram {
  struct Ctx {
    float keep = 1;  // weight left to the lower order: T / (c + T)
    float inv = 0;   // 1 / (c + T)
    std::vector<std::pair<int32_t, float>> items;  // lexicon index, count
  };
  std::vector<std::pair<int32_t, float>> uni;
  double total = 0, distinct = 0;
  std::unordered_map<std::string, Ctx> bi, tri;
};

// The public half, built once per base model and shared by every user's strip.
struct PublicLexicon {
  PublicLexicon(const WordNgram& pub, const KeyboardVocab& kv);
  KeyboardVocab kv;
  std::vector<std::string> words;
  std::vector<int32_t> first_piece;
  std::vector<int32_t> second_piece;  // WordNgram::kOnePiece / kUnknownPiece as there
  // Per vocabulary piece: its public words have at least two different second pieces (all
  // known), so the model's next step can rank them. Which pieces a strip expands depends on
  // this, the model and the typed characters only (not on a user's words).
  std::vector<uint8_t> expandable;
  std::unordered_map<std::string, int32_t> index;
  CompiledNgram ngram;
};

struct StripWeights {
  double personal = 0;  // l: the personal n-gram
  double public_ngram = 0.3;  // m: the public n-gram beside the language model
  double completion_personal = 0.5;  // share of the personal counts in C (with a personal n-gram)
  int second_pieces = 0;  // K: first pieces whose words the model's second piece ranks (0: off)
  // a: an expanded first piece's mass is split a * (by the second piece) + (1 - a) * (by C).
  double second_piece_weight = 0.5;
};

// The model's next-piece log-probabilities after the context and each of a few candidate
// first pieces (rows of the vocabulary's size at least; not owned).
struct NextPieceRows {
  std::vector<int32_t> first;
  std::vector<const float*> logp;
  const float* Find(int32_t piece) const;  // null when `piece` was not run
};

// P(w) under the first-piece formula and what the second pieces refine.
struct StripScores {
  std::vector<float> p;        // P(w) over the strip's words
  std::vector<float> comp;     // C's unnormalized weights per word
  std::vector<double> p1;      // per piece: P_lm(piece), renormalized over word-starting pieces
  std::vector<double> z;       // per piece: the sum of comp over its words
  double lm_weight = 0;        // (1 - l)(1 - m): the language model's share of P(w)
};

class WordStrip {
 public:
  // `personal` may be null (the public strip); it is compiled here and not kept.
  WordStrip(std::shared_ptr<const PublicLexicon> pub, const WordNgram* personal,
            StripWeights weights);
  void set_weights(const StripWeights& w) { weights_ = w; }
  const StripWeights& weights() const { return weights_; }
  size_t size() const { return words_.size(); }
  const std::string& word(size_t i) const { return words_[i]; }
  bool has_personal() const { return has_personal_; }
  const KeyboardVocab& vocab() const { return pub_->kv; }

  // P(w) over the lexicon after history (h2, h1) under the first-piece formula; `logp` = the
  // model's next-token log-probabilities (vocab entries, the KeyboardVocab's size at least).
  void Score(const std::string& h2, const std::string& h1, const float* logp,
             StripScores* s) const;
  void Distribution(const std::string& h2, const std::string& h1, const float* logp,
                    std::vector<float>* p) const;  // Score's p alone
  // The first pieces (at most K, most probable first) whose words the model's next step
  // ranks once `typed` has been typed: expandable pieces whose text starts with `typed` or
  // is a prefix of it.
  std::vector<int32_t> PiecesToExpand(const float* logp, const std::string& typed) const;
  // s.p with the words of `pieces` refined by `rows` (a piece without a row stays as it was).
  void Refine(const StripScores& s, const std::vector<int32_t>& pieces, const NextPieceRows& rows,
              std::vector<float>* p) const;
  // Keystrokes of `word` under keystrokes.h's rule with this strip; *in_strip: shown before
  // any character is typed (next-word top-3). A word outside the lexicon is never shown.
  // With `logp` and `rows`, after each typed prefix the strip is Refine(s, PiecesToExpand(
  // logp, prefix), rows), as SuggestLexiconWords shows it; without, s.p throughout.
  WordKeystrokes Keystrokes(const StripScores& s, const float* logp, const NextPieceRows* rows,
                            const std::string& word, bool* in_strip) const;
  WordKeystrokes Keystrokes(const std::vector<float>& p, const std::string& word,
                            bool* in_strip) const;  // a fixed P(w) for every prefix
  // The k most probable words starting with `typed`, best first, with their probabilities.
  std::vector<std::pair<std::string, double>> Top(const std::vector<float>& p,
                                                  const std::string& typed, int k) const;

 private:
  void Ngram(const CompiledNgram& g, const std::vector<float>& uni, const std::string& h2,
             const std::string& h1, std::vector<float>* out) const;
  // (word, refined P) for the words of first piece f given the row after f; empty when the
  // group cannot be refined (one second piece, or one unknown).
  void RefineGroup(const StripScores& s, int32_t f, const float* q,
                   std::vector<std::pair<int32_t, float>>* out) const;
  int32_t IndexOf(const std::string& word) const;  // -1: not in the strip
  std::shared_ptr<const PublicLexicon> pub_;
  StripWeights weights_;
  bool has_personal_ = false;
  std::vector<std::string> words_;  // public words, then the user's own
  std::vector<int32_t> first_piece_, second_piece_;
  std::vector<int32_t> group_start_, group_words_;  // the words of each first piece (CSR)
  std::unordered_map<std::string, int32_t> extra_index_;
  CompiledNgram personal_;
  std::vector<float> pub_uni_, me_uni_;  // dense unigram probabilities
  std::vector<uint8_t> starts_word_;
  std::vector<uint8_t> ends_word_;  // a piece after which the word is over (starts one, special)
};

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_WORD_STRIP_H_
