// The vocabulary of a sentencepiece model file (tokenizer.model), read straight from its
// protobuf bytes (sentencepiece_model.proto's ModelProto) without the sentencepiece library:
// what llama.cpp needs to rebuild the tokenizer (pieces, scores, piece types, special ids and
// the dummy-prefix flag). No torch.
#ifndef FEDLORA_ADAPTERS_SP_VOCAB_H_
#define FEDLORA_ADAPTERS_SP_VOCAB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fedlora::adapters {

// sentencepiece's SentencePiece.Type, which GGUF's tokenizer.ggml.token_type reuses.
enum class SpPieceType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct SentencePieceVocab {
  std::vector<std::string> pieces;   // id -> piece ("<unk>", "<s>", "▁the", "<0x0A>", ...)
  std::vector<float> scores;         // id -> score
  std::vector<SpPieceType> types;    // id -> type
  int32_t model_type = 1;            // TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char
  int32_t unk_id = 0;                // TrainerSpec ids (-1: none)
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t pad_id = -1;
  bool add_dummy_prefix = true;      // NormalizerSpec.add_dummy_prefix ("▁" before the text)
};

// Parses ModelProto bytes; `source` names them in errors. INVALID_ARGUMENT naming `source` for
// malformed protobuf (truncated, bad wire type), a piece without text, a piece type outside
// 1..6, or no pieces at all.
absl::StatusOr<SentencePieceVocab> ParseSentencePieceVocab(const std::string& bytes,
                                                           const std::string& source);
// Reads `path` (NOT_FOUND when missing) and parses it.
absl::StatusOr<SentencePieceVocab> ReadSentencePieceVocab(const std::string& path);

}  // namespace fedlora::adapters

#endif  // FEDLORA_ADAPTERS_SP_VOCAB_H_
