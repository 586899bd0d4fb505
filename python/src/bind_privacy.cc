// The accountant: epsilon of a run and the noise for a target epsilon, under Poisson sampling
// (add/remove one user) or a fixed-size cohort (replace one user), as `fedlora privacy`.
#include <string>

#include "absl/status/status.h"
#include "bindings.h"
#include "errors.h"
#include "fedlora/privacy/round_accounting.h"

namespace fedlora::python {
namespace py = pybind11;
namespace {

privacy::Sampling ParseSampling(const std::string& s) {
  if (s == "poisson") return privacy::Sampling::kPoisson;
  if (s == "fixed") return privacy::Sampling::kFixedSize;
  throw StatusError{absl::InvalidArgumentError(
      "privacy: sampling must be 'poisson' (add/remove one user) or 'fixed' (fixed-size cohort, "
      "replace one user), got '" + s + "'")};
}

privacy::RoundMechanism Gaussian(const std::string& sampling, double q, double noise) {
  privacy::RoundMechanism m;
  m.sampling = ParseSampling(sampling);
  m.q = q;
  m.gaussian_noise_multiplier = noise;
  return m;
}

}  // namespace

void BindPrivacy(py::module_& m) {
  m.def(
      "epsilon",
      [](double q, double noise, long long steps, double delta, const std::string& sampling) {
        const privacy::RoundMechanism mech = Gaussian(sampling, q, noise);
        const privacy::EpsilonResult r = Take(privacy::ComputeRoundsEpsilon(mech, steps, delta));
        py::dict d;
        d["epsilon"] = r.epsilon;
        d["optimal_order"] = r.order;
        d["assumes"] = privacy::DescribeAccounting(mech);
        return d;
      },
      py::arg("q"), py::arg("noise"), py::arg("steps"), py::arg("delta"),
      py::arg("sampling") = "poisson");
  m.def(
      "noise_for_epsilon",
      [](double q, double epsilon, long long steps, double delta, const std::string& sampling) {
        return Take(privacy::ComputeRoundsNoiseMultiplier(ParseSampling(sampling), q, steps,
                                                          delta, epsilon));
      },
      py::arg("q"), py::arg("epsilon"), py::arg("steps"), py::arg("delta"),
      py::arg("sampling") = "poisson");
}

}  // namespace fedlora::python
