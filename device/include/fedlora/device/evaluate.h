// Scoring text with a model: perplexity and the keyboard metrics.
#ifndef FEDLORA_DEVICE_EVALUATE_H_
#define FEDLORA_DEVICE_EVALUATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fedlora/model/llama.h"
#include "fedlora/model/tokenizer.h"
#include "nlohmann/json.hpp"

namespace fedlora::device {

class WordStrip;
class WordNgram;
struct PublicLexicon;
struct StripWeights;

// Sums over scored positions; combine with Add, read with the accessors.
struct TextMetrics {
  int64_t tokens = 0;     // next-token predictions scored
  double nll_sum = 0;     // nats
  int64_t top1 = 0;       // target was the argmax
  int64_t top3 = 0;       // target among the 3 most likely tokens
  int64_t words = 0;      // word starts scored
  int64_t word_top3 = 0;  // the whole next word among the 3 suggestions
  int64_t key_chars = 0;  // characters of the scored words (keystrokes without a strip)
  int64_t key_saved = 0;  // keystrokes the strip saved on them (keystrokes.h)

  void Add(const TextMetrics& o);
  double mean_nll() const { return tokens ? nll_sum / tokens : 0; }
  double perplexity() const;
  double next_token_top1() const { return tokens ? double(top1) / tokens : 0; }
  double next_token_top3() const { return tokens ? double(top3) / tokens : 0; }
  double next_word_top3() const { return words ? double(word_top3) / words : 0; }
  double keystroke_savings() const { return key_chars ? double(key_saved) / key_chars : 0; }
  nlohmann::json ToJson() const;
};

struct EvalOptions {
  int64_t window = 0;      // context per window (0 = the model's max_position_embeddings)
  int64_t batch_size = 8;  // windows per forward pass
  // The lexicon strip (word_strip.h) for next-word top-3 and keystroke savings; null = the
  // greedy strip of SuggestNextWords. Not owned. With its weights' second_pieces > 0 the
  // model also runs the step after each first piece the strip expands (word_strip.h).
  const WordStrip* strip = nullptr;
};

// The lexicon strip's second pieces in one window: for each position i (a word starts at
// i + 1), the first pieces the strip expands for any prefix of that word, and the model's
// next-piece log-probabilities after ids[0..i] and each of them.
struct WindowNextPieces {
  std::vector<int64_t> offset;  // rows of position i: [offset[i], offset[i + 1])
  std::vector<int32_t> piece;
  torch::Tensor logp;  // [rows, V] float32 (undefined when there are none)
};

// Scores each text as [BOS] + ids, in windows of `window` tokens overlapping by one so each
// token is predicted exactly once. The next-word metric follows the suggestion strip of
// SuggestNextWords: the 3 most likely word-starting tokens, each completed greedily to the end
// of its word; a word counts as a hit when it equals one of the three. Keystroke savings count
// the same words as keystrokes.h defines.
TextMetrics EvaluateTexts(const model::LlamaModel& model, const model::Tokenizer& tokenizer,
                          const std::vector<std::string>& texts, const EvalOptions& options = {});

// As above for already tokenized sequences (each starting with BOS).
TextMetrics EvaluateIds(const model::LlamaModel& model, const model::Tokenizer& tokenizer,
                        const std::vector<std::vector<int64_t>>& sequences,
                        const EvalOptions& options = {});

// Mixing two models' predictions (interpolation personalization): the log-probabilities of
// every scored window of `sequences`, computed once per model.
struct WindowLogProbs {
  std::vector<std::vector<int64_t>> windows;
  std::vector<torch::Tensor> logp;     // per window [T, V], float32
  std::vector<WindowNextPieces> next;  // per window, with options.strip expanding; else empty
  // Per input sequence: the index of its first window (size = sequences + 1, the last entry
  // = windows.size()), so one sequence's windows can be scored alone (Lines).
  std::vector<size_t> sequence_start;
  // The windows of sequences [begin, end) (tensors shared, not copied).
  WindowLogProbs Lines(size_t begin, size_t end) const;
};
WindowLogProbs ForwardWindows(const model::LlamaModel& model, const model::Tokenizer& tokenizer,
                              const std::vector<std::vector<int64_t>>& sequences,
                              const EvalOptions& options = {});

// The metrics of the mixture p = w * p_a + (1 - w) * p_b (0 <= w <= 1) on the windows both
// were computed on (the same sequences and options). INVALID_ARGUMENT-free by contract: a and
// b must come from ForwardWindows on the same input (checked, aborts otherwise). A mixture
// has no second pieces: its strip ranks by first pieces (second_pieces = 0).
TextMetrics ScoreMixture(const WindowLogProbs& a, const WindowLogProbs& b, double w,
                         const model::Tokenizer& tokenizer, const WordStrip* strip = nullptr);

// The metrics of one model's windows under the lexicon strip `strip` (its weights as set;
// its second pieces from a.next, computed for the strip ForwardWindows was given: the
// expanded pieces depend only on the public lexicon, the model and the typed characters).
TextMetrics ScoreStrip(const WindowLogProbs& a, const model::Tokenizer& tokenizer,
                       const WordStrip& strip);

// The lexicon strip when the personal counts learn each line once it has been typed, as a
// phone does (fedlora_observe after every line; docs/device.md, "Keyboard strip"): line i of
// `a` (ForwardWindows over one sequence per line of `lines`, in order) is scored with a
// strip of `lexicon` and `counts` plus lines 0..i-1, pruned to `max_bytes` after each line.
// out[j] = the metrics under weights[j] (weights non-empty; the counts are compiled once per
// line for all of them).
std::vector<TextMetrics> ScoreStripLearning(const WindowLogProbs& a,
                                            const model::Tokenizer& tokenizer,
                                            std::shared_ptr<const PublicLexicon> lexicon,
                                            WordNgram counts, const std::vector<std::string>& lines,
                                            const std::vector<StripWeights>& weights,
                                            size_t max_bytes);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_EVALUATE_H_
