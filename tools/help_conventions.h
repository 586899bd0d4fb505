// Help conventions applied to the whole command tree after registration: every leaf command
// that lacks one gets an "Examples:" footer from the table below, and the options of the
// commands whose bound values are their real defaults show them like every other command.
#ifndef FEDLORA_TOOLS_HELP_CONVENTIONS_H_
#define FEDLORA_TOOLS_HELP_CONVENTIONS_H_

#include <CLI/CLI.hpp>

#include <map>
#include <set>
#include <string>

namespace fedlora::cli {

inline const std::map<std::string, std::string>& HelpExamples() {
  static const std::map<std::string, std::string> kExamples = {
      {"perplexity",
       "  fedlora perplexity --model base notes.txt\n"
       "  fedlora perplexity --model base --adapter my-adapter --json notes.txt"},
      {"generate",
       "  fedlora generate --model base --prompt 'see you at' -n 20\n"
       "  fedlora generate --model base --adapter my-adapter --prompt 'hi' --top-k 1"},
      {"suggest",
       "  fedlora suggest --model base --prefix 'see you at the'\n"
       "  fedlora suggest --model base --adapter my-adapter --prefix 'good' -k 5 --json"},
      {"train",
       "  fedlora train --model base --data my-messages.txt --out my-adapter\n"
       "  fedlora train --model base --data my-messages.txt --out my-adapter --steps 200 \\\n"
       "      --rank 16 --targets q_proj k_proj v_proj o_proj"},
      {"eval",
       "  fedlora eval --model base --data test.txt\n"
       "  fedlora eval --model base --adapter my-adapter --data test.txt --json"},
      {"pretrain",
       "  fedlora pretrain --corpus public.txt --out base\n"
       "  fedlora pretrain --corpus a.txt b.txt --out base --vocab 2000 --hidden 256 --layers 4"},
      {"sim",
       "  fedlora sim\n"
       "  fedlora sim --config examples/sim-personas.ini --set rounds.rounds=20 --out run1"},
      {"privacy epsilon",
       "  fedlora privacy epsilon --q 0.01 --noise 1.0 --steps 1000 --delta 1e-6\n"
       "  fedlora privacy epsilon --q 0.25 --noise 0.7 --steps 10 --delta 1e-5 --sampling fixed"},
      {"privacy noise", "  fedlora privacy noise --q 0.01 --epsilon 8 --steps 1000 --delta 1e-6"},
      {"privacy ddg",
       "  fedlora privacy ddg --dim 100000 --clients 100 --clip 0.5 --noise 1.0 --bits 20 \\\n"
       "      --q 0.01 --steps 1000 --delta 1e-6"},
      {"data stats", "  fedlora data stats --data ../shared/data/shakespeare"},
      {"data personas", "  fedlora data personas --out personas --users 200"},
      {"bench secagg",
       "  fedlora bench secagg --devices 500 --dim 100000 --graph kregular\n"
       "  fedlora bench secagg --devices 100 --dim 100000 --graph complete --dropout 0.1 --json"},
      {"version", "  fedlora version\n  fedlora --version"},
  };
  return kExamples;
}

inline void ApplyHelpConventions(CLI::App* app, const std::string& path = "") {
  static const std::set<std::string> kShowDefaults = {
      "privacy epsilon", "privacy noise", "privacy ddg", "bench secagg"};
  if (kShowDefaults.count(path)) {
    for (CLI::Option* o : app->get_options()) {
      if (o->get_type_size() != 0 && !o->get_required() && o->get_default_str().empty()) {
        o->capture_default_str();
      }
    }
  }
  auto it = HelpExamples().find(path);
  if (it != HelpExamples().end() && app->get_footer().empty()) {
    app->footer("Examples:\n" + it->second);
  }
  for (CLI::App* sub : app->get_subcommands({})) {
    ApplyHelpConventions(sub, path.empty() ? sub->get_name() : path + " " + sub->get_name());
  }
}

}  // namespace fedlora::cli

#endif  // FEDLORA_TOOLS_HELP_CONVENTIONS_H_
