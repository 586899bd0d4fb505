// The one place where fedlora's privacy defaults live. Every command, the coordinator, the
// device and the simulator take their default delta from here (docs/privacy.md, "Defaults").
#ifndef FEDLORA_PRIVACY_DEFAULTS_H_
#define FEDLORA_PRIVACY_DEFAULTS_H_

#include <algorithm>
#include <cmath>

namespace fedlora::privacy {

// The largest delta fedlora uses by default: 1e-5, and smaller for large populations so that
// delta stays well below 1 / population (delta = min(1e-5, population^-1.1)).
inline constexpr double kMaxDefaultDelta = 1e-5;

// The default delta for a population of `population` users (values below 10 count as 10).
inline double DefaultDelta(double population) {
  return std::min(kMaxDefaultDelta, 1.0 / std::pow(std::max(population, 10.0), 1.1));
}

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_DEFAULTS_H_
