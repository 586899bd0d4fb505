// fedlora pretrain --corpus FILE... --out DIR [--vocab N --hidden H --layers L --steps S ...]
#include "cli_common.h"
#include "fedlora/device/pretrain.h"
#include "fedlora/model/threads.h"
#include "train_flags.h"

namespace fedlora::cli {

void RegisterCommand_pretrain(CLI::App& app) {
  struct Opts {
    std::vector<std::string> corpus;
    std::string out;
    device::PretrainOptions p;
    TrainFlags train;
    int threads = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  o->train.lr = 3e-3;
  o->train.schedule = "cosine";
  o->train.warmup = 20;
  o->train.steps = 300;
  o->train.batch = 16;
  auto* cmd = app.add_subcommand(
      "pretrain", "train a small base model and its tokenizer from scratch on public text");
  cmd->add_option("--corpus", o->corpus, "text files, one document/message per line")->required();
  cmd->add_option("--out", o->out, "output model directory (Hugging Face layout)")->required();
  cmd->add_option("--vocab", o->p.vocab_size, "sentencepiece vocabulary")->capture_default_str();
  cmd->add_option("--hidden", o->p.hidden_size, "hidden size")->capture_default_str();
  cmd->add_option("--layers", o->p.num_layers, "decoder layers")->capture_default_str();
  cmd->add_option("--heads", o->p.num_heads, "attention heads")->capture_default_str();
  cmd->add_option("--kv-heads", o->p.num_kv_heads, "key/value heads (0 = heads)")
      ->capture_default_str();
  cmd->add_option("--ff", o->p.intermediate_size, "MLP size (0 = 8/3 hidden)")
      ->capture_default_str();
  cmd->add_option("--context", o->p.context, "context length")->capture_default_str();
  AddTrainFlags(cmd, &o->train);
  AddThreadsOption(cmd, &o->threads);
  cmd->add_flag("--json", o->json, "print one JSON summary");
  cmd->callback([o] {
    model::ConfigureThreads({o->threads, 1});
    absl::Status s = ToTrainOptions(o->train, &o->p.train);
    if (!s.ok()) return (void)Fail(s);
    o->p.train.progress = !o->json;
    auto r = device::Pretrain(o->corpus, o->out, o->p);
    if (!r.ok()) return (void)Fail(r.status());
    nlohmann::json j = {{"out", o->out},
                        {"parameters", r->config.NumParameters()},
                        {"vocab", r->config.vocab_size},
                        {"corpus_tokens", r->corpus_tokens},
                        {"steps", r->stats.steps},
                        {"first_loss", r->stats.first_loss},
                        {"last_loss", r->stats.last_loss},
                        {"seconds", r->stats.seconds},
                        {"tokens_per_second", r->stats.tokens / std::max(r->stats.seconds, 1e-9)}};
    if (o->json) {
      PrintJson(j);
    } else {
      std::printf(
          "pretrained %s: %lld parameters, vocab %lld, %lld steps, loss %.3f -> %.3f, %.1f s\n",
          o->out.c_str(), static_cast<long long>(r->config.NumParameters()),
          static_cast<long long>(r->config.vocab_size), static_cast<long long>(r->stats.steps),
          r->stats.first_loss, r->stats.last_loss, r->stats.seconds);
    }
  });
}

}  // namespace fedlora::cli
