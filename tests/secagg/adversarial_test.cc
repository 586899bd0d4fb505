// Misbehaving servers and devices: refusals, tampering, replays, duplicates, malformed and
// out-of-round messages. Every case checks that the misbehaving party is singled out and
// that the round either still yields the exact sum or aborts with a reason.
#include <gtest/gtest.h>

#include <map>

#include "fedlora/secagg/round_driver.h"
#include "secagg_testutil.h"

namespace fedlora::secagg {
namespace {

using testing::MakeRoundConfig;
using testing::RandomInputs;

constexpr uint32_t kN = 12;
constexpr uint64_t kDim = 200;
constexpr int kBits = 24;

RoundResult RunWithHooks(const TransportHooks& hooks, const DropoutPlan& plan = {},
                         uint64_t seed = 1) {
  auto inputs = RandomInputs(kN, kDim, kBits, seed);
  SeededRandom rng(seed);
  auto r = RunInProcessRound(MakeRoundConfig(kN, kDim, kBits, proto::SECAGG_GRAPH_COMPLETE, 7),
                             inputs, plan, rng, &hooks);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r->aborted) {
    EXPECT_EQ(r->sum, PlainSum(inputs, r->included_devices, kBits));
  }
  return std::move(r).value();
}

std::vector<proto::SecAggDeviceMessage> Pass(proto::SecAggDeviceMessage m) {
  return {std::move(m)};
}

TEST(AdversarialTest, ServerAskingForBothSharesIsRefusedByEveryHonestDevice) {
  TransportHooks hooks;
  // Device 0 dropped after sharing, so the server may ask for its key share; the malicious
  // server also lists survivor 1 as dropped, asking for both of device 1's shares.
  hooks.to_device = [](uint32_t, proto::SecAggServerMessage* m) {
    if (!m->has_unmasking_request()) return;
    auto* req = m->mutable_unmasking_request();
    for (uint32_t v : req->survivors()) {
      if (v == 1) req->add_dropped(1);
    }
  };
  DropoutPlan plan;
  plan.silent_in_phase[2] = {0};
  RoundResult r = RunWithHooks(hooks, plan);
  EXPECT_TRUE(r.aborted);
  int refusals = 0;
  for (const auto& d : r.report.devices) {
    if (d.id == 0 || d.id == 1) continue;  // 0 is silent; 1 was not asked about itself
    EXPECT_EQ(d.reason, DropReason::kDeviceAborted) << d.id << ": " << d.detail;
    EXPECT_NE(d.detail.find("refuses"), std::string::npos) << d.detail;
    EXPECT_NE(d.detail.find("both"), std::string::npos) << d.detail;
    ++refusals;
  }
  EXPECT_EQ(refusals, static_cast<int>(kN) - 2);
  EXPECT_TRUE(r.sum.empty());
}

TEST(AdversarialTest, SplitViewsNeverYieldBothSecretsWithAnHonestMajorityThreshold) {
  // A server that tells half the devices "device 1 survived" and the other half "device 1
  // dropped" cannot be caught by any single device (no consistency-check round), but with
  // t > n/2 it never collects t shares of both of device 1's secrets.
  TransportHooks hooks;
  hooks.to_device = [](uint32_t device, proto::SecAggServerMessage* m) {
    if (!m->has_unmasking_request() || device == 1 || device % 2 == 0) return;
    auto* req = m->mutable_unmasking_request();
    std::vector<uint32_t> survivors(req->survivors().begin(), req->survivors().end());
    req->clear_survivors();
    for (uint32_t v : survivors) {
      if (v == 1) {
        req->add_dropped(1);
      } else {
        req->add_survivors(v);
      }
    }
  };
  int self_shares_of_1 = 0, key_shares_of_1 = 0;
  hooks.to_server = [&](Phase p, proto::SecAggDeviceMessage m) {
    if (p == Phase::kUnmasking) {
      for (const auto& s : m.unmasking().self_mask_shares()) self_shares_of_1 += s.owner() == 1;
      for (const auto& s : m.unmasking().pairwise_key_shares()) key_shares_of_1 += s.owner() == 1;
    }
    return Pass(std::move(m));
  };
  RoundResult r = RunWithHooks(hooks);
  EXPECT_GT(self_shares_of_1, 0);
  EXPECT_GT(key_shares_of_1, 0);
  EXPECT_FALSE(self_shares_of_1 >= 7 && key_shares_of_1 >= 7);
  // The honest server logic rejects the unrequested key shares of device 1.
  EXPECT_EQ(r.report.devices[3].reason, DropReason::kMalformedMessage);
}

TEST(AdversarialTest, TamperedShareCiphertextIsDetected) {
  TransportHooks hooks;
  hooks.to_device = [](uint32_t device, proto::SecAggServerMessage* m) {
    if (device != 3 || !m->has_masked_input_request()) return;
    auto* share = m->mutable_masked_input_request()->mutable_shares(0);
    (*share->mutable_ciphertext())[20] ^= 0x40;
  };
  RoundResult r = RunWithHooks(hooks);
  ASSERT_FALSE(r.aborted) << r.abort_status;
  const auto& d3 = r.report.devices[3];
  EXPECT_EQ(d3.reason, DropReason::kDeviceAborted);
  EXPECT_EQ(d3.dropped_in, Phase::kMaskedInput);
  EXPECT_NE(d3.detail.find("failed authentication"), std::string::npos) << d3.detail;
  EXPECT_FALSE(d3.included_in_sum);
  EXPECT_EQ(r.included_devices.size(), kN - 1);
}

TEST(AdversarialTest, MisroutedShareFailsAuthentication) {
  // The server swaps the claimed sender of two shares: the AAD binds sender and receiver.
  TransportHooks hooks;
  hooks.to_device = [](uint32_t device, proto::SecAggServerMessage* m) {
    if (device != 5 || !m->has_masked_input_request()) return;
    auto* req = m->mutable_masked_input_request();
    std::swap(*req->mutable_shares(0)->mutable_ciphertext(),
              *req->mutable_shares(1)->mutable_ciphertext());
  };
  RoundResult r = RunWithHooks(hooks);
  ASSERT_FALSE(r.aborted);
  EXPECT_NE(r.report.devices[5].detail.find("failed authentication"), std::string::npos);
}

TEST(AdversarialTest, DuplicateMessagesDropTheSenderInEveryPhase) {
  for (int phase = 0; phase < kNumProtocolPhases; ++phase) {
    const uint32_t culprit = 4;
    TransportHooks hooks;
    hooks.to_server = [&](Phase p, proto::SecAggDeviceMessage m) {
      if (static_cast<int>(p) == phase && m.device() == culprit) return std::vector{m, m};
      return Pass(std::move(m));
    };
    RoundResult r = RunWithHooks(hooks, {}, 10 + phase);
    ASSERT_FALSE(r.aborted) << phase << ": " << r.abort_status
                            << " dev0: " << r.report.devices[0].detail;
    const auto& d = r.report.devices[culprit];
    EXPECT_EQ(d.reason, DropReason::kDuplicateMessage) << phase;
    EXPECT_EQ(d.dropped_in, static_cast<Phase>(phase));
    // A duplicate in unmasking comes after the input entered the sum.
    EXPECT_EQ(d.included_in_sum, phase == 3) << phase;
    EXPECT_EQ(r.report.drop_counts[static_cast<int>(DropReason::kDuplicateMessage)], 1);
  }
}

TEST(AdversarialTest, ReplayedAndOutOfOrderMessagesAreRejected) {
  std::map<uint32_t, proto::SecAggDeviceMessage> advertised;
  TransportHooks hooks;
  hooks.to_server = [&](Phase p, proto::SecAggDeviceMessage m) {
    if (p == Phase::kAdvertiseKeys) advertised[m.device()] = m;
    // Device 2's AdvertiseKeys is replayed during the masked-input phase.
    if (p == Phase::kMaskedInput && m.device() == 2) return std::vector{advertised[2], m};
    return Pass(std::move(m));
  };
  RoundResult r = RunWithHooks(hooks);
  ASSERT_FALSE(r.aborted);
  EXPECT_EQ(r.report.devices[2].reason, DropReason::kUnexpectedMessage);
  EXPECT_EQ(r.report.devices[2].dropped_in, Phase::kMaskedInput);
  EXPECT_FALSE(r.report.devices[2].included_in_sum);
}

TEST(AdversarialTest, CrossRoundAndWrongSessionMessagesAreRejected) {
  TransportHooks hooks;
  hooks.to_server = [](Phase p, proto::SecAggDeviceMessage m) {
    if (p == Phase::kShareKeys && m.device() == 6) m.set_round_nonce(std::string(32, 'x'));
    if (p == Phase::kMaskedInput && m.device() == 7) (*m.mutable_session_id())[0] ^= 1;
    return Pass(std::move(m));
  };
  RoundResult r = RunWithHooks(hooks);
  ASSERT_FALSE(r.aborted);
  EXPECT_EQ(r.report.devices[6].reason, DropReason::kWrongSession);
  EXPECT_EQ(r.report.devices[7].reason, DropReason::kWrongSession);
  EXPECT_EQ(r.report.drop_counts[static_cast<int>(DropReason::kWrongSession)], 2);
}

TEST(AdversarialTest, WrongVectorLengthAndMalformedSharesDropTheDevice) {
  TransportHooks hooks;
  hooks.to_server = [](Phase p, proto::SecAggDeviceMessage m) {
    if (p == Phase::kMaskedInput && m.device() == 8) {
      m.mutable_masked_input()->set_dim(kDim - 1);
    }
    if (p == Phase::kShareKeys && m.device() == 9) {
      m.mutable_share_keys()->mutable_shares(0)->mutable_ciphertext()->pop_back();
    }
    if (p == Phase::kUnmasking && m.device() == 10) {
      m.mutable_unmasking()->mutable_self_mask_shares(0)->set_share("short");
    }
    return Pass(std::move(m));
  };
  RoundResult r = RunWithHooks(hooks);
  ASSERT_FALSE(r.aborted) << r.abort_status;
  EXPECT_EQ(r.report.devices[8].reason, DropReason::kWrongVectorLength);
  EXPECT_EQ(r.report.devices[9].reason, DropReason::kMalformedMessage);
  EXPECT_EQ(r.report.devices[9].dropped_in, Phase::kShareKeys);
  EXPECT_EQ(r.report.devices[10].reason, DropReason::kMalformedMessage);
  EXPECT_TRUE(r.report.devices[10].included_in_sum);  // its input was already summed
}

TEST(AdversarialTest, DeviceOutsideTheRoundIsRejectedAndCounted) {
  TransportHooks hooks;
  hooks.to_server = [](Phase p, proto::SecAggDeviceMessage m) {
    if (p == Phase::kShareKeys && m.device() == 0) {
      proto::SecAggDeviceMessage stranger = m;
      stranger.set_device(kN + 5);
      return std::vector{m, stranger};
    }
    return Pass(std::move(m));
  };
  RoundResult r = RunWithHooks(hooks);
  ASSERT_FALSE(r.aborted);
  EXPECT_EQ(r.report.rejected_unknown_device, 1);
  EXPECT_EQ(r.included_devices.size(), kN);
}

TEST(AdversarialTest, ServerAlteringADevicesKeysIsDetectedByThatDevice) {
  TransportHooks hooks;
  hooks.to_device = [](uint32_t device, proto::SecAggServerMessage* m) {
    if (device != 2 || !m->has_share_keys_request()) return;
    for (auto& k : *m->mutable_share_keys_request()->mutable_keys()) {
      if (k.device() == 3) (*k.mutable_mask_public_key())[0] ^= 1;  // substitute a key
    }
  };
  RoundResult r = RunWithHooks(hooks);
  ASSERT_FALSE(r.aborted);
  EXPECT_EQ(r.report.devices[2].reason, DropReason::kDeviceAborted);
  EXPECT_NE(r.report.devices[2].detail.find("digest"), std::string::npos)
      << r.report.devices[2].detail;
}

}  // namespace
}  // namespace fedlora::secagg
