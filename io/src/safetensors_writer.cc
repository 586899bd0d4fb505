// WriteSafetensors: validate caller views, lay them out by name and write the file atomically.
#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fedlora/common/file_util.h"
#include "fedlora/io/safetensors.h"
#include "nlohmann/json.hpp"

namespace fedlora::io {
namespace {

// Returns numel x dtype size of `t`, or INVALID_ARGUMENT for negative dims or overflow.
absl::StatusOr<uint64_t> ExpectedBytes(const std::string& path, const TensorView& t) {
  uint64_t bytes = DTypeSize(t.dtype);
  if (bytes == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", t.name,
                                                   "' has an invalid dtype enum value ",
                                                   static_cast<int>(t.dtype)));
  }
  for (int64_t d : t.shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", t.name, "' has negative dimension ", d));
    }
  }
  if (std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end()) return 0;
  for (int64_t d : t.shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", t.name, "' byte size overflows 64 bits"));
    }
  }
  return bytes;
}

}  // namespace

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorView>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorView*> order;
  order.reserve(tensors.size());
  std::set<std::string> names;
  for (const TensorView& t : tensors) {
    if (t.name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor name '__metadata__' is reserved for the metadata map"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor '", t.name, "' given twice (hint: tensor names must be unique)"));
    }
    absl::StatusOr<uint64_t> expected = ExpectedBytes(path, t);
    if (!expected.ok()) return expected.status();
    if (*expected != t.nbytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", t.name, "' has shape [", absl::StrJoin(t.shape, ","),
                       "] ", DTypeName(t.dtype), " = ", *expected, " bytes but nbytes is ",
                       t.nbytes, " (hint: wrong dtype or shape in the view)"));
    }
    if (t.nbytes > 0 && t.data == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", t.name, "' has ", t.nbytes, " bytes but no data"));
    }
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(),
            [](const TensorView* a, const TensorView* b) { return a->name < b->name; });

  // ordered_json keeps insertion order: __metadata__ first, then tensors by name.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const TensorView* t : order) {
    nlohmann::ordered_json entry;
    entry["dtype"] = DTypeName(t->dtype);
    entry["shape"] = t->shape;
    entry["data_offsets"] = {offset, offset + t->nbytes};
    header[t->name] = std::move(entry);
    offset += t->nbytes;
  }
  std::string header_text;
  try {
    header_text = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
  } catch (const nlohmann::ordered_json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot encode header: ", e.what(),
                                                   " (hint: names must be valid UTF-8)"));
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header_text.size() + offset);
  uint64_t n = header_text.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  out += header_text;
  for (const TensorView* t : order) {
    if (t->nbytes > 0) out.append(reinterpret_cast<const char*>(t->data), t->nbytes);
  }
  return WriteFileAtomic(path, out);
}

}  // namespace fedlora::io
