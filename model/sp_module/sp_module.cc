// The sentencepiece plugin (see model/src/sp_backend.h for why it is separate).
// Includes no Abseil header: sentencepiece declares its own absl::string_view.
#include <sentencepiece_processor.h>

#include "../src/sp_backend.h"

namespace fedlora::model::internal {
namespace {

class Processor final : public SpProcessor {
 public:
  std::vector<int> Encode(const std::string& text) const override {
    std::vector<int> ids;
    sp_.Encode(text, &ids).IgnoreError();
    return ids;
  }
  std::string Decode(const std::vector<int>& ids) const override {
    std::string out;
    sp_.Decode(ids, &out).IgnoreError();
    return out;
  }
  std::string IdToPiece(int id) const override { return sp_.IdToPiece(id); }
  int PieceSize() const override { return sp_.GetPieceSize(); }
  bool IsSpecial(int id) const override {
    return sp_.IsControl(id) || sp_.IsUnknown(id) || sp_.IsByte(id);
  }
  sentencepiece::SentencePieceProcessor sp_;
};

class Module final : public SpModule {
 public:
  std::unique_ptr<SpProcessor> Load(const std::string& path, std::string* error) override {
    auto p = std::make_unique<Processor>();
    auto status = p->sp_.Load(path);
    if (!status.ok()) {
      *error = status.ToString();
      return nullptr;
    }
    return p;
  }
};

}  // namespace
}  // namespace fedlora::model::internal

extern "C" __attribute__((visibility("default"))) fedlora::model::internal::SpModule*
fedlora_sp_module() {
  static fedlora::model::internal::Module module;
  return &module;
}
