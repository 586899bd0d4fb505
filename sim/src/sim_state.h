// Internal state of the simulator, shared by simulator.cc, population.cc and evaluation.cc.
#ifndef FEDLORA_SIM_SRC_SIM_STATE_H_
#define FEDLORA_SIM_SRC_SIM_STATE_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/federated_training.h"
#include "fedlora/data/dataset.h"
#include "fedlora/device/evaluate.h"
#include "fedlora/device/runtime.h"
#include "fedlora/device/trainer.h"
#include "fedlora/device/word_strip.h"
#include "fedlora/privacy/participation_accountant.h"
#include "fedlora/sim/aggregation.h"
#include "fedlora/sim/report.h"
#include "fedlora/sim/simulator.h"

namespace fedlora::sim {

// One virtual device: its user's text, pre-tokenized, and its simulated speed.
struct VirtualDevice {
  int user = 0;                  // index into dataset.users
  device::TokenWindows windows;  // training windows (at least local_batch rows)
  double speed = 1.0;            // relative compute speed (log-normal)
};

struct Simulator::State {
  SimConfig config;
  std::string model_dir;
  std::string base_description;
  // The base model's metrics per evaluated user, per population (the base never changes).
  std::map<std::string, std::vector<device::TextMetrics>> base_per_user;  // "float32" or the compression scheme the devices run
  device::Runtime rt;
  data::FederatedDataset dataset;
  std::vector<VirtualDevice> devices;  // the training population
  std::vector<int> heldout;            // dataset user indices
  std::vector<int> eval_participants;  // indices into devices
  std::vector<int> eval_heldout;       // dataset user indices
  adapters::LoraConfig lora;
  size_t dim = 0;  // values each device shares (the whole adapter, or B only for FFA-LoRA)
  std::vector<size_t> shared;  // FFA / FedSA-LoRA: positions of the shared values in `global`
  bool freeze_a = false;
  // FedSA-LoRA: the positions of B in `global`, and each user's own B (dataset user index;
  // absent = B at its init, zero). Never aggregated.
  std::vector<size_t> personal_b;
  std::map<int, std::vector<float>> own_b;
  std::vector<float> global;  // copy of training->global(), refreshed after every round
  // The coordinator's round logic (global adapter, optimizer, aggregation, accountant).
  std::unique_ptr<coordinator::FederatedTraining> training;
  // Each virtual device's epsilon against the coordinator: the rounds it was sampled into,
  // without amplification (what its own ledger would hold; charged for aborted rounds too).
  std::unique_ptr<privacy::ParticipationAccountant> per_device;
  std::unique_ptr<adapters::LoraAdapter> work;  // scratch adapter for evaluation
  device::TrainOptions local;
  // Simulation only: cohort sampling, dropout dice and the central aggregator's noise.
  std::unique_ptr<SeededRandom> rng;
  std::optional<Metrics> base_participants, base_heldout;
  // rounds.strip = lexicon: the public lexicon and n-gram (built from the public corpus, as it
  // would ship with the base model) and the strip without personal words, shared by the base
  // and federated rows and by the adapter-based methods. Null with rounds.strip = greedy.
  std::shared_ptr<const device::PublicLexicon> lexicon;
  std::unique_ptr<device::WordStrip> public_strip;
  // Evaluation options with the public strip (or none).
  device::EvalOptions EvalOpts() const {
    device::EvalOptions o;
    o.strip = public_strip.get();
    return o;
  }
};

// The adapter a user's device starts from: the global one, with the user's own B under
// FedSA-LoRA (evaluation.cc).
std::vector<float> StartFor(const Simulator::State& s, int user);

// population.cc
absl::Status LoadPopulation(Simulator::State* s);
// coordinator_engine.cc: Simulator::Run on the coordinator's RoundManager (virtual clock),
// its store under <out>/coordinator/.
absl::StatusOr<SimResult> RunCoordinatorEngine(
    Simulator::State* s, const std::function<void(const RoundRecord&)>& on_round);
// evaluation.cc
absl::StatusOr<EvalRecord> Evaluate(Simulator::State* s, const std::string& population,
                                    const std::vector<int>& users,
                                    std::optional<Metrics>* base_cache, bool final_eval);
// Both populations (participants, held-out); `last`: the final evaluation (suggestion
// latency and the methods table).
absl::Status EvaluatePopulations(Simulator::State* s, bool last,
                                 std::optional<EvalRecord>* participants,
                                 std::optional<EvalRecord>* heldout);
Metrics ToMetrics(const device::TextMetrics& m);

// personalize.cc: what a personalization method needs of the evaluated users.
struct PersonalizeInput {
  std::vector<int> users;                           // dataset user indices
  std::vector<std::vector<std::string>> tests, vals;  // test text; held-back train lines
  std::vector<std::vector<std::string>> fits;         // the train lines left to fit on
  std::vector<device::TokenWindows> windows;          // the train lines left to fit on
  std::vector<device::TextMetrics> global_test, global_val;  // the global adapter's metrics
  std::vector<std::vector<float>> starts;  // each user's start (StartFor)
};
struct PersonalizeOutput {
  std::vector<device::TextMetrics> per_user;  // on the test text, of the model each user runs
  std::vector<bool> use_personal;             // false: the user fell back to the global adapter
  std::vector<double> latency_ms;             // suggestion strip calls (time_suggestions)
  double seconds = 0;
};
// `method`: ngram | ngram_base | finetune | dual | ditto | interpolate (SimConfig::personalize;
// ngram_base = ngram on the base model, no federated adapter: the ablation). The model has no
// adapter attached before and after.
absl::StatusOr<PersonalizeOutput> Personalize(Simulator::State* s, const std::string& method,
                                              const PersonalizeInput& in, bool time_suggestions);

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_SRC_SIM_STATE_H_
