#include "fedlora/device/distill.h"

#include <torch/types.h>
#include <torch/utils.h>
#include <torch/nn/functional/loss.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/device/optimizer.h"
#include "fedlora/device/runtime.h"
#include "fedlora/model/checkpoint.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;

// Per-position KL(softmax(t / T) || softmax(s / T)) over the last dimension: [N, T-1].
torch::Tensor PositionKl(const torch::Tensor& student, const torch::Tensor& teacher, double temp) {
  torch::Tensor log_p = torch::log_softmax(teacher.detach() / temp, -1);
  torch::Tensor log_q = torch::log_softmax(student / temp, -1);
  return (log_p.exp() * (log_p - log_q)).sum(-1);
}

// Next-token NLL per position: [N, T-1].
torch::Tensor PositionNll(const torch::Tensor& logits, const torch::Tensor& ids) {
  const int64_t t = ids.size(1), v = logits.size(-1);
  torch::Tensor nll = torch::nn::functional::cross_entropy(
      logits.narrow(1, 0, t - 1).reshape({-1, v}), ids.narrow(1, 1, t - 1).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return nll.view({ids.size(0), t - 1});
}

torch::Tensor TargetMask(const torch::Tensor& ids, const torch::Tensor& mask) {
  const int64_t t = ids.size(1);
  if (!mask.defined()) return torch::ones({ids.size(0), t - 1}, torch::kFloat);
  return mask.narrow(1, 1, t - 1).to(torch::kFloat);
}

absl::Status CheckLossSettings(double temperature, double alpha) {
  if (!(temperature > 0) || !std::isfinite(temperature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("distill: temperature ", temperature,
                     " is out of range; allowed: > 0 (hint: 1 to 4 is usual; 2 is the default)"));
  }
  if (!(alpha >= 0 && alpha <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distill: alpha ", alpha,
        " is out of range; allowed: 0..1 (1 = soft labels only, 0 = hard labels only)"));
  }
  return absl::OkStatus();
}

absl::Status CheckSameVocab(const model::LlamaConfig& teacher, const model::LlamaConfig& student) {
  if (teacher.vocab_size == student.vocab_size) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "distill: the student's vocab_size ", student.vocab_size, " differs from the teacher's ",
      teacher.vocab_size,
      "; allowed: the teacher's vocab_size (hint: the student shares the teacher's tokenizer, so "
      "its logits must cover the same vocabulary)"));
}

torch::Tensor Rows(const TokenWindows& w, const std::vector<int64_t>& idx, bool mask) {
  return (mask ? w.mask : w.ids).index_select(0, torch::tensor(idx, torch::kInt64));
}

}  // namespace

torch::Tensor DistillLoss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                          const torch::Tensor& ids, const torch::Tensor& mask, double temperature,
                          double alpha, DistillLossParts* parts) {
  TORCH_CHECK(student_logits.sizes() == teacher_logits.sizes(), "student logits ",
              student_logits.sizes(), " vs teacher logits ", teacher_logits.sizes());
  TORCH_CHECK(ids.dim() == 2 && ids.size(1) >= 2, "ids must be [N, T] with T >= 2");
  TORCH_CHECK(temperature > 0 && alpha >= 0 && alpha <= 1, "temperature > 0, alpha in [0, 1]");
  torch::Tensor valid = TargetMask(ids, mask);
  torch::Tensor count = valid.sum().clamp_min(1);
  const int64_t t = ids.size(1);
  torch::Tensor kl = (PositionKl(student_logits.narrow(1, 0, t - 1),
                                 teacher_logits.narrow(1, 0, t - 1), temperature) *
                      valid)
                         .sum() /
                     count;
  torch::Tensor ce = (PositionNll(student_logits, ids) * valid).sum() / count;
  if (parts != nullptr) {
    parts->kl = kl.item<double>();
    parts->ce = ce.item<double>();
  }
  return alpha * temperature * temperature * kl + (1 - alpha) * ce;
}

