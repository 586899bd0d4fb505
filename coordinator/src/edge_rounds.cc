#include "fedlora/coordinator/edge_rounds.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/call_signature.h"
#include "fedlora/coordinator/selection_coin.h"
#include "raw_call.h"

namespace fedlora::coordinator {

void DefineEdgeMetrics(MetricsRegistry& m) {
  DefineCoordinatorMetrics(m);
  m.DefineCounter("fedlora_edge_checkins_total",
                  "Check-ins an edge answered itself, by outcome: rejected (before any coin; "
                  "the reasons in fedlora_rejections_total) or coin (sampled or not, counted "
                  "together: the numbers apart are private).",
                  {"outcome"});
  m.DefineCounter("fedlora_edge_forwarded_total",
                  "Secure-aggregation calls forwarded to the leader, by method (sampled "
                  "check-ins are forwarded too and not counted: their number is private).",
                  {"method"});
  m.DefineCounter("fedlora_edge_forward_errors_total",
                  "Forwarded calls the leader could not be asked (UNAVAILABLE, DEADLINE_EXCEEDED)"
                  " or refused, by gRPC code.",
                  {"code"});
  m.DefineGauge("fedlora_edge_window_age_seconds",
                "Seconds since the edge last read the leader's selection window (grows while "
                "the database cannot be read).");
}

// The forwarding client: connections to the leader the window names (all replaced when it
// names another), calls sent as raw bytes with the device's signature metadata. A forwarded
// call waits at the leader until its phase closes, so a round's sampled devices are all in
// flight at once: at most `per_connection` calls go on one connection, and another connection
// opens when all are that busy (the leader allows max_streams_per_connection per connection;
// calls beyond it would queue here and miss their phase).
class EdgeRounds::Forwarder {
 public:
  Forwarder(std::string roots, absl::Duration max_wait, int per_connection)
      : roots_(std::move(roots)), max_wait_(max_wait), per_connection_(std::max(1, per_connection)) {}

  ~Forwarder() { CancelAll(); }

