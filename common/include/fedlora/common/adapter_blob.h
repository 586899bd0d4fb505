// The global adapter as the coordinator stores and serves it: one self-describing blob that a
// torch-free coordinator can read and a device turns back into a LoRA adapter.
//
// Layout (little-endian), documented so that another implementation can read it:
//   8 bytes  magic "FLADPT01"
//   4 bytes  u32 header length H (<= 1 MiB)
//   H bytes  header, UTF-8 JSON: {"lora": <PEFT adapter_config.json object>,
//            "dim": <number of values>, "base_model_sha256": "<hex>",
//            "slots": [[<A values>, <B values>], ...]}   (optional: the flat layout's slots,
//            in order; needed by the ffa and fedsa LoRA methods, common/lora_method.h)
//   4*dim    float32 values in adapters::LoraAdapter's flat layout
#ifndef FEDLORA_COMMON_ADAPTER_BLOB_H_
#define FEDLORA_COMMON_ADAPTER_BLOB_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace fedlora {

struct AdapterBlob {
  nlohmann::json lora;            // PEFT adapter_config.json object
  std::string base_model_sha256;  // hex; the base the adapter was made for
  std::vector<float> values;      // flat adapter
  // (A values, B values) of each slot of the flat layout, in order; empty = not recorded.
  std::vector<std::pair<uint64_t, uint64_t>> slots;
};

std::string EncodeAdapterBlob(const AdapterBlob& blob);

// INVALID_ARGUMENT (or DATA_LOSS for a truncated blob) saying what is wrong: bad magic, header
// too long or not JSON, a dim that disagrees with the byte count, non-finite values, slots that
// do not add up to dim.
absl::StatusOr<AdapterBlob> DecodeAdapterBlob(std::string_view bytes);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_ADAPTER_BLOB_H_
