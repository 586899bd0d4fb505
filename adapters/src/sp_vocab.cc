// sentencepiece ModelProto -> vocabulary, with a minimal protobuf wire-format reader
// (see sp_vocab.h). Field numbers from sentencepiece_model.proto:
//   ModelProto: 1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece: 1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
//   TrainerSpec: 3 model_type, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
//   NormalizerSpec: 3 add_dummy_prefix (bool, default true)
#include "fedlora/adapters/sp_vocab.h"

#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"

namespace fedlora::adapters {
namespace {

// One message's fields, visited in order: (field number, wire type, varint value or the
// bytes of a length-delimited / fixed field).
class WireReader {
 public:
  WireReader(const char* p, size_t n) : p_(p), end_(p + n) {}

  using Visit = std::function<absl::Status(uint32_t field, uint32_t wire, uint64_t v,
                                           const char* bytes, size_t len)>;
  absl::Status ForEach(const Visit& visit) {
    while (p_ < end_) {
      uint64_t key = 0;
      if (!Varint(&key)) return Bad("truncated field key");
      const auto field = static_cast<uint32_t>(key >> 3);
      const auto wire = static_cast<uint32_t>(key & 7);
      uint64_t v = 0;
      const char* bytes = nullptr;
      size_t len = 0;
      switch (wire) {
        case 0:
          if (!Varint(&v)) return Bad("truncated varint");
          break;
        case 1:
        case 5:
          len = wire == 1 ? 8 : 4;
          if (static_cast<size_t>(end_ - p_) < len) return Bad("truncated fixed-size field");
          bytes = p_;
          p_ += len;
          break;
        case 2:
          if (!Varint(&v) || v > static_cast<uint64_t>(end_ - p_)) {
            return Bad("truncated length-delimited field");
          }
          bytes = p_;
          len = static_cast<size_t>(v);
          p_ += len;
          break;
        default:
          return Bad(absl::StrCat("unsupported wire type ", wire, " in field ", field));
      }
      if (auto st = visit(field, wire, v, bytes, len); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

 private:
  bool Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const auto b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    return false;
  }
  static absl::Status Bad(const std::string& m) { return absl::InvalidArgumentError(m); }

  const char* p_;
  const char* end_;
};

}  // namespace

absl::StatusOr<SentencePieceVocab> ParseSentencePieceVocab(const std::string& bytes,
                                                           const std::string& source) {
  SentencePieceVocab v;
  auto piece = [&v](const char* p, size_t n) -> absl::Status {
    std::string text;
    float score = 0;
    int32_t type = static_cast<int32_t>(SpPieceType::kNormal);
    bool has_text = false;
    WireReader r(p, n);
    auto st = r.ForEach([&](uint32_t f, uint32_t w, uint64_t x, const char* b, size_t len) {
      if (f == 1 && w == 2) {
        text.assign(b, len);
        has_text = true;
      } else if (f == 2 && w == 5) {
        std::memcpy(&score, b, 4);
      } else if (f == 3 && w == 0) {
        type = static_cast<int32_t>(x);
      }
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    if (!has_text) {
      return absl::InvalidArgumentError(absl::StrCat("piece ", v.pieces.size(), " has no text"));
    }
    if (type < 1 || type > 6) {
      return absl::InvalidArgumentError(
          absl::StrCat("piece ", v.pieces.size(), " has type ", type, " (expected 1..6)"));
    }
    v.pieces.push_back(std::move(text));
    v.scores.push_back(score);
    v.types.push_back(static_cast<SpPieceType>(type));
    return absl::OkStatus();
  };
  auto trainer = [&v](const char* p, size_t n) {
    WireReader r(p, n);
    return r.ForEach([&](uint32_t f, uint32_t w, uint64_t x, const char*, size_t) {
      if (w != 0) return absl::OkStatus();
      const auto i = static_cast<int32_t>(x);  // int32 fields: negative values sign-extend
      if (f == 3) v.model_type = i;
      if (f == 40) v.unk_id = i;
      if (f == 41) v.bos_id = i;
      if (f == 42) v.eos_id = i;
      if (f == 43) v.pad_id = i;
      return absl::OkStatus();
    });
  };
  auto normalizer = [&v](const char* p, size_t n) {
    WireReader r(p, n);
    return r.ForEach([&](uint32_t f, uint32_t w, uint64_t x, const char*, size_t) {
      if (f == 3 && w == 0) v.add_dummy_prefix = x != 0;
      return absl::OkStatus();
    });
  };
  WireReader top(bytes.data(), bytes.size());
  auto st = top.ForEach([&](uint32_t f, uint32_t w, uint64_t, const char* b, size_t len) {
    if (w != 2) return absl::OkStatus();
    if (f == 1) return piece(b, len);
    if (f == 2) return trainer(b, len);
    if (f == 3) return normalizer(b, len);
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": not a sentencepiece model (", st.message(),
        ") (hint: give the tokenizer.model the base was trained with)"));
  }
  if (v.pieces.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": sentencepiece model has no pieces"));
  }
  return v;
}

absl::StatusOr<SentencePieceVocab> ReadSentencePieceVocab(const std::string& path) {
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  return ParseSentencePieceVocab(*bytes, path);
}

}  // namespace fedlora::adapters
