#include "fedlora/common/adapter_blob.h"

#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fedlora {
namespace {

constexpr char kMagic[8] = {'F', 'L', 'A', 'D', 'P', 'T', '0', '1'};
constexpr uint32_t kMaxHeader = 1u << 20;

}  // namespace

std::string EncodeAdapterBlob(const AdapterBlob& blob) {
  nlohmann::json header = {{"lora", blob.lora},
                           {"dim", blob.values.size()},
                           {"base_model_sha256", blob.base_model_sha256}};
  if (!blob.slots.empty()) {
    nlohmann::json slots = nlohmann::json::array();
    for (const auto& [a, b] : blob.slots) slots.push_back({a, b});
    header["slots"] = std::move(slots);
  }
  const std::string h = header.dump();
  std::string out(kMagic, sizeof(kMagic));
  const uint32_t len = static_cast<uint32_t>(h.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out += h;
  const size_t at = out.size();
  out.resize(at + 4 * blob.values.size());
  // x86/ARM are little-endian; the format says float32 LE.
  std::memcpy(&out[at], blob.values.data(), 4 * blob.values.size());
  return out;
}

absl::StatusOr<AdapterBlob> DecodeAdapterBlob(std::string_view bytes) {
  if (bytes.size() < 12 || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError(
        "adapter blob: bad magic (expected FLADPT01; hint: not a fedlora adapter blob, or "
        "truncated)");
  }
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
  if (len > kMaxHeader) {
    return absl::InvalidArgumentError(absl::StrCat("adapter blob: header of ", len,
                                                   " bytes exceeds the 1 MiB limit"));
  }
  if (bytes.size() < 12 + static_cast<size_t>(len)) {
    return absl::DataLossError("adapter blob: truncated inside the header");
  }
  AdapterBlob blob;
  nlohmann::json header = nlohmann::json::parse(bytes.substr(12, len), nullptr, false);
  if (header.is_discarded() || !header.is_object() || !header.contains("lora") ||
      !header.contains("dim") || !header["dim"].is_number_unsigned()) {
    return absl::InvalidArgumentError(
        "adapter blob: header is not a JSON object with \"lora\" and \"dim\"");
  }
  blob.lora = header["lora"];
  if (header.contains("base_model_sha256") && header["base_model_sha256"].is_string()) {
    blob.base_model_sha256 = header["base_model_sha256"].get<std::string>();
  }
  const uint64_t dim = header["dim"].get<uint64_t>();
  const size_t body = bytes.size() - 12 - len;
  if (body != 4 * dim) {
    return absl::DataLossError(absl::StrCat("adapter blob: header says ", dim, " values (",
                                            4 * dim, " bytes) but ", body,
                                            " bytes follow (hint: truncated download)"));
  }
  if (header.contains("slots")) {
    const nlohmann::json& slots = header["slots"];
    uint64_t total = 0;
    bool ok = slots.is_array();
    for (size_t i = 0; ok && i < slots.size(); ++i) {
      const nlohmann::json& sl = slots[i];
      ok = sl.is_array() && sl.size() == 2 && sl[0].is_number_unsigned() &&
           sl[1].is_number_unsigned();
      if (ok) {
        blob.slots.emplace_back(sl[0].get<uint64_t>(), sl[1].get<uint64_t>());
        total += blob.slots.back().first + blob.slots.back().second;
      }
    }
    if (!ok || total != dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adapter blob: \"slots\" is not a list of [A values, B values] pairs adding up to dim ",
          dim));
    }
  }
  blob.values.resize(dim);
  std::memcpy(blob.values.data(), bytes.data() + 12 + len, body);
  for (uint64_t i = 0; i < dim; ++i) {
    if (!std::isfinite(blob.values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("adapter blob: value ", i, " is not finite (", blob.values[i], ")"));
    }
  }
  return blob;
}

}  // namespace fedlora
