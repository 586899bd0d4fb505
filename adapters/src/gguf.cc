// GGUF v3 serialisation and parsing (see gguf.h for the byte layout).
#include "fedlora/adapters/gguf.h"

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fedlora/common/file_util.h"
#include "fedlora/io/safetensors.h"
#include "gguf_internal.h"

namespace fedlora::adapters {
namespace {

using internal::KnownType;
using internal::Pad;
using internal::PowerOfTwo;

// ---- writing -----------------------------------------------------------------------------

class Out {
 public:
  template <typename T>
  void Put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // little-endian host (x86-64 / arm64)
    s.append(b, sizeof(T));
  }
  void Str(const std::string& v) {
    Put<uint64_t>(v.size());
    s += v;
  }
  std::string s;
};

void PutScalar(Out& o, const GgufValue& v, GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kBool:
      o.Put<uint8_t>(static_cast<uint8_t>(v.u));
      break;
    case GgufType::kInt8:
      o.Put<int8_t>(static_cast<int8_t>(v.i));
      break;
    case GgufType::kUint16:
      o.Put<uint16_t>(static_cast<uint16_t>(v.u));
      break;
    case GgufType::kInt16:
      o.Put<int16_t>(static_cast<int16_t>(v.i));
      break;
    case GgufType::kUint32:
      o.Put<uint32_t>(static_cast<uint32_t>(v.u));
      break;
    case GgufType::kInt32:
      o.Put<int32_t>(static_cast<int32_t>(v.i));
      break;
    case GgufType::kFloat32:
      o.Put<float>(static_cast<float>(v.f));
      break;
    case GgufType::kUint64:
      o.Put<uint64_t>(v.u);
      break;
    case GgufType::kInt64:
      o.Put<int64_t>(v.i);
      break;
    case GgufType::kFloat64:
      o.Put<double>(v.f);
      break;
    case GgufType::kString:
      o.Str(v.s);
      break;
    case GgufType::kArray:
      break;  // refused by the caller
  }
}

absl::Status PutValue(Out& o, const std::string& key, const GgufValue& v) {
  if (!KnownType(static_cast<uint32_t>(v.type))) {
    return absl::InvalidArgumentError(absl::StrCat("gguf: key '", key, "' has unknown type"));
  }
  o.Put<uint32_t>(static_cast<uint32_t>(v.type));
  if (v.type != GgufType::kArray) {
    PutScalar(o, v, v.type);
    return absl::OkStatus();
  }
  if (v.array_type == GgufType::kArray || !KnownType(static_cast<uint32_t>(v.array_type))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gguf: key '", key, "' is an array of arrays (hint: GGUF allows one level only)"));
  }
  o.Put<uint32_t>(static_cast<uint32_t>(v.array_type));
  o.Put<uint64_t>(v.array.size());
  for (const GgufValue& e : v.array) {
    if (e.type != v.array_type) {
      return absl::InvalidArgumentError(absl::StrCat("gguf: array '", key, "' mixes ",
                                                     GgufTypeName(e.type), " into an array of ",
                                                     GgufTypeName(v.array_type)));
    }
    PutScalar(o, e, e.type);
  }
  return absl::OkStatus();
}

}  // namespace

const char* GgufTypeName(GgufType t) {
  static const char* kNames[] = {"UINT8",  "INT8",    "UINT16", "INT16",  "UINT32",
                                 "INT32",  "FLOAT32", "BOOL",   "STRING", "ARRAY",
                                 "UINT64", "INT64",   "FLOAT64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : "UNKNOWN";
}

const char* GgmlTypeName(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return "F32";
    case GgmlType::kF16:
      return "F16";
    case GgmlType::kI8:
      return "I8";
    case GgmlType::kI16:
      return "I16";
    case GgmlType::kI32:
      return "I32";
    case GgmlType::kI64:
      return "I64";
    case GgmlType::kF64:
      return "F64";
    case GgmlType::kBF16:
      return "BF16";
    case GgmlType::kQ8_0:
      return "Q8_0";
  }
  return "UNKNOWN";
}

