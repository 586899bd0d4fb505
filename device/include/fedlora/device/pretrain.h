// Central pretraining of a small base model from scratch on public text: trains a
// sentencepiece tokenizer, then all parameters, and saves a Hugging Face model directory.
#ifndef FEDLORA_DEVICE_PRETRAIN_H_
#define FEDLORA_DEVICE_PRETRAIN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/device/trainer.h"
#include "fedlora/model/config.h"

namespace fedlora::device {

struct PretrainOptions {
  int vocab_size = 2048;
  int64_t hidden_size = 256;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 0;       // 0: same as heads
  int64_t intermediate_size = 0;  // 0: round(8/3 * hidden) to a multiple of 8
  int64_t context = 128;
  bool tie_embeddings = true;
  double init_std = 0.02;
  TrainOptions train;  // steps, batch, lr, schedule...
};

struct PretrainResult {
  model::LlamaConfig config;
  TrainStats stats;
  int64_t corpus_tokens = 0;
};

// Reads the corpus files (one document or message per line), trains the tokenizer and the
// model, writes `out_dir/{config.json, model.safetensors, tokenizer.model,
// tokenizer_config.json}`. Errors name the file at fault.
absl::StatusOr<PretrainResult> Pretrain(const std::vector<std::string>& corpus_files,
                                        const std::string& out_dir, const PretrainOptions& options);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_PRETRAIN_H_
