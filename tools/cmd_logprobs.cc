// fedlora logprobs --model DIR [--adapter DIR]... [--top K] [--json] TEXT...
// Next-token log-probabilities at every position of each text ([BOS] + its ids): what an
// exported model is checked against in another runtime (tests/gguf, docs/releases.md).
#include <torch/types.h>
#include <torch/utils.h>

#include "cli_common.h"
#include "model_flags.h"

namespace fedlora::cli {

void RegisterCommand_logprobs(CLI::App& app) {
  struct Opts {
    ModelFlags m;
    std::vector<std::string> texts;
    int64_t top = 10;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "logprobs",
      "next-token log-probabilities (natural log) after every prefix of each text: the top K "
      "tokens per position");
  cmd->footer(
      "Examples:\n"
      "  fedlora logprobs --model base --json \"the quick brown\"\n"
      "  fedlora logprobs --model base --adapter personal --top 0 --json \"hello\"   # whole vocab\n"
      "Position i holds the distribution of the token after ids[0..i] (ids start with BOS).");
  AddModelFlags(cmd, &o->m);
  cmd->add_option("texts", o->texts, "texts to score")->required();
  cmd->add_option("--top", o->top, "tokens per position, most likely first (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    auto rt = LoadModel(o->m);
    if (!rt.ok()) return (void)Fail(rt.status());
    torch::NoGradGuard no_grad;
    nlohmann::json prompts = nlohmann::json::array();
    for (const std::string& text : o->texts) {
      const std::vector<int64_t> ids = rt->tokenizer->EncodeWithBos(text);
      const auto t = static_cast<int64_t>(ids.size());
      if (t > rt->model->config().max_position_embeddings) {
        return (void)Fail(absl::InvalidArgumentError(absl::StrCat(
            "text of ", t, " tokens is longer than the model's context (",
            rt->model->config().max_position_embeddings, "): \"", text.substr(0, 40), "...\"")));
      }
      torch::Tensor input = torch::tensor(ids, torch::kLong).reshape({1, t});
      torch::Tensor lp =
          torch::log_softmax(rt->model->Forward(input)[0].to(torch::kDouble), /*dim=*/-1);
      const int64_t vocab = lp.size(1);
      const int64_t k = o->top == 0 ? vocab : std::min(o->top, vocab);
      auto [vals, idx] = lp.topk(k, /*dim=*/-1);
      nlohmann::json positions = nlohmann::json::array();
      for (int64_t p = 0; p < t; ++p) {
        nlohmann::json top = nlohmann::json::array();
        for (int64_t j = 0; j < k; ++j) {
          top.push_back({idx[p][j].item<int64_t>(), vals[p][j].item<double>()});
        }
        positions.push_back(std::move(top));
      }
      std::vector<std::string> pieces;
      for (int64_t id : ids) pieces.push_back(rt->tokenizer->IdToPiece(id));
      prompts.push_back({{"text", text}, {"ids", ids}, {"pieces", pieces}, {"top", positions}});
    }
    if (o->json) return PrintJson({{"model", o->m.model}, {"adapters", o->m.adapters},
                                   {"prompts", prompts}});
    for (const auto& p : prompts) {
      std::printf("%s\n", p["text"].get<std::string>().c_str());
      const auto& ids = p["ids"];
      for (size_t i = 0; i < ids.size(); ++i) {
        const auto& best = p["top"][i][0];
        std::printf("  after %-16s next %-16s %.4f\n", p["pieces"][i].get<std::string>().c_str(),
                    rt->tokenizer->IdToPiece(best[0].get<int64_t>()).c_str(),
                    best[1].get<double>());
      }
    }
  });
}

}  // namespace fedlora::cli
