#include "mechanism_json.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace fedlora::coordinator {

std::string MechanismToJson(const privacy::RoundMechanism& m) {
  nlohmann::json j;
  j["sampling"] = m.sampling == privacy::Sampling::kPoisson ? "poisson" : "fixed";
  j["q"] = m.q;
  if (m.gaussian_noise_multiplier) j["gaussian_noise_multiplier"] = *m.gaussian_noise_multiplier;
  j["ddg"] = nlohmann::json::array();
  for (const auto& d : m.ddg) {
    j["ddg"].push_back({{"l2", d.l2_sensitivity},
                        {"l1", d.l1_sensitivity},
                        {"local_sigma2", d.local_sigma2},
                        {"n_min", d.n_min},
                        {"dim", d.dim}});
  }
  return j.dump();
}

absl::StatusOr<privacy::RoundMechanism> MechanismFromJson(const std::string& text) {
  auto bad = [&](const char* what) {
    return absl::DataLossError(absl::StrCat("privacy ledger: cannot read a charge (", what,
                                            "): ", text.substr(0, 200),
                                            " (hint: the state folder is damaged; restore it "
                                            "from a backup rather than under-count epsilon)"));
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not JSON");
  try {
    privacy::RoundMechanism m;
    const std::string s = j.at("sampling").get<std::string>();
    if (s != "poisson" && s != "fixed") return bad("sampling");
    m.sampling = s == "poisson" ? privacy::Sampling::kPoisson : privacy::Sampling::kFixedSize;
    m.q = j.at("q").get<double>();
    if (j.contains("gaussian_noise_multiplier")) {
      m.gaussian_noise_multiplier = j["gaussian_noise_multiplier"].get<double>();
    }
    for (const auto& d : j.at("ddg")) {
      privacy::DdgSumMechanism x;
      x.l2_sensitivity = d.at("l2").get<double>();
      x.l1_sensitivity = d.at("l1").get<double>();
      x.local_sigma2 = d.at("local_sigma2").get<double>();
      x.n_min = d.at("n_min").get<int>();
      x.dim = d.at("dim").get<double>();
      m.ddg.push_back(x);
    }
    return m;
  } catch (const nlohmann::json::exception&) {
    return bad("missing or ill-typed field");
  }
}

}  // namespace fedlora::coordinator
