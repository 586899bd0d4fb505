// Knowledge distillation: trains a smaller student Llama (an architecture the caller picks) on a
// teacher's soft labels over a text corpus, and saves it as a Hugging Face model directory.
//
// Loss per step, over the positions that predict a real next token:
//   alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student)
// (Hinton et al. 2015; the T^2 keeps the soft-label gradients on the scale of the hard ones).
// The student shares the teacher's tokenizer and vocabulary; the teacher runs under no_grad.
#ifndef FEDLORA_DEVICE_DISTILL_H_
#define FEDLORA_DEVICE_DISTILL_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/device/trainer.h"
#include "fedlora/model/config.h"
#include "fedlora/model/llama.h"

namespace fedlora::device {

// The two parts of a distillation loss, as plain numbers (for logging).
struct DistillLossParts {
  double kl = 0;  // mean KL at temperature T, per position, before the T^2 factor (nats)
  double ce = 0;  // mean next-token cross-entropy (nats)
};

// The distillation loss of student_logits against teacher_logits ([N, T, V] each, the same
// shape) for the token windows `ids` ([N, T] int64): position t predicts ids[:, t + 1], and
// positions whose target has mask 0 are ignored (`mask` [N, T], undefined = all real).
// Returns a scalar that back-propagates into student_logits only (the teacher side is
// detached); fills `parts` when given. Programmer errors (shape mismatch, T < 2,
// temperature <= 0, alpha outside [0, 1]) are CHECK failures.
torch::Tensor DistillLoss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                          const torch::Tensor& ids, const torch::Tensor& mask, double temperature,
                          double alpha, DistillLossParts* parts = nullptr);

enum class StudentInit {
  kRandom,    // Hugging Face style normal(0, init_std) init
  kTruncate,  // the teacher's embeddings, final norm, head and first `num_layers` layers
};

// "random" or "truncate"; INVALID_ARGUMENT otherwise.
absl::StatusOr<StudentInit> ParseStudentInit(const std::string& name);

struct DistillOptions {
  // Student architecture; 0 means "derive from the teacher": the teacher's value for hidden,
  // layers and heads; for kv heads the teacher's if it divides the heads (else the heads); for
  // the MLP size the teacher's ratio to hidden, rounded up to a multiple of 8.
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t intermediate_size = 0;
  // Must be 0 or the teacher's vocab_size: the student shares the teacher's tokenizer.
  int64_t vocab_size = 0;
  int64_t seq_len = 0;  // tokens per training window; 0: min(128, teacher context)
  double temperature = 2.0;
  double alpha = 0.5;  // weight of the soft-label term; 1 - alpha goes to the hard labels
  StudentInit init = StudentInit::kRandom;
  double init_std = 0.02;
  // The last `holdout_fraction` of the corpus lines (at least one line) are kept out of training
  // and scored at the end (perplexities, KL); at most `eval_windows` windows of them.
  double holdout_fraction = 0.1;
  int64_t eval_windows = 64;
  // Optimizer (AdamW/SGD, warm-up, cosine, clipping), batch, steps (max_steps, else epochs over
  // the training windows) and seed (student init and window order). `progress` is unused: pass
  // `on_step` and draw your own.
  TrainOptions train;
};

// One optimizer step, reported to DistillCallback after the update.
struct DistillStep {
  int64_t step = 0;   // 1-based
  int64_t total = 0;  // planned steps
  double loss = 0;
  DistillLossParts parts;
  double lr = 0;  // learning rate used for this step
};
using DistillCallback = std::function<void(const DistillStep&)>;

// Teacher and student scored on the same windows (no_grad).
struct DistillEval {
  int64_t tokens = 0;      // positions scored
  double teacher_nll = 0;  // mean next-token NLL (nats)
  double student_nll = 0;  // mean next-token NLL (nats)
  double kl = 0;           // mean KL(teacher || student) per position at the given temperature
  double teacher_perplexity() const;
  double student_perplexity() const;
};

