#include "fedlora/device/personal_keyboard.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"

namespace fedlora::device {

absl::StatusOr<std::optional<PersonalKeyboard>> PersonalKeyboard::Load(
    const std::string& model_dir, const model::Tokenizer& tokenizer,
    PersonalKeyboardOptions options) {
  const std::string path = (std::filesystem::path(model_dir) / kPublicNgramFile).string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<PersonalKeyboard>();
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  auto pub = WordNgram::Parse(*text);
  if (!pub.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", pub.status().message(),
                                                   " (hint: remove it to use the greedy strip)"));
  }
  auto lexicon =
      std::make_shared<const PublicLexicon>(*pub, KeyboardVocab::FromTokenizer(tokenizer));
  return std::optional<PersonalKeyboard>(PersonalKeyboard(std::move(lexicon), tokenizer, options));
}

PersonalKeyboard::PersonalKeyboard(std::shared_ptr<const PublicLexicon> pub,
                                   const model::Tokenizer& tokenizer,
                                   PersonalKeyboardOptions options)
    : pub_(std::move(pub)), tokenizer_(&tokenizer), options_(options) {}

void PersonalKeyboard::Observe(const std::string& line) {
  personal_.AddLines(*tokenizer_, pub_->kv, {line});
  if (personal_.ApproxBytes() > options_.max_bytes) personal_.Prune(options_.max_bytes);
  strip_.reset();
}

void PersonalKeyboard::Reset() {
  personal_ = WordNgram();
  strip_.reset();
}

const WordStrip& PersonalKeyboard::Strip() {
  if (strip_ == nullptr) {
    const bool any = !personal_.unigrams().empty();
    strip_ = std::make_unique<WordStrip>(pub_, any ? &personal_ : nullptr, options_.weights);
  }
  return *strip_;
}

}  // namespace fedlora::device
