// GGUF parsing and validation, as ggml's gguf.cpp checks a file (see gguf.h).
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "fedlora/adapters/gguf.h"
#include "fedlora/common/file_util.h"
#include "gguf_internal.h"

namespace fedlora::adapters {
namespace {

using internal::KnownType;
using internal::Pad;
using internal::PowerOfTwo;
using internal::ScalarSize;

class In {
 public:
  In(const std::string& b, const std::string& src) : b_(b), src_(src) {}
  template <typename T>
  absl::Status Get(T* v, const std::string& what) {
    if (b_.size() - pos_ < sizeof(T)) return Truncated(what);
    std::memcpy(v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }
  absl::Status Str(std::string* v, const std::string& what) {
    uint64_t n = 0;
    if (auto st = Get(&n, what); !st.ok()) return st;
    if (b_.size() - pos_ < n) return Truncated(absl::StrCat(what, " (string of ", n, " bytes)"));
    v->assign(b_.data() + pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }
  absl::Status Truncated(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(src_, ": truncated GGUF file while reading ",
                                                   what, " at byte ", pos_, " of ", b_.size(),
                                                   " (hint: incomplete download or copy?)"));
  }
  uint64_t pos() const { return pos_; }

 private:
  const std::string& b_;
  const std::string& src_;
  uint64_t pos_ = 0;
};

absl::Status GetScalar(In& in, GgufType t, GgufValue* v, const std::string& what) {
  v->type = t;
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kBool: {
      uint8_t x = 0;
      if (auto st = in.Get(&x, what); !st.ok()) return st;
      v->u = x;
      return absl::OkStatus();
    }
    case GgufType::kInt8: {
      int8_t x = 0;
      if (auto st = in.Get(&x, what); !st.ok()) return st;
      v->i = x;
      return absl::OkStatus();
    }
    case GgufType::kUint16: {
      uint16_t x = 0;
      if (auto st = in.Get(&x, what); !st.ok()) return st;
      v->u = x;
      return absl::OkStatus();
    }
    case GgufType::kInt16: {
      int16_t x = 0;
      if (auto st = in.Get(&x, what); !st.ok()) return st;
      v->i = x;
      return absl::OkStatus();
    }
    case GgufType::kUint32: {
      uint32_t x = 0;
      if (auto st = in.Get(&x, what); !st.ok()) return st;
      v->u = x;
      return absl::OkStatus();
    }
    case GgufType::kInt32: {
      int32_t x = 0;
      if (auto st = in.Get(&x, what); !st.ok()) return st;
      v->i = x;
      return absl::OkStatus();
    }
    case GgufType::kFloat32: {
      float x = 0;
      if (auto st = in.Get(&x, what); !st.ok()) return st;
      v->f = x;
      return absl::OkStatus();
    }
    case GgufType::kUint64:
      return in.Get(&v->u, what);
    case GgufType::kInt64:
      return in.Get(&v->i, what);
    case GgufType::kFloat64:
      return in.Get(&v->f, what);
    case GgufType::kString:
      return in.Str(&v->s, what);
    case GgufType::kArray:
      break;
  }
  return absl::InternalError("unreachable");
}
}  // namespace

absl::StatusOr<GgufFile> ParseGguf(const std::string& bytes, const std::string& source) {
  auto bad = [&](const std::string& msg) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", msg));
  };
  In in(bytes, source);
  GgufFile f;
  uint32_t magic = 0;
  if (auto st = in.Get(&magic, "the magic"); !st.ok()) return st;
  if (magic != kGgufMagic) {
    return bad(absl::StrCat("not a GGUF file: magic 0x", absl::Hex(magic),
                            ", expected 0x46554747 ('GGUF')"));
  }
  if (auto st = in.Get(&f.version, "the version"); !st.ok()) return st;
  if (f.version != 2 && f.version != 3) {
    return bad(absl::StrCat("GGUF version ", f.version, " is not supported (2 or 3)"));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  if (auto st = in.Get(&n_tensors, "the tensor count"); !st.ok()) return st;
  if (auto st = in.Get(&n_kv, "the metadata count"); !st.ok()) return st;
  // Every entry takes at least 8 bytes: refuse absurd counts before allocating.
  if (n_tensors > bytes.size() / 8 || n_kv > bytes.size() / 8) {
    return bad(absl::StrCat("header claims ", n_tensors, " tensors and ", n_kv,
                            " keys, more than the file can hold"));
  }
  std::set<std::string> keys;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key;
    if (auto st = in.Str(&key, absl::StrCat("key ", k)); !st.ok()) return st;
    if (!keys.insert(key).second) return bad(absl::StrCat("duplicate key '", key, "'"));
    uint32_t type = 0;
    if (auto st = in.Get(&type, key); !st.ok()) return st;
    if (!KnownType(type)) return bad(absl::StrCat("key '", key, "' has unknown type ", type));
    GgufValue v;
    if (static_cast<GgufType>(type) == GgufType::kArray) {
      v.type = GgufType::kArray;
      uint32_t et = 0;
      uint64_t n = 0;
      if (auto st = in.Get(&et, key); !st.ok()) return st;
      if (!KnownType(et) || static_cast<GgufType>(et) == GgufType::kArray) {
        return bad(absl::StrCat("key '", key, "' is an array of type ", et,
                                " (arrays of arrays are not GGUF)"));
      }
      if (auto st = in.Get(&n, key); !st.ok()) return st;
      const size_t es = ScalarSize(static_cast<GgufType>(et));
      if (n > (bytes.size() - in.pos()) / (es == 0 ? 8 : es)) {
        return in.Truncated(absl::StrCat("array '", key, "' of ", n, " items"));
      }
      v.array_type = static_cast<GgufType>(et);
      v.array.resize(n);
      for (uint64_t j = 0; j < n; ++j) {
        if (auto st = GetScalar(in, v.array_type, &v.array[j], key); !st.ok()) return st;
      }
    } else if (auto st = GetScalar(in, static_cast<GgufType>(type), &v, key); !st.ok()) {
      return st;
    }
    f.metadata.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f.Find("general.alignment")) {
    if (a->type != GgufType::kUint32 || !PowerOfTwo(a->u)) {
      return bad(absl::StrCat("general.alignment must be a UINT32 power of two, got ",
                              GgufTypeName(a->type), " ", a->DebugString()));
    }
    f.alignment = static_cast<uint32_t>(a->u);
  }
  std::set<std::string> names;
  uint64_t expected_offset = 0;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    if (auto st = in.Str(&t.name, absl::StrCat("tensor info ", k)); !st.ok()) return st;
    if (t.name.size() >= kGgmlMaxName) {
      return bad(absl::StrCat("tensor name '", t.name, "' is ", t.name.size(),
                              " bytes; ggml allows at most 63"));
    }
    if (!names.insert(t.name).second) return bad(absl::StrCat("duplicate tensor '", t.name, "'"));
    uint32_t n_dims = 0;
    if (auto st = in.Get(&n_dims, t.name); !st.ok()) return st;
    if (n_dims > kGgmlMaxDims) {
      return bad(absl::StrCat("tensor '", t.name, "' has ", n_dims, " dims; ggml allows 4"));
    }
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      int64_t ne = 0;
      if (auto st = in.Get(&ne, t.name); !st.ok()) return st;
      if (ne < 0 || (ne > 0 && numel > (int64_t{1} << 50) / ne)) {
        return bad(absl::StrCat("tensor '", t.name, "' has invalid dim ", ne));
      }
      numel *= ne;
      t.ne.push_back(ne);
    }
    if (auto st = in.Get(&t.type, t.name); !st.ok()) return st;
    uint64_t nbytes = 0;
    if (GgmlTypeSize(t.type) == 0) {
      return bad(absl::StrCat("tensor '", t.name, "' has ggml type ", t.type,
                              ", which this reader does not handle (hint: only F32, F16, BF16, "
                              "integer types and Q8_0 are read; convert with --outtype f32 or "
                              "f16)"));
    }
    if (!GgmlTensorBytes(t.type, t.ne, &nbytes)) {
      return bad(absl::StrCat("tensor '", t.name, "' of type ", GgmlTypeName(GgmlType(t.type)),
                              " has ne[0] = ", t.ne.empty() ? 1 : t.ne[0],
                              ", not a multiple of its block size ", GgmlBlockSize(t.type)));
    }
    if (auto st = in.Get(&t.offset, t.name); !st.ok()) return st;
    if (t.offset != expected_offset) {
      return bad(absl::StrCat("tensor '", t.name, "' has offset ", t.offset, ", expected ",
                              expected_offset,
                              " (tensors must be packed in order, each padded "
                              "to ",
                              f.alignment, " bytes)"));
    }
    expected_offset += Pad(nbytes, f.alignment);
    f.tensors.push_back(std::move(t));
  }
  f.data_offset = Pad(in.pos(), f.alignment);
  for (GgufTensor& t : f.tensors) {
    uint64_t n = 0;
    GgmlTensorBytes(t.type, t.ne, &n);  // checked above
    const uint64_t begin = f.data_offset + t.offset;
    if (begin > bytes.size() || bytes.size() - begin < n) {
      return bad(absl::StrCat("tensor '", t.name, "' data [", begin, ", ", begin + n,
                              ") runs past the end of the file (", bytes.size(),
                              " bytes) (hint: truncated download?)"));
    }
    t.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(begin),
                  bytes.begin() + static_cast<std::ptrdiff_t>(begin + n));
  }
  return f;
}

absl::StatusOr<GgufFile> ReadGguf(const std::string& path) {
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  return ParseGguf(*bytes, path);
}

}  // namespace fedlora::adapters