absl::StatusOr<StudentInit> ParseStudentInit(const std::string& name) {
  if (name == "random") return StudentInit::kRandom;
  if (name == "truncate") return StudentInit::kTruncate;
  return absl::InvalidArgumentError(
      absl::StrCat("distill: unknown --init '", name,
                   "'; allowed: random, truncate (truncate copies the teacher's first layers; "
                   "it needs the teacher's hidden, heads, kv heads and MLP sizes)"));
}

double DistillEval::teacher_perplexity() const { return std::exp(teacher_nll); }
double DistillEval::student_perplexity() const { return std::exp(student_nll); }

absl::StatusOr<DistillEval> EvaluateDistill(const model::LlamaModel& teacher,
                                            const model::LlamaModel& student,
                                            const TokenWindows& windows, double temperature,
                                            int64_t batch_size) {
  if (windows.size() == 0) {
    return absl::InvalidArgumentError(
        "distill: no windows to score (hint: the held-out text is empty or too short)");
  }
  FEDLORA_RETURN_IF_ERROR(CheckSameVocab(teacher.config(), student.config()));
  FEDLORA_RETURN_IF_ERROR(CheckLossSettings(temperature, 0));
  torch::NoGradGuard no_grad;
  double tn = 0, sn = 0, kl = 0, count = 0;
  const int64_t b = std::max<int64_t>(batch_size, 1);
  for (int64_t s = 0; s < windows.size(); s += b) {
    const int64_t n = std::min(b, windows.size() - s);
    torch::Tensor ids = windows.ids.narrow(0, s, n), mask = windows.mask.narrow(0, s, n);
    model::ForwardOptions fo;
    fo.attention_mask = mask;
    torch::Tensor tl = teacher.Forward(ids, fo), sl = student.Forward(ids, fo);
    torch::Tensor valid = TargetMask(ids, mask);
    const int64_t t = ids.size(1);
    tn += (PositionNll(tl, ids) * valid).sum().item<double>();
    sn += (PositionNll(sl, ids) * valid).sum().item<double>();
    kl += (PositionKl(sl.narrow(1, 0, t - 1), tl.narrow(1, 0, t - 1), temperature) * valid)
              .sum()
              .item<double>();
    count += valid.sum().item<double>();
  }
  DistillEval e;
  e.tokens = static_cast<int64_t>(count);
  if (count > 0) {
    e.teacher_nll = tn / count;
    e.student_nll = sn / count;
    e.kl = kl / count;
  }
  return e;
}

absl::StatusOr<model::LlamaConfig> StudentConfig(const model::LlamaConfig& teacher,
                                                 const DistillOptions& o) {
  for (auto [flag, v] : {std::tuple<const char*, int64_t>{"--hidden", o.hidden_size},
                         {"--layers", o.num_layers},
                         {"--heads", o.num_heads},
                         {"--kv-heads", o.num_kv_heads},
                         {"--intermediate", o.intermediate_size}}) {
    if (v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("distill: ", flag, " ", v,
                       " is out of range; allowed: >= 1, or 0 for the teacher's value"));
    }
  }
  if (o.vocab_size != 0 && o.vocab_size != teacher.vocab_size) {
    model::LlamaConfig asked = teacher;
    asked.vocab_size = o.vocab_size;
    return CheckSameVocab(teacher, asked);
  }
  model::LlamaConfig c = teacher;
  c.hidden_size = o.hidden_size > 0 ? o.hidden_size : teacher.hidden_size;
  c.num_hidden_layers = o.num_layers > 0 ? o.num_layers : teacher.num_hidden_layers;
  c.num_attention_heads = o.num_heads > 0 ? o.num_heads : teacher.num_attention_heads;
  if (o.num_kv_heads > 0) {
    c.num_key_value_heads = o.num_kv_heads;
  } else {
    c.num_key_value_heads = c.num_attention_heads % teacher.num_key_value_heads == 0
                                ? teacher.num_key_value_heads
                                : c.num_attention_heads;
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distill: --kv-heads ", c.num_key_value_heads, " does not divide --heads ",
        c.num_attention_heads, "; allowed: a divisor of --heads (0 = derive from the teacher)"));
  }
  const bool same_width =
      c.hidden_size == teacher.hidden_size && c.num_attention_heads == teacher.num_attention_heads;
  if (same_width) {
    c.head_dim = teacher.head_dim;
  } else if (c.hidden_size % c.num_attention_heads != 0 ||
             (c.hidden_size / c.num_attention_heads) % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distill: --hidden ", c.hidden_size, " does not split into --heads ", c.num_attention_heads,
        " heads of an even size; allowed: --hidden = --heads x an even head size (hint: rotary "
        "embeddings rotate pairs of dimensions; e.g. --hidden 128 --heads 4)"));
  } else {
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (o.intermediate_size > 0) {
    c.intermediate_size = o.intermediate_size;
  } else if (c.hidden_size != teacher.hidden_size) {
    const double ratio =
        static_cast<double>(teacher.intermediate_size) / static_cast<double>(teacher.hidden_size);
    c.intermediate_size =
        std::max<int64_t>(8, (static_cast<int64_t>(std::ceil(ratio * c.hidden_size)) + 7) / 8 * 8);
  }
  FEDLORA_RETURN_IF_ERROR(
      model::ParseLlamaConfig(model::LlamaConfigToJson(c), "distill: the student config").status());
  return c;
}

