// Helpers the simulator tests share: a tiny model and a small, fast config.
#ifndef FEDLORA_TESTS_SIM_SIM_TESTUTIL_H_
#define FEDLORA_TESTS_SIM_SIM_TESTUTIL_H_

#include <string>

#include "fedlora/sim/sim_config.h"

namespace fedlora::sim {

// A tiny random model with a tokenizer trained on the personas' public text, made once per
// test process under the temp folder; returns its directory (aborts if it cannot be made).
const std::string& TinyModelDir();

// 12 devices over "personas:lines=20", 2 rounds of a fixed cohort of 6, the complete graph,
// no dropout, tiny local training; run.out = <temp>/<out>, no progress bar.
SimConfig SmallConfig(const std::string& out);

}  // namespace fedlora::sim

#endif  // FEDLORA_TESTS_SIM_SIM_TESTUTIL_H_
