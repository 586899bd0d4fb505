// Per-round records and the run's report: CSV and JSON lines per round, a final Markdown
// report with PNG plots (gnuplot) and the base / federated / personalized table.
#ifndef FEDLORA_SIM_REPORT_H_
#define FEDLORA_SIM_REPORT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace fedlora::sim {

// The metrics of one model variant on one population's test text.
struct Metrics {
  double perplexity = 0;
  double next_token_top1 = 0;
  double next_word_top3 = 0;
  double keystroke_savings = 0;  // device/keystrokes.h
  int64_t tokens = 0;
  int64_t words = 0;
  nlohmann::json ToJson() const;
};

// base = pretrained model; global = base + current global adapter; personalized = global +
// a few local steps on each user's own train text.
// How many users a step helped, hurt or left as they were, on one metric (per user, on the
// user's own test text).
struct UserShift {
  int gain = 0, lose = 0, same = 0;
  nlohmann::json ToJson() const;
};

// One personalization method (rounds.personalize) on one population.
struct MethodRecord {
  std::string method;  // finetune | dual | ditto | interpolate
  Metrics metrics;
  UserShift vs_global_top3, vs_global_keystrokes;  // per user, against the global adapter
  int kept = 0;        // users running a personal model (the others fell back to the global)
  double seconds = 0;  // local training and scoring, all users
  nlohmann::json ToJson() const;
};

struct EvalRecord {
  std::string population;  // "participants" or "heldout"
  int users = 0;
  Metrics base, global, personalized;
  // Per user: federated against base, personalized against federated.
  UserShift global_vs_base_top3, global_vs_base_keystrokes;
  UserShift personalized_vs_global_top3, personalized_vs_global_keystrokes;
  // Users whose personal adapter beat the global one on their held-back train lines and was
  // kept (rounds.personalize_val_fraction); the others run the global adapter.
  int personalized_kept = 0;
  std::string personalize_method;  // the method behind `personalized`
  // Suggestion strip latency on the personalized model, per call of device::SuggestNextWords
  // (the 3-word strip after a prefix of the user's test text), in milliseconds.
  double suggest_p50_ms = 0, suggest_p95_ms = 0;
  int suggest_calls = 0;
  // rounds.personalize_compare, final evaluation: every method on the same users and adapter.
  std::vector<MethodRecord> methods;
  nlohmann::json ToJson() const;
};

struct DropRecord {
  int device = 0;     // population index
  std::string user;   // dataset user id
  std::string phase;  // "training" (missed the deadline), "advertise_keys", "share_keys",
                      // "masked_input", "unmasking", "rejected"
  std::string reason;
  nlohmann::json ToJson() const;
};

struct RoundRecord {
  int round = 0;         // 1-based
  int sampled = 0;       // devices sampled into the cohort
  int survivors = 0;     // devices whose update is in the aggregate
  bool aborted = false;  // secure aggregation aborted (below threshold): no update
  std::string abort_reason;
  std::vector<DropRecord> dropped;
  double train_loss = 0;        // mean local training loss of the cohort
  double mean_update_norm = 0;  // before clipping
  double clipped_fraction = 0;
  double clip = 0;     // bound used this round
  double epsilon = 0;  // against observers of releases: cumulative, after this round
  // Against the coordinator: the worst device's, after this round (+inf with central DP).
  double epsilon_coordinator = 0;
  // Secure-aggregation sessions (shards, secagg.max_shard_size) the round ran and the survivors
  // each needed to be unmasked, from the coordinator's tasks; 0 when the round sampled no one
  // or ran on the simulator's own sampling (one session, its minimum not reported).
  int shards = 0;
  int shard_min = 0;
  // Shards of this round summed by aggregator processes (grpc.cluster with grpc.aggregators),
  // from their /metrics; 0 when the leader ran every session.
  int shards_on_aggregators = 0;
  double seconds = 0;  // wall time of the round
  double train_seconds = 0;
  double privacy_seconds = 0;  // encode + secure aggregation + decode
  std::optional<EvalRecord> eval_participants;
  std::optional<EvalRecord> eval_heldout;
  nlohmann::json ToJson() const;
};

// The final summary object printed with --json (and stored as summary.json).
struct Summary {
  nlohmann::json config;  // echo of every key
  int rounds_completed = 0;
  // The two epsilons (docs/privacy.md, "Threat model"), both at `delta`:
  double epsilon = 0;              // against observers of the released adapters (amplified)
  double epsilon_coordinator = 0;  // against the coordinator: the worst device (+inf: central)
  int max_rounds_per_device = 0;   // the most rounds any one device was sampled into
  // Coordinator engines: each round's secure-aggregation sessions (RoundRecord::shards) and the
  // survivors each shard needed (every device's noise is calibrated for it).
  std::vector<int> shards_per_round;
  int shard_min = 0;
  // grpc.cluster: the shards each aggregator process summed over the run, by name (empty
  // without aggregator processes).
  std::map<std::string, int64_t> aggregator_shards;
  double delta = 0;
  std::string privacy_assumption;          // neighbouring relation and sampling `epsilon` assumes
  std::string randomness;                  // where the noise came from (seeded in simulation)
  // Who sampled, summed and charged the rounds (EngineDescription in sim_config.h).
  std::string engine;
  std::string stop_reason;                 // empty when all rounds ran
  std::optional<EvalRecord> participants;  // last evaluation
  std::optional<EvalRecord> heldout;
  double seconds = 0;
  std::string adapter_dir;  // the final global adapter (PEFT)
  std::string base_model_dir;     // the base the devices ran
  std::string base_model_scheme;  // "float32" or its compression
  nlohmann::json ToJson() const;
};

// The secure-aggregation sessions per round (Summary::shards_per_round) in words: "3" when every
// round that sampled devices ran 3, else "2 to 3 (rounds.csv, column shards)".
std::string ShardCountsText(const std::vector<int>& shards_per_round);

// The shards aggregator processes summed (Summary::aggregator_shards) in words: "4 (agg-0 2,
// agg-1 2)"; "" when the run had no aggregator processes.
std::string AggregatorShardsText(const std::map<std::string, int64_t>& aggregator_shards);

// Checks `out_dir` before any work: creates it, refuses (FAILED_PRECONDITION, naming the file)
// when it holds an earlier run's rounds.csv, rounds.jsonl, summary.json or report.md unless
// `force`, and fails now (naming the path) when it cannot be written.
absl::Status PrepareOutputDir(const std::string& out_dir, bool force);

// Writes into `out_dir`: rounds.csv, rounds.jsonl (one line per round, flushed as they come),
// summary.json, report.md, and plots loss.png, accuracy.png, epsilon.png (when gnuplot is
// installed; otherwise the report says so). Errors (e.g. a full disk) name the file.
class ReportWriter {
 public:
  static absl::StatusOr<ReportWriter> Open(const std::string& out_dir);
  absl::Status AppendRound(const RoundRecord& record);
  absl::Status Finish(const Summary& summary);
  const std::string& out_dir() const { return out_dir_; }

 private:
  std::string out_dir_;
  std::vector<RoundRecord> rounds_;
};

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_REPORT_H_
