// Compressed checkpoint directories: model.safetensors with packed projections (plus float32
// embeddings, norms and lm_head), config.json, tokenizer.model and compression.json.
#ifndef FEDLORA_COMPRESS_CHECKPOINT_H_
#define FEDLORA_COMPRESS_CHECKPOINT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/model/llama.h"
#include "nlohmann/json.hpp"

namespace fedlora::compress {

constexpr const char* kCompressionJson = "compression.json";
constexpr const char* kCompressedFormat = "fedlora-compressed";

// True when `dir` holds a compression.json (a compressed checkpoint).
bool IsCompressedDir(const std::string& dir);

// Writes `model` (its projections packed, i.e. every Linear has a compress::PackedWeight as
// `frozen`) into `out_dir`: model.safetensors, config.json, tokenizer.model copied from
// `source_dir`, and compression.json = `info` plus "format", "version", "source_sha256"
// (io::ModelSha256 of source_dir), "weights_sha256" (of model.safetensors) and "tensors" (the
// scheme of every packed tensor). INVALID_ARGUMENT if a projection is not packed; I/O errors
// name the file.
absl::Status SaveCompressedModel(const model::LlamaModel& model, const std::string& source_dir,
                                 const std::string& out_dir, nlohmann::json info);

// Loads a directory written by SaveCompressedModel; projections stay packed. Refuses
// (INVALID_ARGUMENT, naming the file and tensor, with a hint) a compression.json that is not
// JSON or not of this format/version, a model.safetensors whose SHA-256 differs from
// weights_sha256, missing / mistyped / mis-shaped / unexpected tensors, shapes that do not
// match config.json, and non-finite weights (checked after expansion). NOT_FOUND for missing
// files.
absl::StatusOr<std::unique_ptr<model::LlamaModel>> LoadCompressedModel(const std::string& dir);

// compression.json of `dir`, parsed. NOT_FOUND / INVALID_ARGUMENT naming the file.
absl::StatusOr<nlohmann::json> ReadCompressionJson(const std::string& dir);

// Bytes held in memory by the model's weights: packed projections' bytes() plus every float
// tensor's (embeddings, norms, lm_head, unpacked projections).
int64_t ResidentWeightBytes(const model::LlamaModel& model);

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_CHECKPOINT_H_
