// fedlora generate --model DIR --prompt TEXT [-n N] [--top-k K] [--temperature T] [--seed S]
#include "cli_common.h"
#include "fedlora/device/generate.h"
#include "fedlora/device/runtime.h"
#include "fedlora/model/threads.h"

namespace fedlora::cli {

void RegisterCommand_generate(CLI::App& app) {
  struct Opts {
    std::string model, prompt;
    std::vector<std::string> adapters;
    device::GenerateOptions gen;
    int threads = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("generate", "continue a prompt (top-k / temperature sampling)");
  cmd->add_option("--model", o->model, "Hugging Face model directory")->required();
  cmd->add_option("--adapter", o->adapters, "PEFT adapter directory (repeatable)");
  cmd->add_option("--prompt", o->prompt, "text to continue")->required();
  cmd->add_option("-n", o->gen.max_new_tokens, "new tokens (default 32)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->gen.top_k,
                  "sample among the k most likely (default 40; 1 = greedy)");
  cmd->add_option("--temperature", o->gen.temperature,
                  "softmax temperature (default 0.8; 0 = greedy)");
  cmd->add_option("--seed", o->gen.seed, "sampling seed (default 0)");
  AddThreadsOption(cmd, &o->threads);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    model::ConfigureThreads({o->threads, 1});
    auto rt = device::LoadRuntime(o->model, o->adapters);
    if (!rt.ok()) return (void)Fail(rt.status());
    auto r = device::Generate(*rt->model, *rt->tokenizer, o->prompt, o->gen);
    if (!r.ok()) return (void)Fail(r.status());
    if (o->json) {
      PrintJson(
          {{"prompt", o->prompt}, {"completion", r->text}, {"new_tokens", r->new_ids.size()}});
    } else {
      std::cout << o->prompt << r->text << "\n";
    }
  });
}

}  // namespace fedlora::cli