  using Done = std::function<void(absl::Status, const grpc::ByteBuffer&)>;
  void Call(const std::string& leader, bool tls, const SignedCall& call, Done done) {
    if (leader.empty()) {
      return done(absl::UnavailableError("no leader has published its address yet; retry"), {});
    }
    auto p = std::make_shared<Pending>();
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopped_) {
        return done(absl::UnavailableError("the edge is shutting down; retry"), {});
      }
      pending_.insert(p);
    }
    p->request = call.request;
    p->ctx.AddMetadata(kCallDeviceMetadataKey, call.device_id);
    p->ctx.AddMetadata(kCallTimeMetadataKey, call.time_ms);
    p->ctx.AddMetadata(kCallNonceMetadataKey, call.nonce_hex);
    p->ctx.AddMetadata(kCallSignatureMetadataKey, call.signature_hex);
    const auto cap = std::chrono::system_clock::now() + absl::ToChronoMilliseconds(max_wait_);
    p->ctx.set_deadline(std::min(call.deadline, cap));
    p->connection = Acquire(leader, tls);
    grpc::GenericStub stub(p->connection->channel);
    stub.UnaryCall(&p->ctx, call.method, grpc::StubOptions(), &p->request, &p->response,
                   [this, p, leader, done = std::move(done)](grpc::Status s) {
                     absl::Status status;
                     if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
                       status = absl::UnavailableError(absl::StrCat(
                           "the leader (", leader, ") is unreachable: ", s.error_message(),
                           "; retry (a standby takes over within the lease ttl)"));
                     } else if (!s.ok()) {
                       status = absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                                             s.error_message());
                     }
                     done(status, p->response);
                     Finished(p);
                   });
  }

  // Cancels the calls in flight (their devices get CANCELLED), refuses new ones, and waits up
  // to 5 s for their callbacks.
  void CancelAll() {
    std::vector<std::shared_ptr<Pending>> running;
    {
      std::lock_guard<std::mutex> l(mu_);
      stopped_ = true;
      running.assign(pending_.begin(), pending_.end());
    }
    for (auto& p : running) p->ctx.TryCancel();
    std::unique_lock<std::mutex> l(mu_);
    idle_.wait_for(l, std::chrono::seconds(5), [this] { return pending_.empty(); });
  }

 private:
  struct Connection {
    std::shared_ptr<grpc::Channel> channel;
    int in_flight = 0;  // guarded by Forwarder::mu_
  };
  struct Pending {
    grpc::ClientContext ctx;
    grpc::ByteBuffer request, response;
    std::shared_ptr<Connection> connection;
  };

  // A connection to `leader` with room for one more call (a new one when all are full).
  std::shared_ptr<Connection> Acquire(const std::string& leader, bool tls) {
    std::lock_guard<std::mutex> l(mu_);
    if (leader != address_ || tls != tls_) {
      pool_.clear();  // calls in flight keep their connection until they finish
      address_ = leader;
      tls_ = tls;
    }
    for (auto& c : pool_) {
      if (c->in_flight < per_connection_) {
        ++c->in_flight;
        return c;
      }
    }
    grpc::ChannelArguments args;
    // A leader that comes back (or a successor at the same address) is reached within ~2 s.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    // Each channel its own connection (channels with equal arguments would share one).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("fedlora.edge_connection", static_cast<int>(pool_.size()));
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (tls) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = roots_;
      creds = grpc::SslCredentials(ssl);
    } else {
      creds = grpc::InsecureChannelCredentials();
    }
    auto c = std::make_shared<Connection>();
    c->channel = grpc::CreateCustomChannel(leader, creds, args);
    c->in_flight = 1;
    pool_.push_back(c);
    return c;
  }

  void Finished(const std::shared_ptr<Pending>& p) {
    std::lock_guard<std::mutex> l(mu_);
    --p->connection->in_flight;
    pending_.erase(p);
    if (pending_.empty()) idle_.notify_all();
  }

  const std::string roots_;
  const absl::Duration max_wait_;
  const int per_connection_;
  std::mutex mu_;
  std::string address_;
  bool tls_ = true;
  std::vector<std::shared_ptr<Connection>> pool_;
  std::set<std::shared_ptr<Pending>> pending_;
  std::condition_variable idle_;
  bool stopped_ = false;
};

EdgeRounds::EdgeRounds(Store* store, MetricsRegistry* metrics, EdgeRoundsOptions options)
    : store_(store),
      metrics_(metrics),
      options_(std::move(options)),
      forwarder_(std::make_unique<Forwarder>(options_.leader_roots_pem, options_.max_forward_wait,
                                             options_.forward_streams_per_connection)) {}

EdgeRounds::~EdgeRounds() { Stop(); }

absl::Status EdgeRounds::Poll() {
  auto json = store_->GetMeta(kSelectionWindowKey);
  absl::Status s = json.status();
  if (json.ok()) {
    auto w = SelectionWindowFromJson(*json);
    if (w.ok()) {
      SetWindow(*w);
    } else {
      s = w.status();
    }
  } else if (s.code() == absl::StatusCode::kNotFound) {
    s = absl::NotFoundError(
        "no selection window is published (hint: start `fedlora coordinator run` on this "
        "population; edges answer NO_ROUND_OPEN until a leader serves)");
  }
  std::lock_guard<std::mutex> l(mu_);
  if (window_read_ != absl::InfinitePast()) {
    metrics_->Set("fedlora_edge_window_age_seconds", absl::ToDoubleSeconds(Now() - window_read_));
  }
  return s;
}

void EdgeRounds::SetWindow(const SelectionWindow& w) {
  std::lock_guard<std::mutex> l(mu_);
  window_ = w;
  window_read_ = Now();
}

