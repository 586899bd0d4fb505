#include "fedlora/compress/int8_compute.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "fedlora/model/llama.h"
#include "int8_matmul.h"

namespace fedlora::compress {

absl::StatusOr<Int8Mode> Int8ModeFromEnv() {
  const char* v = std::getenv("FEDLORA_INT8_COMPUTE");
  const std::string s = v == nullptr ? "" : v;
  if (s.empty() || s == "auto") return Int8Mode::kAuto;
  if (s == "on" || s == "1") return Int8Mode::kOn;
  if (s == "off" || s == "0") return Int8Mode::kOff;
  return absl::InvalidArgumentError(absl::StrCat("FEDLORA_INT8_COMPUTE='", s,
                                                 "' is not one of auto, on, off (hint: unset it "
                                                 "for the default, auto)"));
}

std::string Int8ComputeIsa() { return internal::Int8Isa(); }

int Int8WeightLevels() { return internal::WeightLevels(); }

bool Int8ComputeEnabled(Int8Mode mode) {
  switch (mode) {
    case Int8Mode::kOn:
      return true;
    case Int8Mode::kOff:
      return false;
    case Int8Mode::kAuto:
      break;
  }
  return !Int8ComputeIsa().empty();
}

Int8ComputeWeight::Int8ComputeWeight(std::shared_ptr<const PackedWeight> inner)
    : inner_(std::move(inner)) {}

Int8ComputeWeight::~Int8ComputeWeight() = default;

const internal::Int8Matrix& Int8ComputeWeight::Matrix() const {
  std::call_once(once_, [this] {
    torch::NoGradGuard no_grad;
    matrix_ = std::make_unique<internal::Int8Matrix>(internal::Int8Matrix::FromDense(Dense()));
    built_.store(true, std::memory_order_release);
  });
  return *matrix_;
}

bool Int8ComputeWeight::built() const { return built_.load(std::memory_order_acquire); }

namespace {
int64_t RowsOf(const torch::Tensor& x) {
  return x.dim() == 0 || x.size(-1) == 0 ? 0 : x.numel() / x.size(-1);
}
}  // namespace

torch::Tensor Int8ComputeWeight::Apply(const torch::Tensor& x) const {
  if (RowsOf(x) < kInt8MinRows || x.scalar_type() != torch::kFloat) return inner_->Apply(x);
  return Matrix().MulTransposed(x);
}

torch::Tensor Int8ComputeWeight::ApplyTransposed(const torch::Tensor& dy) const {
  if (RowsOf(dy) < kInt8MinRows || dy.scalar_type() != torch::kFloat) {
    return inner_->ApplyTransposed(dy);
  }
  return Matrix().Mul(dy);
}

int64_t Int8ComputeWeight::bytes() const {
  return inner_->bytes() + (built() ? matrix_->bytes() : 0);
}

int UseInt8Compute(model::LlamaModel& model) {
  int wrapped = 0;
  for (auto& layer : model.layers) {
    for (model::Linear& lin : layer.proj) {
      auto packed = std::dynamic_pointer_cast<const PackedWeight>(lin.frozen);
      if (!packed || dynamic_cast<const Int8ComputeWeight*>(packed.get()) != nullptr) continue;
      lin.frozen = std::make_shared<Int8ComputeWeight>(std::move(packed));
      ++wrapped;
    }
  }
  return wrapped;
}

}  // namespace fedlora::compress
