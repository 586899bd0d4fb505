#include "fedlora/model/tokenizer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "sp_backend.h"

namespace fedlora::model {

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path,
                                                           int64_t bos_id, int64_t eos_id) {
  if (!std::filesystem::exists(path)) {
    return absl::NotFoundError(absl::StrCat(
        "tokenizer '", path, "' not found (hint: the model directory needs a sentencepiece "
                             "tokenizer.model)"));
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  std::string error;
  internal::SpModule* module = internal::GetSpModule(&error);
  if (module == nullptr) return absl::InternalError(error);
  t->sp_ = module->Load(path, &error);
  if (t->sp_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot load tokenizer '", path, "': ", error,
        " (hint: expected a sentencepiece model file such as tokenizer.model)"));
  }
  t->bos_id_ = bos_id;
  t->eos_id_ = eos_id;
  const int n = t->sp_->PieceSize();
  t->starts_word_.resize(n);
  t->special_.resize(n);
  for (int i = 0; i < n; ++i) {
    const std::string& piece = t->sp_->IdToPiece(i);
    t->starts_word_[i] = piece.rfind("\xE2\x96\x81", 0) == 0;
    t->special_[i] = t->sp_->IsSpecial(i);
  }
  return t;
}

std::vector<int64_t> Tokenizer::Encode(const std::string& text) const {
  std::vector<int> ids = sp_->Encode(text);
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::vector<int64_t> Tokenizer::EncodeWithBos(const std::string& text) const {
  std::vector<int64_t> ids = Encode(text);
  ids.insert(ids.begin(), bos_id_);
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int64_t>& ids) const {
  std::vector<int> v;
  for (int64_t id : ids) {
    if (id >= 0 && id < vocab_size() && id != bos_id_ && id != eos_id_) v.push_back(static_cast<int>(id));
  }
  return sp_->Decode(v);
}

std::string Tokenizer::IdToPiece(int64_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return sp_->IdToPiece(static_cast<int>(id));
}

bool Tokenizer::StartsWord(int64_t id) const {
  return id >= 0 && id < vocab_size() && starts_word_[id];
}

bool Tokenizer::IsSpecial(int64_t id) const {
  return id < 0 || id >= vocab_size() || special_[id];
}

int64_t Tokenizer::vocab_size() const { return sp_->PieceSize(); }

absl::Status TrainTokenizer(const std::vector<std::string>& corpus_files,
                            const std::string& output_prefix,
                            const TokenizerTrainOptions& options) {
  if (corpus_files.empty()) return absl::InvalidArgumentError("no corpus files to train a tokenizer on");
  std::string args = absl::StrCat(
      "--input=", absl::StrJoin(corpus_files, ","), " --model_prefix=", output_prefix,
      " --vocab_size=", options.vocab_size, " --model_type=", options.model_type,
      " --character_coverage=", options.character_coverage,
      " --byte_fallback=", options.byte_fallback ? "true" : "false",
      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --input_sentence_size=",
      options.max_sentences,
      " --shuffle_input_sentence=true --num_threads=2 --minloglevel=2 --split_digits=true"
      " --allow_whitespace_only_pieces=true --remove_extra_whitespaces=false"
      " --normalization_rule_name=identity");
  std::string error;
  internal::SpModule* module = internal::GetSpModule(&error);
  if (module == nullptr) return absl::InternalError(error);
  if (!module->Train(args, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training the tokenizer failed: ", error,
        " (hint: the corpus may be too small for vocab size ", options.vocab_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace fedlora::model
