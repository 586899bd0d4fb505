// Throughput of the on-device privacy path at LoRA-delta sizes:
//   bench_privacy [--d 1000000] [--clients 100] [--bits 20] [--noise 1.0] [--reps 3] [--json]
// Reports full DDG encode (clip + rotate + scale + conditional rounding + discrete Gaussian +
// wrap), its stages, the exact sampler alone, server decode, and central-DP add.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "fedlora/privacy/clipping.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/discrete_gaussian.h"
#include "fedlora/privacy/gaussian_noise.h"
#include "fedlora/privacy/hadamard.h"
#include "nlohmann/json.hpp"

namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
double BestSeconds(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  size_t d = 1000000;
  int clients = 100, bits = 20, reps = 3;
  double noise = 1.0;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : "0"; };
    if (a == "--d")
      d = std::strtoull(next(), nullptr, 10);
    else if (a == "--clients")
      clients = std::atoi(next());
    else if (a == "--bits")
      bits = std::atoi(next());
    else if (a == "--noise")
      noise = std::atof(next());
    else if (a == "--reps")
      reps = std::atoi(next());
    else if (a == "--json")
      json = true;
    else {
      std::cerr << "usage: bench_privacy [--d N] [--clients N] [--bits B] [--noise Z] [--reps R] "
                   "[--json]\n";
      return 2;
    }
  }
  using namespace fedlora::privacy;
  DdgConfig config;
  config.dim = d;
  config.expected_clients = clients;
  config.l2_clip = 1.0;
  config.noise_multiplier = noise;
  config.bits = bits;
  auto codec = DdgCodec::Create(config);
  if (!codec.ok()) {
    std::cerr << "bench_privacy: " << codec.status().message() << "\n";
    return 1;
  }
  // The device's real generator: OpenSSL's DRBG (what a phone uses for its noise).
  fedlora::SecureRandom rng;
  std::vector<float> delta(d);
  for (auto& x : delta) x = static_cast<float>(0.01 * rng.StandardNormal());

  std::vector<uint32_t> enc;
  int tries = 0;
  const double t_encode = BestSeconds(reps, [&] {
    auto s = codec->Encode(delta.data(), d, 7, rng, &enc);
    if (!s.ok()) std::abort();
    tries = s->rounding_tries;
  });
  std::vector<float> work = delta;
  const double t_clip = BestSeconds(reps, [&] {
    work = delta;
    if (!ClipL2InPlace(work, 1.0).ok()) std::abort();
  });
  std::vector<double> rotated;
  const double t_rotate = BestSeconds(reps, [&] { RotateForward(delta.data(), d, 7, &rotated); });
  auto sampler = DiscreteGaussianSampler::Create(codec->params().local_sigma2_scaled);
  const size_t n_samples = codec->params().padded_dim;
  int64_t sink = 0;
  const double t_sample = BestSeconds(reps, [&] {
    for (size_t i = 0; i < n_samples; ++i) sink += sampler->Sample(rng);
  });
  // The same draws from the simulator's seeded generator: what the secure one costs.
  fedlora::SeededRandom seeded(uint64_t{42});
  const double t_sample_seeded = BestSeconds(reps, [&] {
    for (size_t i = 0; i < n_samples; ++i) sink += sampler->Sample(seeded);
  });
  const double t_decode = BestSeconds(reps, [&] {
    auto out = codec->Decode(enc, 7);
    if (!out.ok()) std::abort();
  });
  auto central = CentralDpAggregator::Create(d, 1.0, noise);
  const double t_central_add = BestSeconds(reps, [&] {
    if (!central->Add(delta).ok()) std::abort();
  });

  const double mb = d * sizeof(float) / 1e6;
  nlohmann::json j = {
      {"d", d},
      {"padded_dim", codec->params().padded_dim},
      {"clients", clients},
      {"bits", bits},
      {"noise_multiplier", noise},
      {"local_sigma2_scaled", codec->params().local_sigma2_scaled},
      {"encode_s", t_encode},
      {"encode_mcoords_per_s", d / t_encode / 1e6},
      {"encode_mb_per_s", mb / t_encode},
      {"encode_rounding_tries", tries},
      {"clip_s", t_clip},
      {"rotate_s", t_rotate},
      {"discrete_gaussian_ns_per_sample", t_sample / n_samples * 1e9},
      {"discrete_gaussian_seeded_ns_per_sample", t_sample_seeded / n_samples * 1e9},
      {"decode_s", t_decode},
      {"central_add_s", t_central_add},
  };
  if (json) {
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("DDG encode  d=%zu (padded %zu), n=%d, b=%d, z=%g, sigma^2=%.4g (scaled)\n", d,
                codec->params().padded_dim, clients, bits, noise,
                codec->params().local_sigma2_scaled);
    std::printf(
        "  full encode      %8.1f ms  (%.2f M coords/s, %.1f MB/s of float input; %d "
        "rounding tries)\n",
        t_encode * 1e3, d / t_encode / 1e6, mb / t_encode, tries);
    std::printf("  clip (copy+norm) %8.1f ms\n", t_clip * 1e3);
    std::printf("  rotate (FWHT)    %8.1f ms\n", t_rotate * 1e3);
    std::printf(
        "  exact sampler    %8.1f ns/sample (SecureRandom), %.1f ns/sample (SeededRandom)\n",
        t_sample / n_samples * 1e9, t_sample_seeded / n_samples * 1e9);
    std::printf("  server decode    %8.1f ms\n", t_decode * 1e3);
    std::printf("  central-DP add   %8.1f ms\n", t_central_add * 1e3);
  }
  return sink == 42 ? 3 : 0;  // keep `sink` alive
}
