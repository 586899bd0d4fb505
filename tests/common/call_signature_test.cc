#include "fedlora/common/call_signature.h"

#include <set>
#include <string>

#include "fedlora/common/ed25519.h"
#include "fedlora/common/openssl_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora {
namespace {

std::string Nonce0To15() {
  std::string n;
  for (int i = 0; i < 16; ++i) n.push_back(static_cast<char>(i));
  return n;
}

// The example documented in call_signature.h, byte for byte (SHA-256 of the empty string is
// the FIPS 180-2 value e3b0c442...).
TEST(CallSignatureTest, DocumentedVectorEmptyBody) {
  EXPECT_EQ(
      CallSigningBytes("/fedlora.proto.Coordinator/Ping", "dev-7", 1700000000123, Nonce0To15(), ""),
      "fedlora-call-v1\n/fedlora.proto.Coordinator/Ping\ndev-7\n1700000000123\n"
      "000102030405060708090a0b0c0d0e0f\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// Body "abc" (FIPS 180-2 test vector ba7816bf...), high nonce bytes, time 0.
TEST(CallSignatureTest, VectorWithBody) {
  std::string nonce(16, '\xff');
  nonce[0] = '\xa0';
  EXPECT_EQ(CallSigningBytes("/p.S/M", "d", 0, nonce, "abc"),
            "fedlora-call-v1\n/p.S/M\nd\n0\na0ffffffffffffffffffffffffffffff\n"
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CallSignatureTest, EveryFieldChangesTheBytes) {
  const std::string nonce = Nonce0To15();
  std::string other_nonce = nonce;
  other_nonce[15] = 16;
  std::set<std::string> all = {
      CallSigningBytes("/s/M", "dev", 1000, nonce, "body"),
      CallSigningBytes("/s/N", "dev", 1000, nonce, "body"),
      CallSigningBytes("/s/M", "dew", 1000, nonce, "body"),
      CallSigningBytes("/s/M", "dev", 1001, nonce, "body"),
      CallSigningBytes("/s/M", "dev", 1000, other_nonce, "body"),
      CallSigningBytes("/s/M", "dev", 1000, nonce, "bodz"),
      CallSigningBytes("/s/M", "dev", 1000, nonce, std::string("body\0", 5)),
  };
  EXPECT_EQ(all.size(), 7u);
  // Pure: the same inputs, the same bytes.
  EXPECT_EQ(CallSigningBytes("/s/M", "dev", 1000, nonce, "body"),
            CallSigningBytes("/s/M", "dev", 1000, nonce, "body"));
}

TEST(CallSignatureTest, SignedCallVerifiesAndRebindingFails) {
  auto key = Ed25519Key::Generate();
  ASSERT_TRUE(key.ok());
  const std::string bytes = CallSigningBytes("/s/Upload", "dev", 5, Nonce0To15(), "update");
  std::string sig = *key->Sign(bytes);
  EXPECT_TRUE(VerifyEd25519(key->PublicRaw(), bytes, sig).ok());
  // The signature of one call does not cover another method.
  EXPECT_FALSE(VerifyEd25519(key->PublicRaw(),
                             CallSigningBytes("/s/Enroll", "dev", 5, Nonce0To15(), "update"), sig)
                   .ok());
}

TEST(CallSignatureTest, MetadataKeysAreLowercaseGrpcKeys) {
  for (const char* key : {kCallDeviceMetadataKey, kCallTimeMetadataKey, kCallNonceMetadataKey,
                          kCallSignatureMetadataKey}) {
    for (const char* c = key; *c; ++c) {
      EXPECT_TRUE((*c >= 'a' && *c <= 'z') || *c == '-') << key;
    }
  }
  EXPECT_STREQ(kCallNonceMetadataKey, "x-fedlora-nonce");
  EXPECT_EQ(kCallNonceBytes, 16u);
}

TEST(EncodingTest, HexRoundTripAndErrors) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const std::string hex = HexEncode(all);
  EXPECT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 6), "000102");
  EXPECT_EQ(hex.substr(506), "fdfeff");
  EXPECT_EQ(*HexDecode(hex), all);
  EXPECT_EQ(*HexDecode("DEADbeef"), "\xde\xad\xbe\xef");
  EXPECT_EQ(*HexDecode(""), "");
  EXPECT_EQ(HexDecode("abc").status().code(), absl::StatusCode::kInvalidArgument);
  auto bad = HexDecode("00zz");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("position 2"));
}

TEST(EncodingTest, Sha256KnownVectors) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(EncodingTest, ConstantTimeEqual) {
  EXPECT_TRUE(ConstantTimeEqual("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEqual("", ""));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "ab"));
}

}  // namespace
}  // namespace fedlora
