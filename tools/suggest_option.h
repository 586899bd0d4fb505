// "did you mean": names the closest option or subcommand when the command line has an unknown
// one (CLI11's ExtrasError only says "arguments were not expected").
#ifndef FEDLORA_TOOLS_SUGGEST_OPTION_H_
#define FEDLORA_TOOLS_SUGGEST_OPTION_H_

#include <CLI/CLI.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace fedlora::cli {

inline size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The closest of `candidates` to `word` within a third of its length (at least 2 edits), or "".
inline std::string Closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = EditDistance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

// The deepest subcommand the parser entered.
inline CLI::App* DeepestSubcommand(CLI::App* app) {
  while (!app->get_subcommands().empty()) app = app->get_subcommands().front();
  return app;
}

// One line per unexpected argument in `extras`, naming the nearest option or subcommand of the
// command it was given to.
inline std::string SuggestFor(CLI::App& root, const std::vector<std::string>& extras) {
  CLI::App* cmd = DeepestSubcommand(&root);
  std::string path = "fedlora";
  std::vector<std::string> names;
  {
    std::vector<CLI::App*> chain;
    for (CLI::App* a = cmd; a != nullptr && a != &root; a = a->get_parent()) chain.push_back(a);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) path += " " + (*it)->get_name();
  }
  std::string out;
  bool after_option = false;
  for (size_t idx = 0; idx < extras.size(); ++idx) {
    const std::string& e = extras[idx];
    if (e.rfind("-", 0) != 0 && after_option) {  // the value of the unknown option before it
      after_option = false;
      continue;
    }
    after_option = e.rfind("-", 0) == 0 && e.find('=') == std::string::npos;
    std::vector<std::string> candidates;
    const bool is_option = e.rfind("-", 0) == 0;
    const std::string bare = e.substr(0, e.find('='));
    if (is_option) {
      for (const CLI::Option* o : cmd->get_options()) {
        for (const auto& l : o->get_lnames()) candidates.push_back("--" + l);
      }
    } else {
      for (const CLI::App* s : cmd->get_subcommands({})) candidates.push_back(s->get_name());
    }
    const std::string near = Closest(bare, candidates);
    out += "fedlora: error: unknown " + std::string(is_option ? "option " : "argument ") + bare +
           " for '" + path + "'";
    if (!near.empty()) out += "; did you mean " + near + "?";
    out += " (see " + path + " --help)\n";
    // A misspelled subcommand: what follows belongs to it, not to this command.
    if (!is_option && idx == 0 && !near.empty()) break;
  }
  return out;
}

// For an ExtrasError ("The following arguments were not expected: a b").
inline std::string SuggestForExtras(CLI::App& root, const std::string& what) {
  const auto colon = what.find(':');
  if (colon == std::string::npos) return "";
  std::vector<std::string> extras;
  std::string tok;
  for (char ch : what.substr(colon + 1) + " ") {
    if (ch == ' ') {
      if (!tok.empty()) extras.push_back(tok);
      tok.clear();
    } else {
      tok += ch;
    }
  }
  return SuggestFor(root, extras);
}

// For a RequiredError (a required option or subcommand missing) caused by a typo: the
// arguments the parser could not place are named with their nearest match. Empty when none.
inline std::string SuggestForMissing(CLI::App& root) {
  CLI::App* cmd = DeepestSubcommand(&root);
  std::vector<std::string> unknown;
  const std::vector<std::string> rest = cmd->remaining();
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i].rfind("-", 0) == 0) {
      unknown.push_back(rest[i]);
    } else if (i == 0 && !cmd->get_subcommands({}).empty()) {
      unknown.push_back(rest[i]);  // a misspelled subcommand
    }
  }
  return unknown.empty() ? "" : SuggestFor(root, unknown);
}

}  // namespace fedlora::cli

#endif  // FEDLORA_TOOLS_SUGGEST_OPTION_H_
