// fedlora suggest --model DIR --prefix TEXT [-k 3] [--json]
#include <chrono>

#include "cli_common.h"
#include "fedlora/device/generate.h"
#include "model_flags.h"

namespace fedlora::cli {

void RegisterCommand_suggest(CLI::App& app) {
  struct Opts {
    ModelFlags m;
    std::string prefix;
    int k = 3;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("suggest", "the k most likely next words (a keyboard's strip)");
  AddModelFlags(cmd, &o->m);
  cmd->add_option("--prefix", o->prefix, "text typed so far")->required();
  cmd->add_option("-k", o->k, "number of suggestions (default 3)")->check(GreaterThan(0));
  cmd->add_flag("--json", o->json, "print one JSON object with the latency");
  cmd->callback([o] {
    auto rt = LoadModel(o->m);
    if (!rt.ok()) return (void)Fail(rt.status());
    // One warm-up call, then the measured one: the latency a keyboard sees per keystroke.
    (void)device::SuggestNextWords(*rt->model, *rt->tokenizer, o->prefix, o->k);
    auto start = std::chrono::steady_clock::now();
    auto s = device::SuggestNextWords(*rt->model, *rt->tokenizer, o->prefix, o->k);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!s.ok()) return (void)Fail(s.status());
    if (o->json) {
      nlohmann::json words = nlohmann::json::array();
      for (const auto& w : *s) words.push_back({{"word", w.word}, {"log_prob", w.log_prob}});
      PrintJson({{"prefix", o->prefix}, {"suggestions", words}, {"latency_ms", ms}});
    } else {
      for (const auto& w : *s) std::printf("%-20s %.3f\n", w.word.c_str(), w.log_prob);
    }
  });
}

}  // namespace fedlora::cli
