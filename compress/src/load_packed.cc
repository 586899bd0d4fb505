// LoadPacked (dispatch on "format") and TensorReader.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fedlora/compress/composite.h"
#include "fedlora/compress/int8.h"
#include "fedlora/compress/nf4.h"
#include "fedlora/compress/packed_weight.h"
#include "fedlora/compress/rtn.h"

namespace fedlora::compress {
namespace {

torch::ScalarType TorchType(io::DType d) {
  switch (d) {
    case io::DType::kU8:
      return torch::kUInt8;
    case io::DType::kI8:
      return torch::kInt8;
    case io::DType::kF16:
      return torch::kHalf;
    case io::DType::kI32:
      return torch::kInt32;
    default:
      return torch::kFloat;
  }
}

std::string ShapeStr(const std::vector<int64_t>& s) { return "[" + absl::StrJoin(s, ", ") + "]"; }

}  // namespace

absl::StatusOr<torch::Tensor> TensorReader::Read(const std::string& name, io::DType dtype,
                                                 const std::vector<int64_t>& shape) {
  const io::TensorView* v = file_->Find(name);
  if (v == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_->path(), ": tensor '", name,
                     "' named by compression.json is missing (hint: the checkpoint is truncated "
                     "or compression.json belongs to another model.safetensors; re-run "
                     "`fedlora compress`)"));
  }
  if (v->dtype != dtype || v->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        file_->path(), ": tensor '", name, "' is ", io::DTypeName(v->dtype), " ",
        ShapeStr(v->shape), " but compression.json implies ", io::DTypeName(dtype), " ",
        ShapeStr(shape),
        " (hint: compression.json is inconsistent with the weights; re-run `fedlora compress`)"));
  }
  used_.insert(name);
  torch::Tensor t = torch::empty(shape, TorchType(dtype));
  if (v->nbytes > 0) std::memcpy(t.data_ptr(), v->data, v->nbytes);
  return t;
}

absl::StatusOr<std::shared_ptr<PackedWeight>> LoadPacked(const std::string& prefix,
                                                         const nlohmann::json& scheme,
                                                         TensorReader* reader) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader->path(), ": scheme of '", prefix, "' ", what,
                     " (hint: compression.json is corrupt; re-run `fedlora compress`)"));
  };
  if (!scheme.is_object() || !scheme.contains("format") || !scheme["format"].is_string()) {
    return bad("is not an object with a string \"format\"");
  }
  const auto& shape = scheme.contains("shape") ? scheme["shape"] : nlohmann::json();
  if (!shape.is_array() || shape.size() != 2 || !shape[0].is_number_integer() ||
      !shape[1].is_number_integer() || shape[0].get<int64_t>() < 1 || shape[1].get<int64_t>() < 1) {
    return bad("has no \"shape\" [out, in] of positive integers");
  }
  const std::string format = scheme["format"].get<std::string>();
  try {
    if (format == "int8") return Int8Weight::Load(prefix, scheme, reader);
    if (format == "rtn") return RtnWeight::Load(prefix, scheme, reader);
    if (format == "nf4") return Nf4Weight::Load(prefix, scheme, reader);
    if (format == "lowrank") return LowRankWeight::Load(prefix, scheme, reader);
    if (format == "masked") return MaskedWeight::Load(prefix, scheme, reader);
  } catch (const nlohmann::json::exception& e) {
    return bad(absl::StrCat("is malformed: ", e.what()));
  }
  return bad(
      absl::StrCat("has unknown format '", format, "'; known: int8, rtn, nf4, lowrank, masked"));
}

}  // namespace fedlora::compress