void EdgeRounds::Start() {
  stop_ = false;
  poller_ = std::thread([this] {
    std::string last_error;
    while (!stop_) {
      absl::Status s = Poll();
      const std::string now_error = s.ok() ? "" : s.ToString();
      if (now_error != last_error && options_.log) {
        options_.log(s.ok() ? "selection window read again" : "cannot read the selection window: " + now_error);
      }
      last_error = now_error;
      for (absl::Duration slept; slept < options_.poll_interval && !stop_;
           slept += absl::Milliseconds(20)) {
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
  });
}

void EdgeRounds::Stop() {
  stop_ = true;
  if (poller_.joinable()) poller_.join();
  forwarder_->CancelAll();
}

absl::Status EdgeRounds::RecordCoins(const SelectionWindow& w) {
  const std::string key = absl::StrCat(w.round, "/", w.opened_ms);
  std::lock_guard<std::mutex> l(record_mu_);
  if (recorded_ == key) return absl::OkStatus();
  absl::Status s = store_->PutMeta(CoinsFlippedKey(w.round), absl::StrCat(w.opened_ms));
  if (!s.ok()) return s;
  recorded_ = key;
  return absl::OkStatus();
}

std::optional<SelectionWindow> EdgeRounds::Held() const {
  std::lock_guard<std::mutex> l(mu_);
  return window_;
}

std::optional<SelectionWindow> EdgeRounds::HeldFresh(absl::Time now) {
  absl::Time read;
  std::optional<SelectionWindow> held;
  {
    std::lock_guard<std::mutex> l(mu_);
    held = window_;
    read = window_read_;
  }
  const bool coin_time =
      held && held->state == "selecting" && now >= absl::FromUnixMillis(held->opened_ms) &&
      now < absl::FromUnixMillis(held->end_ms) - options_.close_margin;
  if ((held && held->state != "closed" && held->state != "selecting") || coin_time ||
      now - read < options_.reread_after) {
    return held;
  }
  // One reread at a time; a check-in that waited for another's uses what it read.
  std::lock_guard<std::mutex> one(reread_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (window_read_ > read) return window_;
  }
  if (!Poll().ok()) return held;  // the held window stays; the poller logs the error
  return Held();
}

absl::StatusOr<std::optional<v1::CheckInResponse>> EdgeRounds::Decide(
    const std::string& device_id, const v1::CheckInRequest& request, absl::Time now) {
  return DecideOn(HeldFresh(now), device_id, request, now);
}

absl::StatusOr<std::optional<v1::CheckInResponse>> EdgeRounds::DecideOn(
    const std::optional<SelectionWindow>& held, const std::string& device_id,
    const v1::CheckInRequest& request, absl::Time now) {
  v1::CheckInResponse r;
  v1::Rejection* rej = r.mutable_rejection();
  auto reject = [&](v1::RejectionReason reason, std::string detail, absl::Duration earliest,
                    absl::Duration lo, absl::Duration hi) {
    rej->set_reason(reason);
    rej->set_detail(std::move(detail));
    SetRetryWindow(rej, earliest, lo, hi);
    CountRejection(*metrics_, reason);
    metrics_->Increment("fedlora_edge_checkins_total", {"rejected"});
    return std::optional<v1::CheckInResponse>(r);
  };
  if (!held) {
    // The leader's defaults (round_manager.h): come back within 1-10 s.
    return reject(v1::REJECTION_NO_ROUND_OPEN,
                  "no selection window is published yet (the leader is starting); retry",
                  absl::ZeroDuration(), absl::Seconds(1), absl::Seconds(10));
  }
  const SelectionWindow& w = *held;
  const absl::Duration lo = absl::Milliseconds(w.retry_min_ms), hi = absl::Milliseconds(w.retry_max_ms);
  if (auto early = RejectBeforeCoin(w.base_model_sha256, w.min_examples, request, lo, hi)) {
    CountRejection(*metrics_, early->rejection().reason());
    metrics_->Increment("fedlora_edge_checkins_total", {"rejected"});
    return early;
  }
  if (w.state == "finished") {
    return reject(v1::REJECTION_BUDGET_EXHAUSTED, absl::StrCat("training is over: ", w.detail),
                  absl::Hours(1), lo, hi);
  }
  if (w.state == "closed") {
    const absl::Duration eta =
        std::max(absl::ZeroDuration(), absl::FromUnixMillis(w.retry_after_ms) - now);
    return reject(v1::REJECTION_NO_ROUND_OPEN,
                  absl::StrCat("round ", w.round, " is past its selection; the next selection "
                               "opens after it"),
                  eta, lo, hi);
  }
  const absl::Time opened = absl::FromUnixMillis(w.opened_ms);
  const absl::Time last_coin = absl::FromUnixMillis(w.end_ms) - options_.close_margin;
  auto closed = [&] {
    return reject(v1::REJECTION_NO_ROUND_OPEN,
                  absl::StrCat("round ", w.round,
                               "'s selection window has closed; the next one opens after it"),
                  absl::ZeroDuration(), lo, hi);
  };
  if (now < opened || now >= last_coin) return closed();
  if (absl::Status s = RecordCoins(w); !s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "the edge cannot reach the population's database (", s.message(), "); retry"));
  }
  // The record must be in the store before the leader closes the window.
  if (Now() >= last_coin) return closed();
  metrics_->Increment("fedlora_edge_checkins_total", {"coin"});
  if (CoinSelected(w.coin_key, w.round, device_id, w.q)) return std::nullopt;
  // Not counted by reason (private), as at the leader.
  rej->set_reason(v1::REJECTION_NOT_SELECTED);
  rej->set_detail(absl::StrFormat("not sampled for round %d (rate %g)", w.round, w.q));
  SetRetryWindow(rej, hi, lo, hi);
  return std::optional<v1::CheckInResponse>(r);
}

