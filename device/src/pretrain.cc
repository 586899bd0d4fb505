#include "fedlora/device/pretrain.h"

#include "fedlora/device/personal_keyboard.h"
#include "fedlora/device/word_ngram.h"

#include <torch/types.h>

#include <filesystem>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/model/checkpoint.h"
#include "fedlora/model/tokenizer.h"

namespace fedlora::device {

absl::StatusOr<PretrainResult> Pretrain(const std::vector<std::string>& corpus_files,
                                        const std::string& out_dir, const PretrainOptions& o) {
  namespace fs = std::filesystem;
  if (corpus_files.empty()) return absl::InvalidArgumentError("pretrain: no --corpus files given");
  // Architecture flags are checked before the (slow) tokenizer training.
  for (auto [flag, v, min] :
       {std::tuple<const char*, int64_t, int64_t>{"--hidden", o.hidden_size, 2},
        {"--layers", o.num_layers, 1},
        {"--heads", o.num_heads, 1},
        {"--kv-heads", o.num_kv_heads, 0},
        {"--ff", o.intermediate_size, 0},
        {"--context", o.context, 2}}) {
    if (v < min) {
      return absl::InvalidArgumentError(
          absl::StrCat("pretrain: ", flag, " ", v, " is out of range; allowed: >= ", min,
                       " (hint: sizes must be positive; --context needs room for an input "
                       "and a target token)"));
    }
  }
  if (o.context > model::kMaxPositionEmbeddings) {
    return absl::InvalidArgumentError(
        absl::StrCat("pretrain: --context ", o.context, " is out of range; allowed: 2..",
                     model::kMaxPositionEmbeddings, " (hint: small models use 64 to 512)"));
  }
  if (o.num_kv_heads > 0 && o.num_heads % o.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pretrain: --kv-heads ", o.num_kv_heads, " does not divide --heads ",
                     o.num_heads, "; allowed: a divisor of --heads (0 = same as --heads)"));
  }
  if (o.hidden_size % o.num_heads != 0 || (o.hidden_size / o.num_heads) % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pretrain: --hidden ", o.hidden_size, " does not split into --heads ", o.num_heads,
        " heads of an even size; allowed: --hidden = --heads x an even head size (hint: rotary "
        "embeddings rotate pairs of dimensions; e.g. --hidden 256 --heads 4)"));
  }
  std::vector<std::string> lines;
  for (const auto& f : corpus_files) {
    FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(f));
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
      lines.emplace_back(line);
    }
  }
  if (lines.size() < 10) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pretrain: the corpus has only ", lines.size(),
        " non-empty lines (hint: give more public text, one document or message per line)"));
  }
  const bool created = !fs::exists(out_dir);
  FEDLORA_RETURN_IF_ERROR(MakeDirs(out_dir));
  const std::string prefix = (fs::path(out_dir) / "tokenizer").string();
  model::TokenizerTrainOptions to;
  to.vocab_size = o.vocab_size;
  if (absl::Status t = model::TrainTokenizer(corpus_files, prefix, to); !t.ok()) {
    std::error_code rm;
    if (created) fs::remove_all(out_dir, rm);  // leave no empty --out behind
    return t;
  }
  std::error_code ec;
  fs::remove(prefix + ".vocab", ec);

  model::LlamaConfig c;
  c.hidden_size = o.hidden_size;
  c.num_hidden_layers = o.num_layers;
  c.num_attention_heads = o.num_heads;
  c.num_key_value_heads = o.num_kv_heads > 0 ? o.num_kv_heads : o.num_heads;
  c.head_dim = o.hidden_size / o.num_heads;
  c.intermediate_size =
      o.intermediate_size > 0 ? o.intermediate_size : ((o.hidden_size * 8 / 3 + 7) / 8) * 8;
  c.max_position_embeddings = o.context;
  c.tie_word_embeddings = o.tie_embeddings;
  FEDLORA_ASSIGN_OR_RETURN(auto tok, model::Tokenizer::Load(prefix + ".model", 1, 2));
  c.vocab_size = tok->vocab_size();
  // The model written must load: the same checks as config.json gets.
  FEDLORA_RETURN_IF_ERROR(
      model::ParseLlamaConfig(model::LlamaConfigToJson(c), "pretrain: the model config").status());

  model::LlamaModel m = model::LlamaModel::RandomInit(c, o.train.seed, o.init_std);
  m.SetBaseTrainable(true);
  std::vector<torch::Tensor> params;
  for (auto& [name, t] : m.NamedParameters()) params.push_back(*t);
  TokenWindows windows = MakeWindows(*tok, lines, o.context);
  PretrainResult r;
  r.config = c;
  r.corpus_tokens = windows.mask.sum().item<int64_t>();
  FEDLORA_ASSIGN_OR_RETURN(r.stats, Train(m, params, windows, o.train));
  m.SetBaseTrainable(false);
  FEDLORA_RETURN_IF_ERROR(model::SaveLlamaModel(m, out_dir));
  fs::rename(prefix + ".model", fs::path(out_dir) / "tokenizer.model", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot place tokenizer.model: ", ec.message()));
  nlohmann::json tc = {{"tokenizer_class", "LlamaTokenizer"},
                       {"bos_token", "<s>"},
                       {"eos_token", "</s>"},
                       {"unk_token", "<unk>"},
                       {"add_bos_token", true},
                       {"add_eos_token", false},
                       {"legacy", false},
                       {"model_max_length", o.context}};
  FEDLORA_RETURN_IF_ERROR(
      WriteFileAtomic((fs::path(out_dir) / "tokenizer_config.json").string(), tc.dump(2) + "\n"));
  // The public lexicon and word n-gram of the keyboard's lexicon strip ship with the base
  // (device/personal_keyboard.h): counted on the same public corpus.
  WordNgram pub;
  pub.AddLines(*tok, KeyboardVocab::FromTokenizer(*tok), lines);
  FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(
      (fs::path(out_dir) / PersonalKeyboard::kPublicNgramFile).string(), pub.Serialize()));
  return r;
}

}  // namespace fedlora::device