absl::StatusOr<model::LlamaModel> InitStudent(const model::LlamaModel& teacher,
                                              const model::LlamaConfig& c,
                                              const DistillOptions& o) {
  FEDLORA_RETURN_IF_ERROR(CheckSameVocab(teacher.config(), c));
  if (o.init == StudentInit::kRandom) {
    return model::LlamaModel::RandomInit(c, o.train.seed, o.init_std);
  }
  const model::LlamaConfig& t = teacher.config();
  std::vector<std::string> bad;
  for (auto [name, s, tv] :
       {std::tuple<const char*, int64_t, int64_t>{"hidden_size", c.hidden_size, t.hidden_size},
        {"num_attention_heads", c.num_attention_heads, t.num_attention_heads},
        {"num_key_value_heads", c.num_key_value_heads, t.num_key_value_heads},
        {"head_dim", c.head_dim, t.head_dim},
        {"intermediate_size", c.intermediate_size, t.intermediate_size},
        {"tie_word_embeddings", c.tie_word_embeddings, t.tie_word_embeddings}}) {
    if (s != tv) bad.push_back(absl::StrCat(name, " ", s, " (teacher ", tv, ")"));
  }
  if (c.num_hidden_layers > t.num_hidden_layers) {
    bad.push_back(absl::StrCat("num_hidden_layers ", c.num_hidden_layers, " (teacher ",
                               t.num_hidden_layers, ", at most that many)"));
  }
  if (!bad.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distill: --init truncate copies the teacher's tensors, but the student differs: ",
        absl::StrJoin(bad, ", "),
        " (hint: keep --hidden/--heads/--kv-heads/--intermediate at the teacher's values and "
        "only lower --layers, or use --init random)"));
  }
  for (const model::DecoderLayer& layer : teacher.layers) {
    for (const model::Linear& lin : layer.proj) {
      // A compressed teacher keeps a storage-less placeholder in `weight`: nothing to copy.
      if (!lin.weight.defined() ||
          lin.weight.storage().nbytes() < static_cast<size_t>(lin.weight.numel()) * sizeof(float)) {
        return absl::InvalidArgumentError(
            "distill: --init truncate needs a float32 teacher, and this teacher's projections are "
            "packed (compressed) (hint: distill from the float checkpoint, or use --init random)");
      }
    }
  }
  torch::NoGradGuard no_grad;
  model::LlamaModel m(c);
  m.embed_tokens = teacher.embed_tokens.clone();
  m.norm = teacher.norm.clone();
  if (teacher.lm_head.defined()) m.lm_head = teacher.lm_head.clone();
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const model::DecoderLayer& src = teacher.layers[i];
    model::DecoderLayer& dst = m.layers[i];
    dst.input_layernorm = src.input_layernorm.clone();
    dst.post_attention_layernorm = src.post_attention_layernorm.clone();
    for (int p = 0; p < model::kNumProj; ++p) dst.proj[p].weight = src.proj[p].weight.clone();
  }
  return m;
}

