// Helpers shared by the secagg protocol tests.
#ifndef FEDLORA_TESTS_SECAGG_SECAGG_TESTUTIL_H_
#define FEDLORA_TESTS_SECAGG_SECAGG_TESTUTIL_H_

#include <cstdint>
#include <vector>

#include "fedlora/secagg/round_driver.h"

namespace fedlora::secagg::testing {

// n random vectors of length dim with entries < 2^bits.
std::vector<std::vector<uint32_t>> RandomInputs(uint32_t n, uint64_t dim, int bits, uint64_t seed);

RoundConfig MakeRoundConfig(uint32_t n, uint64_t dim, int bits, proto::SecAggGraph graph,
                            uint32_t threshold = 0, uint32_t degree = 0);

// Devices the report says are in the sum.
std::vector<uint32_t> IncludedFromReport(const RoundResult& r);

}  // namespace fedlora::secagg::testing

#endif  // FEDLORA_TESTS_SECAGG_SECAGG_TESTUTIL_H_
