// fedlora eval --model DIR [--adapter DIR] --data FILE|DIR [--json]
#include "cli_common.h"
#include "fedlora/device/evaluate.h"
#include "model_flags.h"
#include "text_input.h"

namespace fedlora::cli {

void RegisterCommand_eval(CLI::App& app) {
  struct Opts {
    ModelFlags m;
    std::vector<std::string> data;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "eval",
      "perplexity, next-token top-1/top-3 and next-word top-3 accuracy on text. Each line is "
      "scored as its own message ([BOS] + line), as a keyboard sees it; `perplexity` scores "
      "whole files as one stream, with context across lines, so its number is usually lower.");
  AddModelFlags(cmd, &o->m);
  cmd->add_option("--data", o->data, "text file(s) or directory, one message per line")->required();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    auto rt = LoadModel(o->m);
    if (!rt.ok()) return (void)Fail(rt.status());
    auto lines = ReadTextLines(o->data);
    if (!lines.ok()) return (void)Fail(lines.status());
    device::TextMetrics m = device::EvaluateTexts(*rt->model, *rt->tokenizer, *lines);
    if (o->json) {
      PrintJson(m.ToJson());
    } else {
      std::printf(
          "tokens            %lld\nperplexity        %.3f\nnext-token top-1  %.4f\n"
          "next-token top-3  %.4f\nnext-word top-3   %.4f (%lld words)\n"
          "keystroke savings %.4f (%lld of %lld keystrokes)\n",
          static_cast<long long>(m.tokens), m.perplexity(), m.next_token_top1(),
          m.next_token_top3(), m.next_word_top3(), static_cast<long long>(m.words),
          m.keystroke_savings(), static_cast<long long>(m.key_saved),
          static_cast<long long>(m.key_chars));
    }
  });
}

}  // namespace fedlora::cli