absl::StatusOr<DistillStats> DistillInto(const model::LlamaModel& teacher,
                                         model::LlamaModel& student, const TokenWindows& windows,
                                         const DistillOptions& o, const DistillCallback& on_step) {
  if (windows.size() == 0) {
    return absl::InvalidArgumentError(
        "distill: no training windows (hint: the corpus is empty or too short)");
  }
  FEDLORA_RETURN_IF_ERROR(CheckSameVocab(teacher.config(), student.config()));
  FEDLORA_RETURN_IF_ERROR(CheckLossSettings(o.temperature, o.alpha));
  const int64_t steps = PlannedSteps(windows.size(), o.train);
  const int64_t batch = std::min<int64_t>(std::max<int64_t>(o.train.batch_size, 1), windows.size());
  OptimizerOptions oo = o.train.optimizer;
  if (oo.total_steps <= 0) oo.total_steps = steps;
  student.SetBaseTrainable(true);
  std::vector<torch::Tensor> params, start;
  for (auto& [name, t] : student.NamedParameters()) {
    params.push_back(*t);
    start.push_back(t->detach().clone());
  }
  Optimizer opt(params, oo);
  SplitMix64 rng(o.train.seed ^ 0x9E3779B97F4A7C15ULL);
  std::vector<int64_t> order;
  size_t pos = 0;
  DistillStats stats;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<int64_t> idx;
    while (static_cast<int64_t>(idx.size()) < batch) {
      if (pos >= order.size()) {
        order.resize(windows.size());
        for (int64_t i = 0; i < windows.size(); ++i) order[i] = i;
        rng.Shuffle(order);
        pos = 0;
      }
      idx.push_back(order[pos++]);
    }
    torch::Tensor ids = Rows(windows, idx, false), mask = Rows(windows, idx, true);
    model::ForwardOptions fo;
    fo.attention_mask = mask;
    torch::Tensor teacher_logits;
    {
      torch::NoGradGuard no_grad;
      teacher_logits = teacher.Forward(ids, fo);
    }
    fo.training = true;
    torch::Tensor student_logits = student.Forward(ids, fo);
    DistillStep report;
    torch::Tensor loss = DistillLoss(student_logits, teacher_logits, ids, mask, o.temperature,
                                     o.alpha, &report.parts);
    report.loss = loss.item<double>();
    if (!std::isfinite(report.loss)) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(start[i]);
      student.SetBaseTrainable(false);
      return absl::FailedPreconditionError(
          absl::StrCat("distill: training diverged at step ", step, " (loss ", report.loss,
                       "); the student is restored (hint: lower --lr, keep --clip on, or lower "
                       "--temperature)"));
    }
    report.lr = opt.LearningRate(step);
    opt.ZeroGrad();
    loss.backward();
    opt.Step();
    stats.tokens += mask.sum().item<int64_t>();
    stats.losses.push_back(report.loss);
    stats.kl.push_back(report.parts.kl);
    stats.ce.push_back(report.parts.ce);
    report.step = step + 1;
    report.total = steps;
    if (on_step) on_step(report);
  }
  student.SetBaseTrainable(false);
  stats.steps = steps;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

