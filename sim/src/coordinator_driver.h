// The coordinator's own round engine, in process, on a virtual clock (rounds.engine =
// coordinator): a coordinator::RoundManager over a SQLite store under <out>/coordinator/, with
// a seeded generator, driven only through its public API (CheckIn, SecAgg, Tick, Current,
// finished). Selection, the secure-aggregation server, the sum and every privacy charge are
// the coordinator's; what is simulated is when each virtual device speaks: its check-in
// (spread by its speed), its training time against the coordinator's training deadline
// (secagg.deadline), and the dropout dice that make it go silent before a phase. The
// virtual clock advances to the next device event, or in steps of at most one second while
// the coordinator waits for a deadline, so the driver needs no knowledge of the state rules.
#ifndef FEDLORA_SIM_SRC_COORDINATOR_DRIVER_H_
#define FEDLORA_SIM_SRC_COORDINATOR_DRIVER_H_

#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/metrics.h"
#include "fedlora/coordinator/round_manager.h"
#include "fedlora/coordinator/store.h"
#include "sim_state.h"

namespace fedlora::sim {

class CoordinatorDriver {
 public:
  // Creates the state folder `dir` (coordinator::CreateStateFolder: the sim's recipe, its
  // initial adapter as version 1) and opens the manager on it. ALREADY_EXISTS when `dir` is
  // already a state folder; the coordinator's errors otherwise.
  static absl::StatusOr<std::unique_ptr<CoordinatorDriver>> Create(Simulator::State* s,
                                                                   const std::string& dir);
  ~CoordinatorDriver();

  // Runs the coordinator's current round from its first check-in to its commit or abort and
  // fills `rec` (sampled, survivors, dropped, aborted, abort reason, clip, losses, norms,
  // seconds). After a commit `s->global` is the store's latest adapter. Returns false, with
  // `*stop` set, when the coordinator has stopped training (privacy budget spent) before the
  // round ran. INTERNAL when a round does not end within a virtual week.
  absl::StatusOr<bool> RunRound(int round, RoundRecord* rec, std::string* stop);

  const coordinator::Store& store() const { return *store_; }
  double delta() const { return delta_; }

 private:
  struct Device;  // one tasked device of the current round
  struct Event {
    absl::Time at;
    int device;  // population index
    int phase;   // -1: check in; else the secure-aggregation phase to upload
    bool operator>(const Event& o) const {
      return at != o.at ? at > o.at : device != o.device ? device > o.device : phase > o.phase;
    }
  };
  struct CheckInReply {
    int device;
    absl::Status status;
    v1::CheckInResponse reply;
  };
  struct UploadReply {
    int device, phase;
    absl::Status status;
    v1::SecAggDownload reply;
  };
  CoordinatorDriver() = default;

  bool RoundOver() const;
  void Execute(const Event& e);
  // Handles every reply the manager delivered; trains newly tasked devices.
  absl::Status ProcessInbox(RoundRecord* rec);
  absl::Status StartTasked(std::vector<std::pair<int, v1::Task>> tasked, RoundRecord* rec);
  void Drop(Device& d, const std::string& phase, const std::string& reason);
  absl::Status FinishRound(RoundRecord* rec);

  Simulator::State* s_ = nullptr;
  absl::Time now_;
  double delta_ = 0;
  std::string base_sha_;
  std::unique_ptr<SeededRandom> rng_;  // the coordinator's (seeded: a simulation)
  std::unique_ptr<coordinator::MetricsRegistry> metrics_;
  std::unique_ptr<coordinator::Store> store_;
  std::unique_ptr<coordinator::RoundManager> manager_;
  std::string log_path_;

  // The current round.
  uint64_t round_ = 0;
  uint64_t round_seed_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  // Replies the manager delivered during a call, handled after it returns.
  std::vector<CheckInReply> checkins_;
  std::vector<UploadReply> uploads_;
  std::vector<std::string> log_;  // the coordinator's log lines of the current round
  std::map<int, std::unique_ptr<Device>> devices_;
  std::string budget_spent_;  // a BUDGET_EXHAUSTED rejection's detail
  std::vector<DropRecord> drops_;
  double train_wall_ = 0, loss_sum_ = 0, norm_sum_ = 0;
  int clipped_ = 0, measured_ = 0;  // devices' own log of PrepareUpdate
};

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_SRC_COORDINATOR_DRIVER_H_
