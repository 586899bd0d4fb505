#include "fedlora/model/tokenizer.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "sp_backend.h"

namespace fedlora::model {
namespace {

// Runs argv[0] (looked up in PATH) with stdout and stderr sent to `log_path`; returns its exit
// code. NOT_FOUND if the program is not installed.
absl::StatusOr<int> RunProcess(const std::vector<std::string>& args, const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot run ", args[0], ": ", std::strerror(rc),
                     " (hint: install Debian's sentencepiece package: bash scripts/setup.sh)"));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path, int64_t bos_id,
                                                           int64_t eos_id) {
  if (!std::filesystem::exists(path)) {
    return absl::NotFoundError(
        absl::StrCat("tokenizer '", path,
                     "' not found (hint: the model directory needs a sentencepiece "
                     "tokenizer.model)"));
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  std::string error;
  internal::SpModule* module = internal::GetSpModule(&error);
  if (module == nullptr) return absl::InternalError(error);
  t->sp_ = module->Load(path, &error);
  if (t->sp_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load tokenizer '", path, "': ", error,
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
    if (id >= 0 && id < vocab_size() && id != bos_id_ && id != eos_id_)
      v.push_back(static_cast<int>(id));
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

bool Tokenizer::IsSpecial(int64_t id) const { return id < 0 || id >= vocab_size() || special_[id]; }

int64_t Tokenizer::vocab_size() const { return sp_->PieceSize(); }

absl::Status TrainTokenizer(const std::vector<std::string>& corpus_files,
                            const std::string& output_prefix,
                            const TokenizerTrainOptions& options) {
  if (corpus_files.empty()) {
    return absl::InvalidArgumentError("no corpus files to train a tokenizer on");
  }
  std::vector<std::string> args = {
      "spm_train",
      absl::StrCat("--input=", absl::StrJoin(corpus_files, ",")),
      absl::StrCat("--model_prefix=", output_prefix),
      absl::StrCat("--vocab_size=", options.vocab_size),
      absl::StrCat("--model_type=", options.model_type),
      absl::StrCat("--character_coverage=", options.character_coverage),
      absl::StrCat("--byte_fallback=", options.byte_fallback ? "true" : "false"),
      "--unk_id=0",
      "--bos_id=1",
      "--eos_id=2",
      "--pad_id=-1",
      absl::StrCat("--input_sentence_size=", options.max_sentences),
      "--shuffle_input_sentence=true",
      "--num_threads=2",
      "--minloglevel=1",
      "--split_digits=true",
      "--allow_whitespace_only_pieces=true",
      "--remove_extra_whitespaces=false",
      "--normalization_rule_name=identity",
      absl::StrCat("--hard_vocab_limit=", options.hard_vocab_limit ? "true" : "false")};
  std::string log_path = output_prefix + ".train.log";
  FEDLORA_ASSIGN_OR_RETURN(int code, RunProcess(args, log_path));
  std::string log;
  if (auto text = ReadFileToString(log_path); text.ok()) log = *text;
  std::filesystem::remove(log_path);
  if (code != 0) {
    // spm_train: "Vocabulary size is smaller than required_chars. 200 vs 261."
    const auto at = log.find("smaller than required_chars.");
    if (at != std::string::npos) {
      int have = 0, need = 0;
      if (std::sscanf(log.c_str() + at + 28, " %d vs %d", &have, &need) == 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "vocabulary size ", have, " is too small: this corpus needs at least ", need,
            " pieces (one per distinct character, plus the byte-fallback and special pieces) "
            "(hint: --vocab ", need + 16, " or more)"));
      }
    }
    std::string tail = log.size() > 600 ? log.substr(log.size() - 600) : log;
    return absl::InvalidArgumentError(absl::StrCat(
        "training the tokenizer failed (spm_train exit ", code, "): ", tail,
        " (hint: the corpus may be too small for vocab size ", options.vocab_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace fedlora::model
