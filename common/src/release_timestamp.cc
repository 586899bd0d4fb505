#include "fedlora/common/release_timestamp.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/status_macros.h"

namespace fedlora {
namespace {

bool OneLine(const std::string& s) { return s.find_first_of("\r\n ") == std::string::npos; }

}  // namespace

std::string TimestampCanonicalBytes(const ReleaseTimestamp& t) {
  return absl::StrCat(kTimestampFormat, "\n", "segment ", t.segment, "\n", "newest_version ",
                      t.newest_version, "\n", "base_model_sha256 ", t.base_model_sha256, "\n",
                      "issued ", t.issued_unix, "\n", "expires ", t.expires_unix, "\n", "key_id ",
                      t.key_id, "\n");
}

nlohmann::json TimestampToJson(const ReleaseTimestamp& t) {
  return {{"format", kTimestampFormat},
          {"segment", t.segment},
          {"newest_version", t.newest_version},
          {"base_model_sha256", t.base_model_sha256},
          {"issued", t.issued_unix},
          {"expires", t.expires_unix},
          {"signature", {{"key_id", t.key_id}, {"ed25519", HexEncode(t.signature)}}}};
}

absl::StatusOr<ReleaseTimestamp> TimestampFromJson(const nlohmann::json& j) {
  auto bad = [](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(
        "release timestamp: ", what, " (hint: `fedlora release timestamp` writes them)"));
  };
  if (!j.is_object() || j.value("format", "") != kTimestampFormat) {
    return bad(absl::StrCat("format is not \"", kTimestampFormat, "\""));
  }
  ReleaseTimestamp t;
  if (!j.contains("segment") || !j["segment"].is_string()) return bad("no segment");
  if (!j.contains("newest_version") || !j["newest_version"].is_number_unsigned()) {
    return bad("no newest_version");
  }
  if (!j.contains("base_model_sha256") || !j["base_model_sha256"].is_string()) {
    return bad("no base_model_sha256");
  }
  if (!j.contains("issued") || !j["issued"].is_number_integer() || !j.contains("expires") ||
      !j["expires"].is_number_integer()) {
    return bad("issued and expires must be unix seconds");
  }
  if (!j.contains("signature") || !j["signature"].is_object() ||
      !j["signature"].value("key_id", nlohmann::json()).is_string() ||
      !j["signature"].value("ed25519", nlohmann::json()).is_string()) {
    return bad("no signature");
  }
  t.segment = j["segment"].get<std::string>();
  t.newest_version = j["newest_version"].get<uint64_t>();
  t.base_model_sha256 = j["base_model_sha256"].get<std::string>();
  t.issued_unix = j["issued"].get<int64_t>();
  t.expires_unix = j["expires"].get<int64_t>();
  t.key_id = j["signature"]["key_id"].get<std::string>();
  if (!OneLine(t.segment) || !OneLine(t.base_model_sha256) || !OneLine(t.key_id)) {
    return bad("a field holds a space or a line break");
  }
  FEDLORA_ASSIGN_OR_RETURN(t.signature, HexDecode(j["signature"]["ed25519"].get<std::string>()));
  return t;
}

absl::Status SignTimestamp(const Ed25519Key& key, ReleaseTimestamp* t) {
  if (t->expires_unix <= t->issued_unix) {
    return absl::InvalidArgumentError("release timestamp: expires must be after issued");
  }
  if (!OneLine(t->segment) || t->segment.empty()) {
    return absl::InvalidArgumentError("release timestamp: the segment is empty or has a space");
  }
  t->key_id = KeyId(key.PublicRaw());
  FEDLORA_ASSIGN_OR_RETURN(t->signature, key.Sign(TimestampCanonicalBytes(*t)));
  return absl::OkStatus();
}

absl::Status VerifyTimestampSignature(const ReleaseTimestamp& t, const TrustStore& trust) {
  if (t.key_id.empty()) return absl::UnauthenticatedError("release timestamp is not signed");
  FEDLORA_ASSIGN_OR_RETURN(std::string pub, trust.Find(t.key_id));
  if (!VerifyEd25519(pub, TimestampCanonicalBytes(t), t.signature).ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("release timestamp: the signature by key ", t.key_id,
                     " does not verify (it was changed after signing)"));
  }
  return absl::OkStatus();
}

}  // namespace fedlora
