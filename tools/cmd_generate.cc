// fedlora generate --model DIR --prompt TEXT [-n N] [--top-k K] [--temperature T] [--seed S]
#include "cli_common.h"
#include "fedlora/device/generate.h"
#include "model_flags.h"

namespace fedlora::cli {

void RegisterCommand_generate(CLI::App& app) {
  struct Opts {
    ModelFlags m;
    std::string prompt;
    device::GenerateOptions gen;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("generate", "continue a prompt (top-k / temperature sampling)");
  AddModelFlags(cmd, &o->m);
  cmd->add_option("--prompt", o->prompt, "text to continue")->required();
  cmd->add_option("-n", o->gen.max_new_tokens, "new tokens (default 32)")->check(AtLeast(0));
  cmd->add_option("--top-k", o->gen.top_k,
                  "sample among the k most likely (default 40; 1 = greedy)");
  cmd->add_option("--temperature", o->gen.temperature,
                  "softmax temperature (default 0.8; 0 = greedy)");
  cmd->add_option("--seed", o->gen.seed, "sampling seed (default 0)");
  auto* ignore_eos = cmd->add_flag("--ignore-eos", "keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o, ignore_eos] {
    if (ignore_eos->count()) o->gen.stop_at_eos = false;
    auto rt = LoadModel(o->m);
    if (!rt.ok()) return (void)Fail(rt.status());
    auto r = device::Generate(*rt->model, *rt->tokenizer, o->prompt, o->gen);
    if (!r.ok()) return (void)Fail(r.status());
    if (r->stopped_early == "context") {
      std::fprintf(stderr,
                   "fedlora: warning: stopped after %zu of %d new tokens: the model's context is "
                   "%lld tokens (max_position_embeddings) and the prompt took %zu\n",
                   r->new_ids.size(), o->gen.max_new_tokens,
                   static_cast<long long>(rt->model->config().max_position_embeddings),
                   r->prompt_ids.size());
    }
    if (o->json) {
      PrintJson({{"prompt", o->prompt},
                 {"completion", r->text},
                 {"new_tokens", r->new_ids.size()},
                 {"stopped_early", r->stopped_early}});
    } else {
      std::cout << o->prompt << r->text << "\n";
    }
  });
}

}  // namespace fedlora::cli