absl::StatusOr<DistillResult> Distill(const std::string& teacher_dir,
                                      const std::vector<std::string>& lines,
                                      const std::string& out_dir, const DistillOptions& o,
                                      bool overwrite, const DistillCallback& on_step) {
  FEDLORA_RETURN_IF_ERROR(CheckLossSettings(o.temperature, o.alpha));
  std::error_code ec;
  if (fs::exists(out_dir) && fs::exists(teacher_dir) && fs::equivalent(out_dir, teacher_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("distill: --out ", out_dir,
                     " is the teacher's directory (hint: write the student somewhere else)"));
  }
  if (!overwrite && (fs::exists(fs::path(out_dir) / "config.json") ||
                     fs::exists(fs::path(out_dir) / "model.safetensors"))) {
    return absl::InvalidArgumentError(
        absl::StrCat("distill: ", out_dir,
                     " already holds a model (hint: choose another --out, or pass --force to "
                     "overwrite it)"));
  }
  if (lines.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distill: the corpus has ", lines.size(),
        " non-empty lines; allowed: at least 2, one to train on and one held out (hint: give "
        "more text, one document or message per line)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(Runtime teacher, LoadRuntime(teacher_dir));
  DistillResult r;
  r.teacher_config = teacher.model->config();
  FEDLORA_ASSIGN_OR_RETURN(r.student_config, StudentConfig(r.teacher_config, o));
  if (r.student_config.NumParameters() > r.teacher_config.NumParameters()) {
    r.warnings.push_back(absl::StrCat(
        "the student (", r.student_config.NumParameters(),
        " parameters) is larger than the teacher (", r.teacher_config.NumParameters(),
        "); distillation usually compresses (hint: lower --hidden, --layers or --intermediate)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(model::LlamaModel student,
                           InitStudent(*teacher.model, r.student_config, o));

  const double frac = std::clamp(o.holdout_fraction, 0.0, 0.5);
  const size_t held = std::max<size_t>(
      1, static_cast<size_t>(std::llround(frac * static_cast<double>(lines.size()))));
  std::vector<std::string> train_lines(lines.begin(), lines.end() - held);
  std::vector<std::string> held_lines(lines.end() - held, lines.end());
  r.train_lines = static_cast<int64_t>(train_lines.size());
  r.heldout_lines = static_cast<int64_t>(held_lines.size());
  const int64_t seq =
      o.seq_len > 0 ? o.seq_len : std::min<int64_t>(128, r.teacher_config.max_position_embeddings);
  if (seq < 2 || seq > r.teacher_config.max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrCat("distill: --seq ", seq, " is out of range; allowed: 2..",
                     r.teacher_config.max_position_embeddings,
                     " (the teacher's max_position_embeddings) (hint: 64 to 256 is usual)"));
  }
  TokenWindows train = MakeWindows(*teacher.tokenizer, train_lines, seq);
  TokenWindows eval = MakeWindows(*teacher.tokenizer, held_lines, seq);
  if (eval.size() > o.eval_windows && o.eval_windows > 0) {
    eval.ids = eval.ids.narrow(0, 0, o.eval_windows);
    eval.mask = eval.mask.narrow(0, 0, o.eval_windows);
  }
  r.train_tokens = train.size() ? train.mask.sum().item<int64_t>() : 0;
  FEDLORA_ASSIGN_OR_RETURN(r.before, EvaluateDistill(*teacher.model, student, eval));
  FEDLORA_ASSIGN_OR_RETURN(r.stats, DistillInto(*teacher.model, student, train, o, on_step));
  FEDLORA_ASSIGN_OR_RETURN(r.after, EvaluateDistill(*teacher.model, student, eval));

  FEDLORA_RETURN_IF_ERROR(model::SaveLlamaModel(student, out_dir));
  for (const char* f : {"tokenizer.model", "tokenizer_config.json"}) {
    const fs::path src = fs::path(teacher_dir) / f;
    if (!fs::exists(src)) continue;
    fs::copy_file(src, fs::path(out_dir) / f, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("distill: cannot copy ", src.string(), " to ",
                                              out_dir, ": ", ec.message(),
                                              " (hint: check free space and permissions)"));
    }
  }
  nlohmann::json j = {{"teacher", teacher_dir},
                      {"teacher_parameters", r.teacher_config.NumParameters()},
                      {"student_parameters", r.student_config.NumParameters()},
                      {"temperature", o.temperature},
                      {"alpha", o.alpha},
                      {"init", o.init == StudentInit::kTruncate ? "truncate" : "random"},
                      {"steps", r.stats.steps},
                      {"seq", seq},
                      {"heldout",
                       {{"tokens", r.after.tokens},
                        {"teacher_perplexity", r.after.teacher_perplexity()},
                        {"student_perplexity", r.after.student_perplexity()},
                        {"kl", r.after.kl}}}};
  FEDLORA_RETURN_IF_ERROR(
      WriteFileAtomic((fs::path(out_dir) / "fedlora_distill.json").string(), j.dump(2) + "\n"));
  return r;
}

}  // namespace fedlora::device
