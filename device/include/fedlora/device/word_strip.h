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
  std::unordered_map<std::string, int32_t> index;
  CompiledNgram ngram;
};

struct StripWeights {
  double personal = 0;  // l: the personal n-gram
  double public_ngram = 0.3;  // m: the public n-gram beside the language model
  double completion_personal = 0.5;  // share of the personal counts in C (with a personal n-gram)
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

  // P(w) over the lexicon after history (h2, h1); `logp` = the model's next-token
  // log-probabilities (vocab entries, the KeyboardVocab's size at least).
  void Distribution(const std::string& h2, const std::string& h1, const float* logp,
                    std::vector<float>* p) const;
  // Keystrokes of `word` under keystrokes.h's rule with this strip; *in_strip: shown before
  // any character is typed (next-word top-3). A word outside the lexicon is never shown.
  WordKeystrokes Keystrokes(const std::vector<float>& p, const std::string& word,
                            bool* in_strip) const;
  // The k most probable words starting with `typed`, best first, with their probabilities.
  std::vector<std::pair<std::string, double>> Top(const std::vector<float>& p,
                                                  const std::string& typed, int k) const;

 private:
  void Ngram(const CompiledNgram& g, const std::vector<float>& uni, const std::string& h2,
             const std::string& h1, std::vector<float>* out) const;
  std::shared_ptr<const PublicLexicon> pub_;
  StripWeights weights_;
  bool has_personal_ = false;
  std::vector<std::string> words_;  // public words, then the user's own
  std::vector<int32_t> first_piece_;
  std::unordered_map<std::string, int32_t> extra_index_;
  CompiledNgram personal_;
  std::vector<float> pub_uni_, me_uni_;  // dense unigram probabilities
  std::vector<uint8_t> starts_word_;
};

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_WORD_STRIP_H_
