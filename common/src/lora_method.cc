#include "fedlora/common/lora_method.h"

#include "absl/strings/str_cat.h"

namespace fedlora {

absl::StatusOr<LoraMethod> ParseLoraMethod(std::string_view name) {
  if (name == "lora") return LoraMethod::kLora;
  if (name == "ffa") return LoraMethod::kFfa;
  if (name == "fedsa") return LoraMethod::kFedSa;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown LoRA method '", std::string(name), "' (expected lora, ffa or fedsa)"));
}

const char* LoraMethodName(LoraMethod method) {
  switch (method) {
    case LoraMethod::kFfa:
      return "ffa";
    case LoraMethod::kFedSa:
      return "fedsa";
    case LoraMethod::kLora:
      break;
  }
  return "lora";
}

namespace {

// Positions of A (want_b false) or B (true) in the flat layout.
absl::StatusOr<std::vector<size_t>> Positions(const AdapterBlob& blob, bool want_b,
                                              const char* method) {
  if (blob.slots.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "LoRA method ", method,
        " needs the adapter's slot layout, and this adapter blob has "
        "none (hint: it was written by an older fedlora; run `fedlora coordinator init` again "
        "with this version)"));
  }
  std::vector<size_t> out;
  size_t offset = 0;
  for (const auto& [a, b] : blob.slots) {
    const size_t begin = want_b ? offset + a : offset;
    const size_t n = want_b ? b : a;
    for (size_t j = 0; j < n; ++j) out.push_back(begin + j);
    offset += a + b;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<size_t>> SharedPositions(const AdapterBlob& blob, LoraMethod method) {
  switch (method) {
    case LoraMethod::kFfa:
      return Positions(blob, /*want_b=*/true, "ffa");
    case LoraMethod::kFedSa:
      return Positions(blob, /*want_b=*/false, "fedsa");
    case LoraMethod::kLora:
      break;
  }
  std::vector<size_t> all(blob.values.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return all;
}

absl::StatusOr<std::vector<size_t>> BPositions(const AdapterBlob& blob) {
  return Positions(blob, /*want_b=*/true, "fedsa");
}

std::vector<float> Gather(const std::vector<float>& full, const std::vector<size_t>& positions) {
  std::vector<float> out(positions.size());
  for (size_t i = 0; i < positions.size(); ++i) out[i] = full[positions[i]];
  return out;
}

absl::Status Scatter(const std::vector<float>& part, const std::vector<size_t>& positions,
                     std::vector<float>* full) {
  if (part.size() != positions.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("scatter: ", part.size(), " values for ", positions.size(), " positions"));
  }
  for (size_t p : positions) {
    if (p >= full->size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("scatter: position ", p, " outside an adapter of ", full->size()));
    }
  }
  for (size_t i = 0; i < part.size(); ++i) (*full)[positions[i]] = part[i];
  return absl::OkStatus();
}

}  // namespace fedlora