size_t GgmlTypeSize(uint32_t type_id) {
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::kF32:
    case GgmlType::kI32:
      return 4;
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kI16:
      return 2;
    case GgmlType::kI8:
      return 1;
    case GgmlType::kI64:
    case GgmlType::kF64:
      return 8;
    case GgmlType::kQ8_0:
      return 2 + kQ8_0Block;
  }
  return 0;
}

int64_t GgmlBlockSize(uint32_t type_id) {
  if (GgmlTypeSize(type_id) == 0) return 0;
  return static_cast<GgmlType>(type_id) == GgmlType::kQ8_0 ? kQ8_0Block : 1;
}

bool GgmlTensorBytes(uint32_t type_id, const std::vector<int64_t>& ne, uint64_t* bytes) {
  const int64_t block = GgmlBlockSize(type_id);
  if (block == 0) return false;
  uint64_t n = 1;
  for (int64_t d : ne) n *= static_cast<uint64_t>(d);
  if (!ne.empty() && ne[0] % block != 0) return false;
  *bytes = n / static_cast<uint64_t>(block) * GgmlTypeSize(type_id);
  return true;
}

GgufValue GgufValue::String(std::string v) {
  GgufValue x;
  x.type = GgufType::kString;
  x.s = std::move(v);
  return x;
}
GgufValue GgufValue::Uint32(uint32_t v) {
  GgufValue x;
  x.type = GgufType::kUint32;
  x.u = v;
  return x;
}
GgufValue GgufValue::Float32(float v) {
  GgufValue x;
  x.type = GgufType::kFloat32;
  x.f = v;
  return x;
}

