// Secure aggregation draws all its randomness from the injected fedlora::RandomSource
// (common/random.h): SecureRandom on real devices and the coordinator, SeededRandom in tests
// and simulations. This header adds the one secagg-specific draw.
#ifndef FEDLORA_SECAGG_RNG_H_
#define FEDLORA_SECAGG_RNG_H_

#include "fedlora/common/random.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {

// 32 fresh secret bytes (an X25519 private key, a PRG seed) from `rng`.
Secret32 NextSecret(RandomSource& rng);

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_RNG_H_
