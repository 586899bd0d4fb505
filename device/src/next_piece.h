// The model's next step after a few candidate first pieces of a word (the lexicon strip's
// second pieces, word_strip.h), from a KV cache of the text before them. One implementation
// for the evaluation (every word position of a window at once) and the live strip.
#ifndef FEDLORA_DEVICE_NEXT_PIECE_H_
#define FEDLORA_DEVICE_NEXT_PIECE_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "fedlora/model/llama.h"

namespace fedlora::device {

// Row r: the log-probabilities [V] of the token after ids[0..positions[r]] + pieces[r], where
// `cache` holds the keys and values of ids (batch 1, at least positions[r] + 1 tokens; a
// longer cache is masked past positions[r]). Returns [R, V] float32 (R = 0: undefined).
torch::Tensor NextPieceLogProbs(const model::LlamaModel& model, const model::KvCache& cache,
                                const std::vector<int64_t>& positions,
                                const std::vector<int64_t>& pieces);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_NEXT_PIECE_H_