std::string GgufValue::DebugString() const {
  switch (type) {
    case GgufType::kString:
      return absl::StrCat("\"", s, "\"");
    case GgufType::kFloat32:
    case GgufType::kFloat64:
      return absl::StrCat(f);
    case GgufType::kBool:
      return u ? "true" : "false";
    case GgufType::kInt8:
    case GgufType::kInt16:
    case GgufType::kInt32:
    case GgufType::kInt64:
      return absl::StrCat(i);
    case GgufType::kArray: {
      std::vector<std::string> parts;
      for (size_t k = 0; k < array.size() && k < 8; ++k) parts.push_back(array[k].DebugString());
      if (array.size() > 8) parts.push_back(absl::StrCat("... (", array.size(), " items)"));
      return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    }
    default:
      return absl::StrCat(u);
  }
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensor::TorchShape() const { return {ne.rbegin(), ne.rend()}; }

absl::StatusOr<std::vector<float>> GgufTensor::ToFloat() const {
  uint64_t want = 0;
  if (!GgmlTensorBytes(type, ne, &want) || data.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("gguf: tensor '", name, "' holds ", data.size(),
                                                   " bytes for ", numel(), " elements of type ",
                                                   type));
  }
  if (static_cast<GgmlType>(type) == GgmlType::kQ8_0) {
    const auto n = static_cast<size_t>(numel());
    std::vector<float> out(n);
    for (size_t b = 0; b < n / kQ8_0Block; ++b) {
      const uint8_t* blk = data.data() + b * GgmlTypeSize(type);
      uint16_t h = 0;
      std::memcpy(&h, blk, 2);
      const float d = io::HalfToFloat(h);
      for (int64_t j = 0; j < kQ8_0Block; ++j) {
        out[b * kQ8_0Block + j] = d * static_cast<float>(static_cast<int8_t>(blk[2 + j]));
      }
    }
    return out;
  }
  io::DType dt;
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32:
      dt = io::DType::kF32;
      break;
    case GgmlType::kF16:
      dt = io::DType::kF16;
      break;
    case GgmlType::kBF16:
      dt = io::DType::kBF16;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("gguf: tensor '", name, "' has ggml type ",
                                                     type,
                                                     "; only F32, F16 and BF16 convert to float"));
  }
  const auto n = static_cast<size_t>(numel());
  std::vector<float> out(n);
  if (auto st = io::ConvertToF32(dt, data.data(), n, out.data()); !st.ok()) return st;
  return out;
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  for (const auto& [k, v] : metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

const GgufTensor* GgufFile::FindTensor(const std::string& name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::StatusOr<std::string> SerializeGguf(const GgufFile& file) {
  const uint64_t align = file.alignment;
  if (!PowerOfTwo(align)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gguf: alignment ", align, " is not a power of two"));
  }
  const GgufValue* a = file.Find("general.alignment");
  if (a != nullptr ? (a->type != GgufType::kUint32 || a->u != align)
                   : align != kGgufDefaultAlignment) {
    return absl::InvalidArgumentError(absl::StrCat("gguf: alignment ", align,
                                                   " needs a general.alignment UINT32 entry of ",
                                                   align, " (hint: readers assume 32 without it)"));
  }
  Out o;
  o.Put<uint32_t>(kGgufMagic);
  o.Put<uint32_t>(kGgufVersion);
  o.Put<uint64_t>(file.tensors.size());
  o.Put<uint64_t>(file.metadata.size());
  std::set<std::string> keys;
  for (const auto& [key, value] : file.metadata) {
    if (!keys.insert(key).second) {
      return absl::InvalidArgumentError(absl::StrCat("gguf: duplicate key '", key, "'"));
    }
    o.Str(key);
    if (auto st = PutValue(o, key, value); !st.ok()) return st;
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const GgufTensor& t : file.tensors) {
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("gguf: duplicate tensor '", t.name, "'"));
    }
    if (t.name.size() >= kGgmlMaxName) {
      return absl::InvalidArgumentError(absl::StrCat("gguf: tensor name '", t.name, "' has ",
                                                     t.name.size(), " bytes; ggml allows ",
                                                     kGgmlMaxName - 1));
    }
    if (t.ne.size() > kGgmlMaxDims) {
      return absl::InvalidArgumentError(
          absl::StrCat("gguf: tensor '", t.name, "' has ", t.ne.size(), " dims; at most 4"));
    }
    const size_t es = GgmlTypeSize(t.type);
    if (es == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("gguf: tensor '", t.name, "' has unsupported ggml type ", t.type));
    }
    for (int64_t d : t.ne) {
      if (d < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("gguf: tensor '", t.name, "' has a negative dim"));
      }
    }
    uint64_t want = 0;
    if (!GgmlTensorBytes(t.type, t.ne, &want)) {
      return absl::InvalidArgumentError(
          absl::StrCat("gguf: tensor '", t.name, "' of type ", GgmlTypeName(GgmlType(t.type)),
                       " has ne[0] = ", t.ne.empty() ? 1 : t.ne[0], ", not a multiple of ",
                       GgmlBlockSize(t.type), " (ggml stores whole blocks per row)"));
    }
    if (t.data.size() != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gguf: tensor '", t.name, "' has ", t.data.size(), " bytes, expected ", want));
    }
    o.Str(t.name);
    o.Put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) o.Put<uint64_t>(static_cast<uint64_t>(d));
    o.Put<uint32_t>(t.type);
    o.Put<uint64_t>(offset);
    offset += Pad(t.data.size(), align);
  }
  o.s.resize(Pad(o.s.size(), align), '\0');
  for (const GgufTensor& t : file.tensors) {
    o.s.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    o.s.resize(Pad(o.s.size(), align), '\0');  // the data section starts aligned
  }
  return std::move(o.s);
}

absl::Status WriteGguf(const std::string& path, const GgufFile& file) {
  auto bytes = SerializeGguf(file);
  if (!bytes.ok()) {
    return absl::Status(bytes.status().code(), absl::StrCat(path, ": ", bytes.status().message()));
  }
  return WriteFileAtomic(path, *bytes);
}

}  // namespace fedlora::adapters