// Scores `windows` with both models in batches of `batch_size`. INVALID_ARGUMENT if there are
// no windows, the vocabularies differ, or temperature <= 0.
absl::StatusOr<DistillEval> EvaluateDistill(const model::LlamaModel& teacher,
                                            const model::LlamaModel& student,
                                            const TokenWindows& windows, double temperature = 1.0,
                                            int64_t batch_size = 8);

// The student config `options` asks for, everything not chosen (vocabulary, special tokens,
// context, RoPE, norm epsilon, tied embeddings) copied from `teacher`. INVALID_ARGUMENT, naming
// the flag (--hidden, --layers, --heads, --kv-heads, --intermediate) with the allowed values and
// a hint, for a non-positive size, kv heads not dividing heads, a hidden size that does not
// split into heads of an even size, or a vocab_size other than the teacher's.
absl::StatusOr<model::LlamaConfig> StudentConfig(const model::LlamaConfig& teacher,
                                                 const DistillOptions& options);

// A student of `config`: random (seeded by options.train.seed) or, for kTruncate, copies of the
// teacher's tensors. INVALID_ARGUMENT for kTruncate unless hidden, heads, kv heads, head size,
// MLP size and tied embeddings all equal the teacher's and the student has at most as many
// layers (the message lists each mismatch). The student's tensors do not alias the teacher's.
absl::StatusOr<model::LlamaModel> InitStudent(const model::LlamaModel& teacher,
                                              const model::LlamaConfig& config,
                                              const DistillOptions& options);

struct DistillStats {
  int64_t steps = 0;
  int64_t tokens = 0;  // real tokens in the training batches
  double seconds = 0;
  std::vector<double> losses;  // per step: the combined loss
  std::vector<double> kl;      // per step: the KL part (before T^2)
  std::vector<double> ce;      // per step: the hard-label part
};

// Trains every parameter of `student` on `windows` against `teacher` (frozen, no_grad). The
// student's parameters are left trainable = false afterwards. INVALID_ARGUMENT for no windows,
// different vocabularies, temperature <= 0 or alpha outside [0, 1]; FAILED_PRECONDITION if the
// loss becomes NaN/inf (the student is then restored to its starting weights).
absl::StatusOr<DistillStats> DistillInto(const model::LlamaModel& teacher,
                                         model::LlamaModel& student, const TokenWindows& windows,
                                         const DistillOptions& options,
                                         const DistillCallback& on_step = nullptr);

struct DistillResult {
  model::LlamaConfig teacher_config;
  model::LlamaConfig student_config;
  DistillStats stats;
  int64_t train_lines = 0, heldout_lines = 0;
  int64_t train_tokens = 0;           // real tokens in the training windows
  DistillEval before;                 // held-out, student before training (KL at T = 1)
  DistillEval after;                  // held-out, student after training (KL at T = 1)
  std::vector<std::string> warnings;  // e.g. a student larger than the teacher
};

// The whole pipeline: loads `teacher_dir` (device::LoadRuntime: config.json, weights,
// tokenizer.model), splits `lines` into training and held-out text, builds and initialises the
// student, distills it, scores both models on the held-out windows, and writes `out_dir`
// (config.json, model.safetensors, tokenizer.model and tokenizer_config.json copied from the
// teacher, fedlora_distill.json recording teacher, loss settings and held-out figures).
// Errors: those of LoadRuntime, StudentConfig, InitStudent and DistillInto; INVALID_ARGUMENT
// for fewer than 2 non-empty lines, out_dir == teacher_dir, or out_dir already holding a
// config.json or model.safetensors when `overwrite` is false (hint: --force).
absl::StatusOr<DistillResult> Distill(const std::string& teacher_dir,
                                      const std::vector<std::string>& lines,
                                      const std::string& out_dir, const DistillOptions& options,
                                      bool overwrite = false,
                                      const DistillCallback& on_step = nullptr);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_DISTILL_H_
