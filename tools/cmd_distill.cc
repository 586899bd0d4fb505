// fedlora distill --teacher DIR --out DIR --data PATH [--hidden H --layers L ...] [--temperature T]
#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "fedlora/common/progress.h"
#include "fedlora/device/distill.h"
#include "fedlora/model/threads.h"
#include "text_input.h"
#include "train_flags.h"

namespace fedlora::cli {

void RegisterCommand_distill(CLI::App& app) {
  struct Opts {
    std::string teacher, out, init = "random";
    std::vector<std::string> data;
    device::DistillOptions d;
    TrainFlags train;
    int threads = 0;
    bool json = false, force = false;
  };
  auto o = std::make_shared<Opts>();
  o->train.lr = 3e-3;
  o->train.schedule = "cosine";
  o->train.warmup = 20;
  o->train.steps = 300;
  o->train.batch = 16;
  auto* cmd = app.add_subcommand(
      "distill",
      "train a smaller student model on a teacher's soft labels (knowledge distillation)");
  cmd->add_option("--teacher", o->teacher, "teacher model directory (Hugging Face layout)")
      ->required();
  cmd->add_option("--out", o->out, "output student model directory")->required();
  cmd->add_option("--data", o->data, "text file(s) or directory, one document/message per line")
      ->required();
  cmd->add_option("--hidden", o->d.hidden_size, "student hidden size (0 = teacher's)")
      ->capture_default_str();
  cmd->add_option("--layers", o->d.num_layers, "student decoder layers (0 = teacher's)")
      ->capture_default_str();
  cmd->add_option("--heads", o->d.num_heads, "student attention heads (0 = teacher's)")
      ->capture_default_str();
  cmd->add_option("--kv-heads", o->d.num_kv_heads,
                  "student key/value heads (0 = teacher's if it divides --heads, else --heads)")
      ->capture_default_str();
  cmd->add_option("--intermediate", o->d.intermediate_size,
                  "student MLP size (0 = the teacher's ratio to hidden)")
      ->capture_default_str();
  cmd->add_option("--temperature", o->d.temperature, "softmax temperature T of the soft labels")
      ->capture_default_str()
      ->check(GreaterThan(0));
  cmd->add_option("--alpha", o->d.alpha,
                  "weight of alpha*T^2*KL against (1-alpha)*cross-entropy, in [0, 1]")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--init", o->init,
                  "random, or truncate (teacher's embeddings and first --layers layers)")
      ->capture_default_str();
  cmd->add_option("--seq", o->d.seq_len, "tokens per window (0 = min(128, teacher context))")
      ->capture_default_str();
  cmd->add_option("--holdout", o->d.holdout_fraction,
                  "fraction of the lines (the last ones) held out for perplexity")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  AddTrainFlags(cmd, &o->train);
  AddThreadsOption(cmd, &o->threads);
  cmd->add_flag("--force", o->force, "overwrite a model already in --out");
  cmd->add_flag("--json", o->json, "print one JSON summary");
  cmd->footer(
      "Examples:\n"
      "  fedlora distill --teacher base --data public.txt --out student --hidden 128 --layers 2\n"
      "  fedlora distill --teacher base --data ../shared/data/wikitext2/valid.txt --out student "
      "\\\n"
      "      --layers 2 --init truncate --temperature 2 --alpha 0.7 --steps 500 --json\n"
      "The student shares the teacher's tokenizer; loss = alpha*T^2*KL + (1-alpha)*CE.");
  cmd->callback([o] {
    model::ConfigureThreads({o->threads, 1});
    auto init = device::ParseStudentInit(o->init);
    if (!init.ok()) return (void)Fail(init.status());
    o->d.init = *init;
    if (absl::Status s = ToTrainOptions(o->train, &o->d.train); !s.ok()) return (void)Fail(s);
    if (!std::filesystem::is_directory(o->teacher)) {
      return (void)Fail(absl::NotFoundError(
          "distill: --teacher " + o->teacher +
          " is not a directory (hint: give a Hugging Face model directory, e.g. one written by "
          "fedlora pretrain)"));
    }
    auto lines = ReadTextLines(o->data);
    if (!lines.ok()) return (void)Fail(lines.status());
    std::unique_ptr<ProgressBar> bar;
    auto on_step = [&](const device::DistillStep& s) {
      if (!bar) bar = std::make_unique<ProgressBar>("distill", s.total, !o->json);
      bar->Update(s.step,
                  absl::StrFormat("loss %.3f kl %.3f ce %.3f", s.loss, s.parts.kl, s.parts.ce));
    };
    auto r = device::Distill(o->teacher, *lines, o->out, o->d, o->force, on_step);
    if (bar) bar->Finish();
    if (!r.ok()) return (void)Fail(r.status());
    for (const auto& w : r->warnings) std::fprintf(stderr, "fedlora: warning: %s\n", w.c_str());
    const auto& st = r->stats;
    auto last = [](const std::vector<double>& v) { return v.empty() ? 0.0 : v.back(); };
    auto first = [](const std::vector<double>& v) { return v.empty() ? 0.0 : v.front(); };
    nlohmann::json j = {{"out", o->out},
                        {"teacher_parameters", r->teacher_config.NumParameters()},
                        {"student_parameters", r->student_config.NumParameters()},
                        {"student",
                         {{"hidden", r->student_config.hidden_size},
                          {"layers", r->student_config.num_hidden_layers},
                          {"heads", r->student_config.num_attention_heads},
                          {"kv_heads", r->student_config.num_key_value_heads},
                          {"intermediate", r->student_config.intermediate_size}}},
                        {"temperature", o->d.temperature},
                        {"alpha", o->d.alpha},
                        {"init", o->init},
                        {"steps", st.steps},
                        {"train_tokens", r->train_tokens},
                        {"first_loss", first(st.losses)},
                        {"final_loss", last(st.losses)},
                        {"final_kl", last(st.kl)},
                        {"final_ce", last(st.ce)},
                        {"heldout_tokens", r->after.tokens},
                        {"teacher_perplexity", r->after.teacher_perplexity()},
                        {"student_perplexity", r->after.student_perplexity()},
                        {"student_perplexity_before", r->before.student_perplexity()},
                        {"heldout_kl", r->after.kl},
                        {"heldout_kl_before", r->before.kl},
                        {"seconds", st.seconds},
                        {"warnings", r->warnings}};
    if (o->json) return PrintJson(j);
    std::printf(
        "distilled %s: %lld parameters (teacher %lld, %.2fx smaller), %lld steps, loss %.3f -> "
        "%.3f, %.1f s\n"
        "held-out (%lld tokens): perplexity teacher %.2f, student %.2f (untrained %.2f); "
        "KL to teacher %.3f (untrained %.3f)\n",
        o->out.c_str(), static_cast<long long>(r->student_config.NumParameters()),
        static_cast<long long>(r->teacher_config.NumParameters()),
        static_cast<double>(r->teacher_config.NumParameters()) /
            static_cast<double>(std::max<int64_t>(r->student_config.NumParameters(), 1)),
        static_cast<long long>(st.steps), first(st.losses), last(st.losses), st.seconds,
        static_cast<long long>(r->after.tokens), r->after.teacher_perplexity(),
        r->after.student_perplexity(), r->before.student_perplexity(), r->after.kl, r->before.kl);
  });
}

}  // namespace fedlora::cli
