// The flags every inference command shares (--model, --adapter, --threads) and loading them.
#ifndef FEDLORA_TOOLS_MODEL_FLAGS_H_
#define FEDLORA_TOOLS_MODEL_FLAGS_H_

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli_common.h"
#include "fedlora/device/runtime.h"
#include "fedlora/model/threads.h"

namespace fedlora::cli {

struct ModelFlags {
  std::string model;
  std::vector<std::string> adapters;
  int threads = 0;
};

inline void AddModelFlags(CLI::App* cmd, ModelFlags* f) {
  cmd->add_option("--model", f->model, "Hugging Face model directory")->required();
  // One directory per --adapter, so a following positional argument is not swallowed.
  cmd->add_option("--adapter", f->adapters, "PEFT adapter directory (repeatable, applied in turn)")
      ->allow_extra_args(false);
  AddThreadsOption(cmd, &f->threads);
}

// Applies the thread setting, then loads the model, tokenizer and adapters.
inline absl::StatusOr<device::Runtime> LoadModel(const ModelFlags& f) {
  model::ConfigureThreads({f.threads, 1});
  return device::LoadRuntime(f.model, f.adapters);
}

}  // namespace fedlora::cli

#endif  // FEDLORA_TOOLS_MODEL_FLAGS_H_
