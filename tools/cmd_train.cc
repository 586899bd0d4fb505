// fedlora train --model DIR --data FILE|DIR --out ADAPTER_DIR [--rank R --alpha A --targets ...]
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/device/base_identity.h"
#include "fedlora/device/runtime.h"
#include "fedlora/model/threads.h"
#include "text_input.h"
#include "train_flags.h"

namespace fedlora::cli {

void RegisterCommand_train(CLI::App& app) {
  struct Opts {
    std::string model, out, init_adapter;
    std::vector<std::string> data;
    int rank = 8;
    double alpha = 16, dropout = 0.0;
    bool rslora = false;
    std::vector<std::string> targets = {"q_proj", "v_proj"};
    std::vector<int> layers;
    int64_t seq = 0;
    TrainFlags train;
    int threads = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  o->train.lr = 2e-3;
  auto* cmd = app.add_subcommand("train", "personalize: train a LoRA adapter on one user's text");
  cmd->add_option("--model", o->model, "base model directory")->required();
  cmd->add_option("--data", o->data, "text file(s) or directory, one message per line")->required();
  cmd->add_option("--out", o->out, "output PEFT adapter directory")->required();
  cmd->add_option("--init-adapter", o->init_adapter,
                  "start from this PEFT adapter instead of a fresh one");
  cmd->add_option("--rank", o->rank, "LoRA rank")->capture_default_str()->check(GreaterThan(0));
  cmd->add_option("--alpha", o->alpha, "LoRA alpha")->capture_default_str();
  cmd->add_flag("--rslora", o->rslora, "scale by alpha/sqrt(r) instead of alpha/r");
  cmd->add_option("--dropout", o->dropout, "LoRA dropout")->capture_default_str();
  cmd->add_option("--targets", o->targets,
                  "projections: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj")
      ->capture_default_str();
  cmd->add_option("--layers", o->layers, "layer indices (default: all)");
  cmd->add_option("--seq", o->seq, "tokens per training window (0 = the model's context)")
      ->capture_default_str();
  AddTrainFlags(cmd, &o->train);
  AddThreadsOption(cmd, &o->threads);
  cmd->add_flag("--json", o->json, "print one JSON summary");
  cmd->callback([o] {
    model::ConfigureThreads({o->threads, 1});
    auto rt = device::LoadRuntime(o->model);
    if (!rt.ok()) return (void)Fail(rt.status());
    auto lines = ReadTextLines(o->data);
    if (!lines.ok()) return (void)Fail(lines.status());
    absl::StatusOr<adapters::LoraAdapter> adapter;
    if (!o->init_adapter.empty()) {
      adapter = adapters::LoraAdapter::LoadPeft(o->init_adapter);
    } else {
      adapters::LoraConfig lc;
      lc.rank = o->rank;
      lc.alpha = o->alpha;
      lc.use_rslora = o->rslora;
      lc.dropout = o->dropout;
      lc.layers = o->layers;
      lc.targets.clear();
      for (const auto& t : o->targets) {
        model::Proj p;
        if (!model::ParseProj(t, &p)) {
          return (void)Fail(absl::InvalidArgumentError(
              "unknown --targets entry '" + t +
              "' (use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)"));
        }
        lc.targets.push_back(p);
      }
      adapter = adapters::LoraAdapter::Create(rt->model->config(), lc, o->train.seed);
    }
    if (!adapter.ok()) return (void)Fail(adapter.status());
    if (auto s = adapter->Attach(*rt->model); !s.ok()) return (void)Fail(s);
    adapter->SetTrainable(true);
    device::TrainOptions to;
    if (auto s = ToTrainOptions(o->train, &to); !s.ok()) return (void)Fail(s);
    to.progress = !o->json;
    const int64_t ctx = rt->model->config().max_position_embeddings;
    const int64_t seq = o->seq > 0 ? o->seq : ctx;
    if (seq > ctx) {
      return (void)Fail(absl::InvalidArgumentError(
          absl::StrCat("--seq ", seq, " exceeds the model's max_position_embeddings ", ctx,
                       " (hint: use --seq ", ctx, " or less)")));
    }
    device::TokenWindows windows = device::MakeWindows(*rt->tokenizer, *lines, seq);
    const int64_t planned = device::PlannedSteps(windows.size(), to);
    if (planned > 0 && planned < 10) {
      std::fprintf(stderr,
                   "fedlora: warning: only %lld training step%s (%lld windows of %lld tokens, "
                   "batch %lld): the adapter will barely differ from its start (hint: add text, "
                   "or raise --epochs or --steps)\n",
                   static_cast<long long>(planned), planned == 1 ? "" : "s",
                   static_cast<long long>(windows.size()), static_cast<long long>(seq),
                   static_cast<long long>(to.batch_size));
    }
    auto stats = device::Train(*rt->model, adapter->Parameters(), windows, to);
    if (!stats.ok()) return (void)Fail(stats.status());
    if (auto s = adapter->SavePeft(o->out); !s.ok()) return (void)Fail(s);
    if (auto s = device::RecordAdapterBase(o->out, o->model); !s.ok()) return (void)Fail(s);
    nlohmann::json j = {{"out", o->out},
                        {"steps", stats->steps},
                        {"tokens", stats->tokens},
                        {"first_loss", stats->first_loss},
                        {"last_loss", stats->last_loss},
                        {"seconds", stats->seconds},
                        {"tokens_per_second", stats->tokens / std::max(stats->seconds, 1e-9)},
                        {"trainable_parameters", adapter->NumParameters()}};
    if (o->json) {
      PrintJson(j);
    } else {
      std::printf("saved %s: %lld steps, loss %.3f -> %.3f, %.0f tokens/s\n", o->out.c_str(),
                  static_cast<long long>(stats->steps), stats->first_loss, stats->last_loss,
                  j["tokens_per_second"].get<double>());
    }
  });
}

}  // namespace fedlora::cli
