// A sentencepiece tokenizer (tokenizer.model) with the model's BOS/EOS ids. No torch.
#ifndef FEDLORA_MODEL_TOKENIZER_H_
#define FEDLORA_MODEL_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedlora::model {
namespace internal {
class SpProcessor;
}

class Tokenizer {
 public:
  // Loads a sentencepiece model file. NOT_FOUND if missing, INVALID_ARGUMENT if unreadable.
  // `bos_id` / `eos_id` are taken as given; device::LoadRuntime checks them (and the piece
  // count) against the model's config.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path, int64_t bos_id,
                                                         int64_t eos_id);
  ~Tokenizer();

  // Token ids of `text`, without BOS.
  std::vector<int64_t> Encode(const std::string& text) const;
  // [BOS] + Encode(text).
  std::vector<int64_t> EncodeWithBos(const std::string& text) const;
  std::string Decode(const std::vector<int64_t>& ids) const;
  std::string IdToPiece(int64_t id) const;
  // True when the piece starts a new word (leading U+2581).
  bool StartsWord(int64_t id) const;
  // True for control/unknown/byte pieces that never appear as word text.
  bool IsSpecial(int64_t id) const;
  int64_t vocab_size() const;
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }

 private:
  Tokenizer() = default;
  std::unique_ptr<internal::SpProcessor> sp_;
  std::vector<uint8_t> starts_word_;
  std::vector<uint8_t> special_;
  int64_t bos_id_ = 1;
  int64_t eos_id_ = 2;
};

struct TokenizerTrainOptions {
  int vocab_size = 2048;
  std::string model_type = "bpe";  // or "unigram"
  bool byte_fallback = true;
  double character_coverage = 1.0;
  int64_t max_sentences = 2000000;
  // false: vocab_size is an upper bound (a small corpus may yield fewer pieces).
  bool hard_vocab_limit = false;
};

// Trains a Llama-style sentencepiece model (unk=0, bos=1, eos=2, no pad) on text files and
// writes `<output_prefix>.model`. INVALID_ARGUMENT with sentencepiece's message on failure.
absl::Status TrainTokenizer(const std::vector<std::string>& corpus_files,
                            const std::string& output_prefix, const TokenizerTrainOptions& options);

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_TOKENIZER_H_
