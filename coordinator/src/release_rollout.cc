#include "fedlora/coordinator/release_rollout.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/release.h"

namespace fedlora::coordinator {
namespace {

bool Live(const ReleaseRecord& r) { return r.state == "rolling" || r.state == "halted"; }

std::string Describe(const ReleaseRecord& r) {
  return absl::StrCat("release version ", r.version, " (", r.release_id, ")");
}

}  // namespace

double RolloutBucket(const std::string& device_id, const std::string& release_id) {
  const std::string h = Sha256(absl::StrCat("fedlora-rollout-1\n", release_id, "\n", device_id));
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = (x << 8) | static_cast<uint8_t>(h[i]);
  // 53 bits keep the scaling exact in a double.
  return static_cast<double>(x >> 11) / static_cast<double>(uint64_t{1} << 53) * 100.0;
}

ReleaseDecision ChooseRelease(const std::vector<ReleaseRecord>& releases,
                              const DeviceReleaseQuery& q) {
  const ReleaseRecord* stable = nullptr;
  const ReleaseRecord* candidate = nullptr;
  const ReleaseRecord* running = nullptr;
  for (const ReleaseRecord& r : releases) {
    if (r.segment != q.segment || r.base_model_sha256 != q.base_model_sha256) continue;
    if (r.state == "complete" && (!stable || r.version > stable->version)) stable = &r;
    if (Live(r)) candidate = &r;
    if (r.version == q.running_version) running = &r;
  }
  ReleaseDecision d;
  auto offer = [&](const ReleaseRecord& r, std::string why) {
    d.offered = true;
    d.release = r;
    d.detail = std::move(why);
    return d;
  };
  auto keep = [&](std::string why) {
    d.detail = std::move(why);
    return d;
  };
  if (candidate && candidate->version == q.running_version) {
    return keep(absl::StrCat("running ", Describe(*candidate), ", ", candidate->state, " at ",
                             candidate->percent, "%"));
  }
  if (candidate && candidate->state == "rolling" && candidate->version > q.running_version &&
      candidate->version != q.fell_back_from && InRollout(q.device_id, *candidate)) {
    return offer(*candidate, absl::StrCat("in the ", candidate->percent, "% rollout of ",
                                          Describe(*candidate)));
  }
  if (running && running->state == "rolled_back") {
    if (!stable) return keep(absl::StrCat(Describe(*running), " was rolled back, but no complete "
                                          "release is left to go back to"));
    auto instr = RollbackFromJson(nlohmann::json::parse(running->rollback_json, nullptr, false));
    if (!instr.ok() || instr->to_version != stable->version) {
      return keep(absl::StrCat(Describe(*running), " was rolled back, but its signed instruction "
                               "does not lead to the stable ", Describe(*stable),
                               " (hint: the operator signs a new rollback)"));
    }
    d.rollback_json = running->rollback_json;
    return offer(*stable, absl::StrCat(Describe(*running), " was rolled back: back to ",
                                       Describe(*stable)));
  }
  if (stable && stable->version > q.running_version && stable->version != q.fell_back_from) {
    return offer(*stable, absl::StrCat("the stable ", Describe(*stable)));
  }
  if (stable && stable->version == q.running_version) {
    return keep(absl::StrCat("up to date with the stable ", Describe(*stable)));
  }
  return keep(releases.empty() ? "no release is published"
                               : "no release for this device's base model and segment yet");
}

absl::StatusOr<ReleaseRecord> PreviousComplete(const std::vector<ReleaseRecord>& releases,
                                               const std::string& segment, uint64_t version) {
  const ReleaseRecord* best = nullptr;
  for (const ReleaseRecord& r : releases) {
    if (r.segment == segment && r.state == "complete" && r.version < version &&
        (!best || r.version > best->version)) {
      best = &r;
    }
  }
  if (!best) {
    return absl::NotFoundError(absl::StrCat("no complete release of segment '", segment,
                                            "' below version ", version));
  }
  return *best;
}

absl::StatusOr<ReleaseRecord> CurrentCandidate(const std::vector<ReleaseRecord>& releases,
                                               const std::string& segment) {
  for (auto it = releases.rbegin(); it != releases.rend(); ++it) {
    if (it->segment == segment && Live(*it)) return *it;
  }
  return absl::NotFoundError(absl::StrCat(
      "no release of segment '", segment, "' is rolling or halted (hint: `fedlora release "
      "publish` one, or pass --version)"));
}

absl::StatusOr<ReleaseRecord> Promote(const ReleaseRecord& r, double percent) {
  if (!(percent > 0 && percent <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--percent ", percent, " is outside (0, 100]"));
  }
  if (!Live(r)) {
    return absl::FailedPreconditionError(absl::StrCat(
        Describe(r), " is ", r.state, " (hint: only a rolling or halted release is promoted; "
        "publish a new version instead)"));
  }
  if (percent < r.percent) {
    return absl::FailedPreconditionError(absl::StrCat(
        Describe(r), " is at ", r.percent, "%; a rollout never shrinks, because devices that "
        "have it keep it (hint: `fedlora release halt` stops it, `fedlora release rollback` "
        "takes it back)"));
  }
  ReleaseRecord out = r;
  out.percent = percent;
  out.state = percent >= 100 ? "complete" : "rolling";
  return out;
}

absl::StatusOr<ReleaseRecord> Halt(const ReleaseRecord& r) {
  if (r.state != "rolling") {
    return absl::FailedPreconditionError(absl::StrCat(
        Describe(r), " is ", r.state, ", not rolling (hint: only a rolling release is halted)"));
  }
  ReleaseRecord out = r;
  out.state = "halted";
  return out;
}

absl::StatusOr<ReleaseRecord> RollBack(const ReleaseRecord& r,
                                       const std::vector<ReleaseRecord>& releases,
                                       const std::string& rollback_json) {
  if (r.state == "rolled_back") {
    return absl::FailedPreconditionError(absl::StrCat(Describe(r), " is already rolled back"));
  }
  auto prev = PreviousComplete(releases, r.segment, r.version);
  if (!prev.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        Describe(r), " has no earlier complete release to go back to (hint: `fedlora release "
        "halt` stops it from reaching more devices)"));
  }
  auto instr = RollbackFromJson(nlohmann::json::parse(rollback_json, nullptr, false));
  if (!instr.ok()) return instr.status();
  if (instr->from_version != r.version || instr->to_version != prev->version ||
      instr->to_release_id != prev->release_id ||
      instr->base_model_sha256 != r.base_model_sha256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the rollback instruction goes from version ", instr->from_version, " to ",
        instr->to_version, " (", instr->to_release_id, "); this rollback needs ", r.version,
        " -> ", prev->version, " (", prev->release_id, ") for the same base model"));
  }
  ReleaseRecord out = r;
  out.state = "rolled_back";
  out.rollback_json = rollback_json;
  return out;
}

}  // namespace fedlora::coordinator
