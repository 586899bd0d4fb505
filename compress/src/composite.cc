#include "fedlora/compress/composite.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::compress {

torch::Tensor LowRankWeight::Dense() const {
  torch::Tensor w = q_->Dense();
  w.addmm_(l_->Dense(), r_->Dense());
  return rot_ ? rot_->ApplyTransposed(w) : w;
}

torch::Tensor LowRankWeight::Apply(const torch::Tensor& x) const {
  torch::Tensor xr = rot_ ? rot_->Apply(x) : x;
  return q_->Apply(xr) + l_->Apply(r_->Apply(xr));
}

std::string LowRankWeight::scheme() const {
  return absl::StrCat("caldera Q[", q_->scheme(), "] + L[", l_->scheme(), "] R[", r_->scheme(),
                      "] rank ", rank(), rot_ ? " hadamard" : "");
}

void LowRankWeight::Export(const std::string& prefix, NamedTensors* out) const {
  q_->Export(prefix + ".Q", out);
  l_->Export(prefix + ".L", out);
  r_->Export(prefix + ".R", out);
}

nlohmann::json LowRankWeight::Scheme() const {
  nlohmann::json j = {{"format", "lowrank"}, {"shape", {out_features(), in_features()}},
                      {"rank", rank()},      {"Q", q_->Scheme()},
                      {"L", l_->Scheme()},   {"R", r_->Scheme()}};
  if (rot_) j["hadamard_seed"] = rot_->seed();
  return j;
}

absl::StatusOr<std::shared_ptr<LowRankWeight>> LowRankWeight::Load(const std::string& prefix,
                                                                   const nlohmann::json& scheme,
                                                                   TensorReader* reader) {
  const int64_t out = scheme["shape"][0].get<int64_t>(), in = scheme["shape"][1].get<int64_t>();
  const int64_t k = scheme.value("rank", int64_t{-1});
  std::shared_ptr<PackedWeight> parts[3];
  const char* names[3] = {"Q", "L", "R"};
  const std::vector<int64_t> shapes[3] = {{out, in}, {out, k}, {k, in}};
  for (int i = 0; i < 3; ++i) {
    if (!scheme.contains(names[i])) {
      return absl::InvalidArgumentError(absl::StrCat(reader->path(), ": '", prefix,
                                                     "': lowrank scheme lacks '", names[i],
                                                     "' (hint: compression.json is corrupt)"));
    }
    FEDLORA_ASSIGN_OR_RETURN(parts[i],
                             LoadPacked(prefix + "." + names[i], scheme[names[i]], reader));
    std::vector<int64_t> got = {parts[i]->out_features(), parts[i]->in_features()};
    if (got != shapes[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat(reader->path(), ": '", prefix, ".", names[i], "' has shape [", got[0], ", ",
                       got[1], "] but shape/rank imply [", shapes[i][0], ", ", shapes[i][1],
                       "] (hint: compression.json is inconsistent with the weights)"));
    }
  }
  std::shared_ptr<const RandomHadamard> rot;
  if (scheme.contains("hadamard_seed") && !scheme["hadamard_seed"].is_null()) {
    rot = std::make_shared<RandomHadamard>(in, scheme["hadamard_seed"].get<uint64_t>());
  }
  return std::make_shared<LowRankWeight>(parts[0], parts[1], parts[2], rot);
}

MaskedWeight::MaskedWeight(std::shared_ptr<PackedWeight> inner, const torch::Tensor& mask)
    : inner_(std::move(inner)), mask_(PackBits(mask.to(torch::kInt32), 1)) {}

torch::Tensor MaskedWeight::Mask() const {
  const int64_t out = out_features(), in = in_features();
  return UnpackBits(mask_, 1, out * in).view({out, in}).to(torch::kBool);
}

torch::Tensor MaskedWeight::Dense() const {
  torch::Tensor w = inner_->Dense();
  return w.mul_(Mask());
}

std::string MaskedWeight::scheme() const { return "masked " + inner_->scheme(); }

void MaskedWeight::Export(const std::string& prefix, NamedTensors* out) const {
  out->emplace_back(prefix + ".mask", mask_);
  inner_->Export(prefix + ".inner", out);
}

nlohmann::json MaskedWeight::Scheme() const {
  return {{"format", "masked"},
          {"shape", {out_features(), in_features()}},
          {"inner", inner_->Scheme()}};
}

absl::StatusOr<std::shared_ptr<MaskedWeight>> MaskedWeight::Load(const std::string& prefix,
                                                                 const nlohmann::json& scheme,
                                                                 TensorReader* reader) {
  const int64_t out = scheme["shape"][0].get<int64_t>(), in = scheme["shape"][1].get<int64_t>();
  if (!scheme.contains("inner")) {
    return absl::InvalidArgumentError(absl::StrCat(reader->path(), ": '", prefix,
                                                   "': masked scheme lacks 'inner' (hint: "
                                                   "compression.json is corrupt)"));
  }
  auto r = std::shared_ptr<MaskedWeight>(new MaskedWeight());
  FEDLORA_ASSIGN_OR_RETURN(r->inner_, LoadPacked(prefix + ".inner", scheme["inner"], reader));
  if (r->inner_->out_features() != out || r->inner_->in_features() != in) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader->path(), ": '", prefix, ".inner' shape differs from the mask's [", out,
                     ", ", in, "] (hint: compression.json is inconsistent with the weights)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(r->mask_,
                           reader->Read(prefix + ".mask", io::DType::kU8, {(out * in + 7) / 8}));
  return r;
}

}  // namespace fedlora::compress
