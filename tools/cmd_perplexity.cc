// fedlora perplexity --model DIR [--adapter DIR]... FILE... [--json]
#include <chrono>

#include "cli_common.h"
#include "fedlora/common/file_util.h"
#include "fedlora/device/evaluate.h"
#include "model_flags.h"
#include "text_input.h"

namespace fedlora::cli {

void RegisterCommand_perplexity(CLI::App& app) {
  struct Opts {
    ModelFlags m;
    std::vector<std::string> files;
    int64_t window = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "perplexity",
      "mean next-token NLL (nats) and perplexity of whole text files ([BOS] + ids, scored in "
      "windows of the model's context, lines joined). `eval` scores each line as its own "
      "message instead, so its perplexity is usually higher (no context from earlier lines).");
  AddModelFlags(cmd, &o->m);
  cmd->add_option("files", o->files, "text files to score")->required();
  cmd->add_option("--window", o->window, "context window (default: max_position_embeddings)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    if (o->window != 0 && o->window < 2) {
      return (void)Fail(absl::InvalidArgumentError(
          absl::StrCat("--window must be >= 2 (a window of w tokens predicts w - 1 of them), got ",
                       o->window, " (hint: leave it out to use the model's context)")));
    }
    std::vector<std::string> texts;
    for (const auto& f : o->files) {
      auto text = ReadTextFile(f);
      if (!text.ok()) return (void)Fail(text.status());
      texts.push_back(std::move(*text));
    }
    auto rt = LoadModel(o->m);
    if (!rt.ok()) return (void)Fail(rt.status());
    auto start = std::chrono::steady_clock::now();
    device::EvalOptions eo;
    eo.window = o->window;
    device::TextMetrics m = device::EvaluateTexts(*rt->model, *rt->tokenizer, texts, eo);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (m.tokens == 0) {
      return (void)Fail(absl::InvalidArgumentError(
          absl::StrCat("no tokens were scored in ", absl::StrJoin(o->files, ", "),
                       ": the text is empty (hint: give a file with at least one word)")));
    }
    if (o->json) {
      nlohmann::json j = m.ToJson();
      j["files"] = o->files;
      j["seconds"] = secs;
      j["tokens_per_second"] = m.tokens / std::max(secs, 1e-9);
      PrintJson(j);
    } else {
      std::printf("tokens      %lld\nnll         %.6f nats\nperplexity  %.4f\n",
                  static_cast<long long>(m.tokens), m.mean_nll(), m.perplexity());
    }
  });
}

}  // namespace fedlora::cli
