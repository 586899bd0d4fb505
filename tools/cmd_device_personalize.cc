// fedlora device personalize --model DIR --global ADAPTER --text FILE --state DIR
// Dual adapters on a device: a private adapter trained on the user's text over the frozen
// global adapter, kept in <state>/personal and never sent (device/personal_adapter.h).
#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "fedlora/device/personal_adapter.h"
#include "fedlora/device/runtime.h"
#include "fedlora/model/threads.h"
#include "model_flags.h"
#include "text_input.h"

namespace fedlora::cli {

void RegisterCommand_device_personalize(CLI::App& app) {
  auto* parent =
      GetOrAddSubcommand(app, "device", "a device (phone): enrol, run rounds, install releases");
  struct Opts {
    std::string model, global, state;
    std::vector<std::string> text;
    int rank = 4, threads = 0;
    int64_t steps = 20, seq = 64;
    double lr = 5e-3;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand(
      "personalize", "train a private adapter on the user's text over the global one (never sent)");
  cmd->footer(
      "Example:\n  fedlora device personalize --model M --global ADAPTER --text my-text.txt "
      "--state phone1\n  fedlora suggest --model M --adapter ADAPTER --adapter phone1/personal "
      "--prefix \"see you\"\nThe global adapter stays frozen; the personal one (rank --rank, "
      "scaling 2) trains on top of it.\n`device run` trains and sends the global adapter's "
      "delta only, with the personal adapter detached.");
  cmd->add_option("--model", o->model, "the base model this device runs")->required();
  cmd->add_option("--global", o->global, "the global adapter (PEFT directory)")->required();
  cmd->add_option("--text", o->text, "the user's text: file (one message per line) or dir")
      ->required();
  cmd->add_option("--state", o->state, "device state folder; writes <state>/personal")
      ->required();
  cmd->add_option("--rank", o->rank, "rank of the personal adapter")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--steps", o->steps, "training steps")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", o->lr, "AdamW learning rate")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq", o->seq, "tokens per training window")->capture_default_str()
      ->check(CLI::Range(2, 1 << 16));
  AddThreadsOption(cmd, &o->threads);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    model::ConfigureThreads({o->threads, 1});
    auto lines = ReadTextLines(o->text);
    if (!lines.ok()) return (void)Fail(lines.status());
    auto rt = device::LoadRuntime(o->model);
    if (!rt.ok()) return (void)Fail(rt.status());
    auto global = adapters::LoraAdapter::LoadPeft(o->global);
    if (!global.ok()) return (void)Fail(global.status());
    device::PersonalOptions po;
    po.lora.rank = o->rank;
    po.lora.alpha = 2.0 * o->rank;
    po.lora.targets = global->config().targets;
    po.train.max_steps = o->steps;
    po.train.optimizer.lr = o->lr;
    po.train.progress = !o->json;
    po.seq_len = o->seq;
    SecureRandom rng;  // a real device: the init and the window order from the OS generator
    auto r = device::TrainPersonalAdapter(*rt->model, *rt->tokenizer, *global, *lines, po, rng);
    if (!r.ok()) return (void)Fail(r.status());
    const std::string dir = device::PersonalAdapterDir(o->state);
    if (auto s = r->adapter.SavePeft(dir); !s.ok()) return (void)Fail(s);
    nlohmann::json out = {{"personal_adapter", dir},
                          {"rank", o->rank},
                          {"parameters", r->adapter.NumParameters()},
                          {"steps", r->stats.steps},
                          {"first_loss", r->stats.first_loss},
                          {"last_loss", r->stats.last_loss},
                          {"seconds", r->stats.seconds}};
    if (o->json) return PrintJson(out);
    std::printf("personal adapter (rank %d, %lld values): %s\nloss %.4f -> %.4f in %lld steps "
                "(%.1f s); it never leaves the device\n",
                o->rank, static_cast<long long>(r->adapter.NumParameters()), dir.c_str(),
                r->stats.first_loss, r->stats.last_loss, static_cast<long long>(r->stats.steps),
                r->stats.seconds);
  });
}

}  // namespace fedlora::cli
