#include "fedlora/device/lora_method_plan.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/private_file.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::device {

absl::StatusOr<LoraMethod> TaskLoraMethod(const v1::Task& task) {
  switch (task.lora_method()) {
    case v1::LORA_METHOD_LORA:
      return LoraMethod::kLora;
    case v1::LORA_METHOD_FFA:
      return LoraMethod::kFfa;
    case v1::LORA_METHOD_FEDSA:
      return LoraMethod::kFedSa;
    default:
      break;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the task asks for LoRA method ", static_cast<int>(task.lora_method()),
      ", which this device does not know (it runs lora, ffa and fedsa; hint: update fedlora)"));
}

std::string PersonalBPath(const std::string& state_dir) {
  return state_dir + "/fedsa/personal_b.blob";
}

absl::StatusOr<MethodPlan> PlanMethod(
    LoraMethod method, const AdapterBlob& global,
    const std::vector<std::pair<uint64_t, uint64_t>>& expected_layout,
    const std::string& state_dir) {
  MethodPlan plan;
  plan.method = method;
  plan.start = global.values;
  plan.freeze_a = method == LoraMethod::kFfa;
  if (method != LoraMethod::kLora && global.slots != expected_layout) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the global adapter's slot layout does not match the adapter its LoRA config makes on "
        "this device's model (LoRA method ",
        LoraMethodName(method), " cannot split A from B)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(plan.shared, SharedPositions(global, method));
  if (method != LoraMethod::kFedSa) return plan;
  FEDLORA_ASSIGN_OR_RETURN(plan.personal, BPositions(global));
  const std::string path = PersonalBPath(state_dir);
  auto bytes = ReadPrivateFile(path);  // refuses a file others could read or have written
  if (!bytes.ok()) {
    if (bytes.status().code() == absl::StatusCode::kNotFound) return plan;  // first round
    return bytes.status();
  }
  auto own = DecodeAdapterBlob(*bytes);
  if (!own.ok()) {
    return absl::DataLossError(absl::StrCat("personal B ", path,
                                            " is unreadable: ", own.status().message(),
                                            " (hint: delete it to start again from the global B)"));
  }
  if (own->lora != global.lora || own->base_model_sha256 != global.base_model_sha256 ||
      own->values.size() != plan.personal.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("personal B ", path,
                     " was made for another adapter (LoRA config, base model or size "
                     "differ from the task's; hint: delete it to start again from the global B)"));
  }
  FEDLORA_RETURN_IF_ERROR(Scatter(own->values, plan.personal, &plan.start));
  return plan;
}

absl::StatusOr<std::vector<float>> FinishMethod(const MethodPlan& plan, const AdapterBlob& global,
                                                const std::vector<float>& delta,
                                                const std::string& state_dir) {
  if (delta.size() != plan.start.size()) {
    return absl::InvalidArgumentError(absl::StrCat("trained delta has ", delta.size(),
                                                   " values, the adapter ", plan.start.size()));
  }
  if (plan.method == LoraMethod::kFedSa) {
    AdapterBlob own;
    own.lora = global.lora;
    own.base_model_sha256 = global.base_model_sha256;
    own.values.resize(plan.personal.size());
    for (size_t j = 0; j < plan.personal.size(); ++j) {
      own.values[j] = plan.start[plan.personal[j]] + delta[plan.personal[j]];
    }
    FEDLORA_RETURN_IF_ERROR(MakeDirs(state_dir + "/fedsa"));
    // Learned from the user's text: owner-only (0600), fsync'd, renamed into place.
    FEDLORA_RETURN_IF_ERROR(WriteFileWithMode(PersonalBPath(state_dir), EncodeAdapterBlob(own),
                                              0600, ExistingFile::kReplace));
  }
  return Gather(delta, plan.shared);
}

}  // namespace fedlora::device
