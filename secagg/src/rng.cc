#include "fedlora/secagg/rng.h"

namespace fedlora::secagg {

Secret32 NextSecret(RandomSource& rng) {
  Secret32 s;
  rng.Fill(s.data(), s.size());
  return s;
}

}  // namespace fedlora::secagg
