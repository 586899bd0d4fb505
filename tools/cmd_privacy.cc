// `fedlora privacy ...`: differential-privacy accounting from the command line.
//   fedlora privacy epsilon --q Q --noise S --steps T --delta D [--sampling poisson|fixed] [--json]
//   fedlora privacy noise   --q Q --epsilon E --steps T --delta D [--json]
//   fedlora privacy ddg     --dim d --clients n [--min-clients m] --clip C --noise z --bits b
//                           [--q Q --steps T --delta D] [--json]
#include <iostream>
#include <memory>

#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "fedlora/privacy/ddg_accounting.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/rdp.h"
#include "fedlora/privacy/round_accounting.h"

namespace fedlora::cli {
namespace {

struct PrivacyFlags {
  double q = 0, noise = 0, epsilon = 0, delta = 1e-5;
  long long steps = 0;
  std::string sampling = "poisson";
  bool json = false;
  privacy::DdgConfig ddg;
};

void AddAccountingFlags(CLI::App* cmd, PrivacyFlags* f, bool need_noise) {
  cmd->add_option("--q", f->q, "probability that a device is sampled into a round, in (0, 1]")
      ->required();
  cmd->add_option("--steps", f->steps, "number of rounds")->required();
  cmd->add_option("--delta", f->delta, "target delta in (0, 1)")->required();
  if (need_noise) {
    cmd->add_option("--noise", f->noise, "noise multiplier (noise stddev / clip norm)")->required();
  }
  cmd->add_option("--sampling", f->sampling,
                  "poisson (add/remove one user) or fixed (fixed-size cohort without replacement, "
                  "replace one user)")
      ->check(CLI::IsMember({"poisson", "fixed"}));
  cmd->add_flag("--json", f->json, "print one JSON object");
}

privacy::Sampling SamplingOf(const PrivacyFlags& f) {
  return f.sampling == "fixed" ? privacy::Sampling::kFixedSize : privacy::Sampling::kPoisson;
}

void RunEpsilon(const PrivacyFlags& f) {
  privacy::RoundMechanism m;
  m.sampling = SamplingOf(f);
  m.q = f.q;
  m.gaussian_noise_multiplier = f.noise;
  auto r = privacy::ComputeRoundsEpsilon(m, f.steps, f.delta);
  if (!r.ok()) {
    Fail(r.status());
    return;
  }
  if (f.json) {
    PrintJson({{"epsilon", r->epsilon},
               {"optimal_order", r->order},
               {"q", f.q},
               {"noise_multiplier", f.noise},
               {"steps", f.steps},
               {"delta", f.delta},
               {"assumes", privacy::DescribeAccounting(m)}});
  } else {
    std::cout << absl::StrFormat(
        "epsilon = %.10g at delta = %g (RDP order %g; q = %g, noise = %g, %d rounds; %s)\n",
        r->epsilon, f.delta, r->order, f.q, f.noise, f.steps, privacy::DescribeAccounting(m));
  }
}

void RunNoise(const PrivacyFlags& f) {
  auto z = privacy::ComputeRoundsNoiseMultiplier(SamplingOf(f), f.q, f.steps, f.delta, f.epsilon);
  if (!z.ok()) {
    Fail(z.status());
    return;
  }
  privacy::RoundMechanism m;
  m.sampling = SamplingOf(f);
  m.q = f.q;
  m.gaussian_noise_multiplier = *z;
  auto check = privacy::ComputeRoundsEpsilon(m, f.steps, f.delta);
  const double achieved = check.ok() ? check->epsilon : -1;
  if (f.json) {
    PrintJson({{"noise_multiplier", *z},
               {"achieved_epsilon", achieved},
               {"target_epsilon", f.epsilon},
               {"q", f.q},
               {"steps", f.steps},
               {"delta", f.delta},
               {"assumes", privacy::DescribeAccounting(m)}});
  } else {
    std::cout << absl::StrFormat(
        "noise multiplier = %.8g (epsilon %.6g <= target %g at delta %g; q = %g, %d rounds; %s)\n",
        *z, achieved, f.epsilon, f.delta, f.q, f.steps, privacy::DescribeAccounting(m));
  }
}

void RunDdg(const PrivacyFlags& f) {
  auto p = privacy::ChooseDdgParams(f.ddg);
  if (!p.ok()) {
    Fail(p.status());
    return;
  }
  nlohmann::json j = {{"padded_dim", p->padded_dim},
                      {"bits", f.ddg.bits},
                      {"scale", p->scale},
                      {"gamma", p->gamma},
                      {"k_stddevs", p->k_stddevs},
                      {"local_stddev", p->local_stddev},
                      {"local_sigma2_scaled", p->local_sigma2_scaled},
                      {"scaled_l2_bound", p->scaled_l2_bound}};
  if (f.steps > 0) {
    auto e = privacy::ComputeDdgEpsilon(*p, f.q, f.steps, f.delta);
    if (!e.ok()) {
      Fail(e.status());
      return;
    }
    auto g = privacy::ComputeEpsilon({f.q, f.ddg.noise_multiplier, f.steps, f.delta});
    j["epsilon"] = e->epsilon;
    j["gaussian_epsilon"] = g.ok() ? g->epsilon : -1.0;
  }
  if (f.json) {
    PrintJson(j);
    return;
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::cout << absl::StrFormat("%-20s %s\n", it.key(), it.value().dump());
  }
}

}  // namespace

void RegisterCommand_privacy(CLI::App& app) {
  CLI::App* privacy = GetOrAddSubcommand(app, "privacy", "differential-privacy accounting");
  auto flags = std::make_shared<PrivacyFlags>();

  CLI::App* eps = privacy->add_subcommand(
      "epsilon", "epsilon of a subsampled Gaussian run (RDP, dp_accounting orders)");
  AddAccountingFlags(eps, flags.get(), /*need_noise=*/true);
  eps->callback([flags] { RunEpsilon(*flags); });

  CLI::App* noise =
      privacy->add_subcommand("noise", "smallest noise multiplier reaching a target epsilon");
  AddAccountingFlags(noise, flags.get(), /*need_noise=*/false);
  noise->add_option("--epsilon", flags->epsilon, "target epsilon")->required();
  noise->callback([flags] { RunNoise(*flags); });

  CLI::App* ddg = privacy->add_subcommand(
      "ddg", "distributed discrete Gaussian parameters (gamma, noise) and optional epsilon");
  ddg->add_option("--dim", flags->ddg.dim, "delta length d")->required();
  ddg->add_option("--clients", flags->ddg.expected_clients, "devices summed per round")->required();
  ddg->add_option("--min-clients", flags->ddg.min_clients,
                  "surviving cohort the noise is calibrated for (default: --clients)");
  ddg->add_option("--clip", flags->ddg.l2_clip, "L2 clip norm C")->required();
  ddg->add_option("--noise", flags->ddg.noise_multiplier, "central noise multiplier z")->required();
  ddg->add_option("--bits", flags->ddg.bits, "secure aggregation modulus bits (<= 32)");
  ddg->add_option("--modclip-prob", flags->ddg.modclip_prob, "target modular wrap probability");
  ddg->add_option("--beta", flags->ddg.beta, "conditional rounding beta (0 = unconditional)");
  ddg->add_option("--q", flags->q, "sampling probability (for epsilon)");
  ddg->add_option("--steps", flags->steps, "rounds (for epsilon; 0 = skip)");
  ddg->add_option("--delta", flags->delta, "delta (for epsilon)");
  ddg->add_flag("--json", flags->json, "print one JSON object");
  ddg->callback([flags] { RunDdg(*flags); });
}

}  // namespace fedlora::cli
