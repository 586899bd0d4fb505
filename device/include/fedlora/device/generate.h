// Text generation and next-word suggestions with the KV cache.
#ifndef FEDLORA_DEVICE_GENERATE_H_
#define FEDLORA_DEVICE_GENERATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/tokenizer.h"
#include "fedlora/device/word_strip.h"

namespace fedlora::device {

struct GenerateOptions {
  int max_new_tokens = 32;
  int top_k = 40;            // 0 or 1 with temperature 0: greedy
  double temperature = 0.8;  // 0: greedy
  uint64_t seed = 0;
  bool stop_at_eos = true;
};

struct GenerateResult {
  std::vector<int64_t> prompt_ids;
  std::vector<int64_t> new_ids;
  std::string text;  // decoded continuation
  // Why it stopped before max_new_tokens: "" (it did not), "eos", or "context" (prompt plus
  // new tokens reached max_position_embeddings).
  std::string stopped_early;
};

// Continues `prompt` ([BOS] + ids). INVALID_ARGUMENT for negative counts or temperature; the
// prompt plus new tokens are capped at max_position_embeddings.
absl::StatusOr<GenerateResult> Generate(const model::LlamaModel& model,
                                        const model::Tokenizer& tokenizer,
                                        const std::string& prompt, const GenerateOptions& options);

struct Suggestion {
  std::string word;
  double log_prob = 0;  // log-probability of the whole word (its tokens)
};

// What a keyboard's last SuggestNextWords call computed: the prefix's tokens and the model's
// KV cache after them. The next call runs only the tokens past the longest prefix the two
// share (a keystroke costs a few tokens, not the whole text again). Clear() it whenever the
// model or its attached adapters change.
struct SuggestState {
  std::vector<int64_t> ids;
  model::KvCache cache;
  int64_t reused_tokens = 0;  // of the last call (tests, benches)
  void Clear() {
    ids.clear();
    cache.Clear();
  }
};

// The k most likely next words after `prefix` (a keyboard's suggestion strip): the k most
// likely word-starting tokens, each completed greedily (with a shared KV cache of the prefix)
// until the model would start another word. With `state`, the prefix's KV cache is kept
// between calls (see SuggestState); the words are the same as without, the log-probabilities
// equal up to float rounding.
absl::StatusOr<std::vector<Suggestion>> SuggestNextWords(const model::LlamaModel& model,
                                                         const model::Tokenizer& tokenizer,
                                                         const std::string& prefix, int k,
                                                         int max_word_tokens = 8,
                                                         SuggestState* state = nullptr);

// The lexicon strip (word_strip.h) after `text`: the characters after its last space are the
// word being typed (none when it ends in a space), the text before them the context the model
// reads (KV cache kept in `state` as above). The k most probable lexicon words that start with
// the typed characters; log_prob = log of the strip's word probability.
absl::StatusOr<std::vector<Suggestion>> SuggestLexiconWords(const model::LlamaModel& model,
                                                            const model::Tokenizer& tokenizer,
                                                            const WordStrip& strip,
                                                            const std::string& text, int k,
                                                            SuggestState* state = nullptr);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_GENERATE_H_