void EdgeRounds::CheckIn(const SignedCall& call, const v1::CheckInRequest& request,
                         RoundManager::CheckInDone done) {
  const absl::Time now = Now();
  const std::optional<SelectionWindow> held = HeldFresh(now);
  auto local = DecideOn(held, call.device_id, request, now);
  if (!local.ok()) return done(local.status(), {});
  if (local->has_value()) return done(absl::OkStatus(), std::move(**local));
  // Sampled in the window `held` (never empty here): to the leader that published it.
  forwarder_->Call(held->leader, held->leader_tls, call,
                   [this, done = std::move(done)](absl::Status s, const grpc::ByteBuffer& bytes) {
                     v1::CheckInResponse reply;
                     if (s.ok() && !internal::ParseRequest(bytes, SIZE_MAX, "reply", &reply).ok()) {
                       s = absl::InternalError("the leader's CheckIn reply does not parse");
                     }
                     if (!s.ok()) {
                       metrics_->Increment("fedlora_edge_forward_errors_total",
                                           {absl::StatusCodeToString(s.code())});
                     }
                     done(s, std::move(reply));
                   });
}

void EdgeRounds::SecAgg(const SignedCall& call, secagg::Phase, const v1::SecAggUpload&,
                        const std::string&, RoundManager::SecAggDone done) {
  const std::optional<SelectionWindow> held = Held();
  const std::string leader = held ? held->leader : "";
  const bool tls = held ? held->leader_tls : true;
  const std::string method = call.method.substr(call.method.rfind('/') + 1);
  metrics_->Increment("fedlora_edge_forwarded_total", {method});
  forwarder_->Call(leader, tls, call,
                   [this, done = std::move(done)](absl::Status s, const grpc::ByteBuffer& bytes) {
                     v1::SecAggDownload reply;
                     if (s.ok() && !internal::ParseRequest(bytes, SIZE_MAX, "reply", &reply).ok()) {
                       s = absl::InternalError("the leader's secure-aggregation reply does not parse");
                     }
                     if (!s.ok()) {
                       metrics_->Increment("fedlora_edge_forward_errors_total",
                                           {absl::StatusCodeToString(s.code())});
                     }
                     done(s, std::move(reply));
                   });
}

}  // namespace fedlora::coordinator
