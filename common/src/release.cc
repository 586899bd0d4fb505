#include "fedlora/common/release.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"

namespace fedlora {
namespace {

bool IsLowerHex(const std::string& s, size_t len) {
  if (s.size() != len) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Text fields go into the canonical lines: no line breaks (they would make two encodings of
// one manifest possible).
absl::Status CheckLine(const char* field, const std::string& v) {
  if (v.find_first_of("\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("release: ", field, " contains a line break"));
  }
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<T> Get(const nlohmann::json& j, const char* key, const char* where) {
  if (!j.is_object() || !j.contains(key)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"", key, "\""));
  }
  const auto& v = j[key];
  bool ok = false;
  if constexpr (std::is_same_v<T, std::string>) ok = v.is_string();
  else if constexpr (std::is_same_v<T, double>) ok = v.is_number();
  else ok = v.is_number_unsigned() || (v.is_number_integer() && v.template get<int64_t>() >= 0);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"", key, "\" has the wrong type (", v.type_name(), ")"));
  }
  return v.template get<T>();
}

absl::Status CheckSignatureFields(const std::string& key_id, const std::string& signature) {
  if (!IsLowerHex(key_id, 16)) {
    return absl::InvalidArgumentError("release: signature.key_id is not 16 lower-case hex digits");
  }
  if (signature.size() != kEd25519SignatureBytes) {
    return absl::InvalidArgumentError("release: signature.ed25519 is not 64 bytes");
  }
  return absl::OkStatus();
}

absl::Status VerifyWith(const TrustStore& trust, const std::string& key_id,
                        const std::string& message, const std::string& signature,
                        const char* what) {
  FEDLORA_ASSIGN_OR_RETURN(std::string pub, trust.Find(key_id));
  absl::Status s = VerifyEd25519(pub, message, signature);
  if (!s.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(
        what, ": the signature by key ", key_id,
        " does not verify (the manifest or a hash in it was changed after signing)"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string KeyId(std::string_view public_raw) { return HexEncode(Sha256(public_raw).substr(0, 8)); }

std::string ReleaseCanonicalBytes(const ReleaseManifest& m) {
  std::string out = absl::StrCat(kReleaseFormat, "\n");
  absl::StrAppend(&out, "release_id ", m.release_id, "\n", "version ", m.version, "\n",
                  "segment ", m.segment, "\n", "base_model_sha256 ", m.base_model_sha256, "\n",
                  "created ", m.created, "\n");
  absl::StrAppend(&out, absl::StrFormat("provenance %d %.17g %.17g %s\n", m.provenance.rounds,
                                        m.provenance.epsilon, m.provenance.delta,
                                        m.provenance.date));
  if (const auto& ec = m.provenance.epsilon_coordinator) {
    absl::StrAppend(&out, "provenance_coordinator ",
                    std::isfinite(*ec) ? absl::StrFormat("%.17g", *ec) : "unbounded", "\n");
  }
  absl::StrAppend(&out, "key_id ", m.key_id, "\n");
  std::vector<ReleaseFile> files = m.files;
  std::sort(files.begin(), files.end(),
            [](const ReleaseFile& a, const ReleaseFile& b) { return a.path < b.path; });
  for (const auto& f : files) absl::StrAppend(&out, "file ", f.sha256, " ", f.bytes, " ", f.path, "\n");
  return out;
}

std::string RollbackCanonicalBytes(const RollbackInstruction& r) {
  return absl::StrCat(kRollbackFormat, "\n", "from_version ", r.from_version, "\n",
                      "to_version ", r.to_version, "\n", "to_release_id ", r.to_release_id, "\n",
                      "base_model_sha256 ", r.base_model_sha256, "\n", "created ", r.created,
                      "\n", "key_id ", r.key_id, "\n");
}

absl::Status CheckReleasePath(const std::string& path) {
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "release: file path \"", path, "\" ", why,
        " (hint: a manifest may only name files inside its release folder)"));
  };
  if (path.empty() || path.size() > 255) return bad("is empty or too long");
  if (path[0] == '/') return bad("is absolute");
  for (char c : path) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '/';
    if (!ok) return bad("has a character outside [A-Za-z0-9._-/]");
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") return bad("has an empty, '.' or '..' part");
  }
  if (path == "manifest.json") return bad("is the manifest itself");
  return absl::OkStatus();
}

nlohmann::json ManifestToJson(const ReleaseManifest& m) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : m.files) {
    files.push_back({{"path", f.path}, {"sha256", f.sha256}, {"bytes", f.bytes}});
  }
  nlohmann::json j = {
      {"format", kReleaseFormat},
      {"release_id", m.release_id},
      {"version", m.version},
      {"segment", m.segment},
      {"base_model_sha256", m.base_model_sha256},
      {"created", m.created},
      {"provenance",
       {{"rounds", m.provenance.rounds},
        {"epsilon", m.provenance.epsilon},
        {"delta", m.provenance.delta},
        {"date", m.provenance.date}}},
      {"files", files},
  };
  if (const auto& ec = m.provenance.epsilon_coordinator) {
    j["provenance"]["epsilon_coordinator"] =
        std::isfinite(*ec) ? nlohmann::json(*ec) : nlohmann::json("unbounded");
  }
  if (!m.key_id.empty()) {
    j["signature"] = {{"key_id", m.key_id}, {"ed25519", HexEncode(m.signature)}};
  }
  return j;
}

absl::StatusOr<ReleaseManifest> ManifestFromJson(const nlohmann::json& j) {
  const char* where = "release manifest";
  FEDLORA_ASSIGN_OR_RETURN(std::string format, Get<std::string>(j, "format", where));
  if (format != kReleaseFormat) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": format \"", format,
                                                   "\" is not ", kReleaseFormat,
                                                   " (hint: a newer fedlora made it?)")); 
  }
  ReleaseManifest m;
  FEDLORA_ASSIGN_OR_RETURN(m.release_id, Get<std::string>(j, "release_id", where));
  FEDLORA_ASSIGN_OR_RETURN(m.version, Get<uint64_t>(j, "version", where));
  FEDLORA_ASSIGN_OR_RETURN(m.segment, Get<std::string>(j, "segment", where));
  FEDLORA_ASSIGN_OR_RETURN(m.base_model_sha256, Get<std::string>(j, "base_model_sha256", where));
  FEDLORA_ASSIGN_OR_RETURN(m.created, Get<std::string>(j, "created", where));
  if (!IsLowerHex(m.base_model_sha256, 64)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": base_model_sha256 is not a SHA-256"));
  }
  if (!j.contains("provenance") || !j["provenance"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"provenance\""));
  }
  const auto& p = j["provenance"];
  FEDLORA_ASSIGN_OR_RETURN(uint64_t rounds, Get<uint64_t>(p, "rounds", "provenance"));
  m.provenance.rounds = static_cast<int64_t>(rounds);
  FEDLORA_ASSIGN_OR_RETURN(m.provenance.epsilon, Get<double>(p, "epsilon", "provenance"));
  FEDLORA_ASSIGN_OR_RETURN(m.provenance.delta, Get<double>(p, "delta", "provenance"));
  FEDLORA_ASSIGN_OR_RETURN(m.provenance.date, Get<std::string>(p, "date", "provenance"));
  if (p.contains("epsilon_coordinator")) {
    const auto& ec = p["epsilon_coordinator"];
    if (ec.is_number() && ec.get<double>() >= 0) {
      m.provenance.epsilon_coordinator = ec.get<double>();
    } else if (ec == "unbounded") {
      m.provenance.epsilon_coordinator = std::numeric_limits<double>::infinity();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": provenance.epsilon_coordinator is neither a number >= 0 nor \"unbounded\""));
    }
  }
  for (const auto& [name, v] : std::vector<std::pair<const char*, const std::string*>>{
           {"release_id", &m.release_id}, {"segment", &m.segment}, {"created", &m.created},
           {"provenance.date", &m.provenance.date}}) {
    FEDLORA_RETURN_IF_ERROR(CheckLine(name, *v));
    if (v->find(' ') != std::string::npos && std::string(name) != "provenance.date") {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", name, " contains a space"));
    }
  }
  if (!j.contains("files") || !j["files"].is_array() || j["files"].empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"files\" must be a non-empty list"));
  }
  std::set<std::string> seen;
  for (const auto& f : j["files"]) {
    ReleaseFile rf;
    FEDLORA_ASSIGN_OR_RETURN(rf.path, Get<std::string>(f, "path", "release file"));
    FEDLORA_ASSIGN_OR_RETURN(rf.sha256, Get<std::string>(f, "sha256", "release file"));
    FEDLORA_ASSIGN_OR_RETURN(rf.bytes, Get<uint64_t>(f, "bytes", "release file"));
    FEDLORA_RETURN_IF_ERROR(CheckReleasePath(rf.path));
    if (!IsLowerHex(rf.sha256, 64)) {
      return absl::InvalidArgumentError(absl::StrCat("release file ", rf.path, ": bad sha256"));
    }
    if (!seen.insert(rf.path).second) {
      return absl::InvalidArgumentError(absl::StrCat("release file ", rf.path, " listed twice"));
    }
    m.files.push_back(std::move(rf));
  }
  if (j.contains("signature")) {
    const auto& s = j["signature"];
    FEDLORA_ASSIGN_OR_RETURN(m.key_id, Get<std::string>(s, "key_id", "signature"));
    FEDLORA_ASSIGN_OR_RETURN(std::string hex, Get<std::string>(s, "ed25519", "signature"));
    auto raw = HexDecode(hex);
    if (!raw.ok()) return absl::InvalidArgumentError("signature.ed25519 is not hex");
    m.signature = *raw;
    FEDLORA_RETURN_IF_ERROR(CheckSignatureFields(m.key_id, m.signature));
  }
  return m;
}

nlohmann::json RollbackToJson(const RollbackInstruction& r) {
  return {{"format", kRollbackFormat},
          {"from_version", r.from_version},
          {"to_version", r.to_version},
          {"to_release_id", r.to_release_id},
          {"base_model_sha256", r.base_model_sha256},
          {"created", r.created},
          {"signature", {{"key_id", r.key_id}, {"ed25519", HexEncode(r.signature)}}}};
}

absl::StatusOr<RollbackInstruction> RollbackFromJson(const nlohmann::json& j) {
  const char* where = "rollback instruction";
  FEDLORA_ASSIGN_OR_RETURN(std::string format, Get<std::string>(j, "format", where));
  if (format != kRollbackFormat) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": format is not ", kRollbackFormat));
  }
  RollbackInstruction r;
  FEDLORA_ASSIGN_OR_RETURN(r.from_version, Get<uint64_t>(j, "from_version", where));
  FEDLORA_ASSIGN_OR_RETURN(r.to_version, Get<uint64_t>(j, "to_version", where));
  FEDLORA_ASSIGN_OR_RETURN(r.to_release_id, Get<std::string>(j, "to_release_id", where));
  FEDLORA_ASSIGN_OR_RETURN(r.base_model_sha256, Get<std::string>(j, "base_model_sha256", where));
  FEDLORA_ASSIGN_OR_RETURN(r.created, Get<std::string>(j, "created", where));
  FEDLORA_RETURN_IF_ERROR(CheckLine("to_release_id", r.to_release_id));
  FEDLORA_RETURN_IF_ERROR(CheckLine("created", r.created));
  if (r.to_version >= r.from_version) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": to_version ", r.to_version,
                                                   " is not older than from_version ",
                                                   r.from_version));
  }
  if (!j.contains("signature")) return absl::InvalidArgumentError("rollback: not signed");
  FEDLORA_ASSIGN_OR_RETURN(r.key_id, Get<std::string>(j["signature"], "key_id", "signature"));
  FEDLORA_ASSIGN_OR_RETURN(std::string hex, Get<std::string>(j["signature"], "ed25519", "signature"));
  auto raw = HexDecode(hex);
  if (!raw.ok()) return absl::InvalidArgumentError("rollback: signature.ed25519 is not hex");
  r.signature = *raw;
  FEDLORA_RETURN_IF_ERROR(CheckSignatureFields(r.key_id, r.signature));
  return r;
}

absl::Status SignManifest(const Ed25519Key& key, ReleaseManifest* m) {
  for (const auto& f : m->files) FEDLORA_RETURN_IF_ERROR(CheckReleasePath(f.path));
  m->key_id = KeyId(key.PublicRaw());
  FEDLORA_ASSIGN_OR_RETURN(m->signature, key.Sign(ReleaseCanonicalBytes(*m)));
  return absl::OkStatus();
}

absl::Status SignRollback(const Ed25519Key& key, RollbackInstruction* r) {
  r->key_id = KeyId(key.PublicRaw());
  FEDLORA_ASSIGN_OR_RETURN(r->signature, key.Sign(RollbackCanonicalBytes(*r)));
  return absl::OkStatus();
}

std::string PublicKeyFileText(std::string_view public_raw) {
  return absl::StrCat("ed25519 ", HexEncode(public_raw), " ", KeyId(public_raw), "\n");
}

absl::StatusOr<std::string> ReadPublicKeyFile(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return absl::NotFoundError(absl::StrCat("cannot read public key ", path));
  std::vector<std::string> parts =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(*text), ' ', absl::SkipEmpty());
  if (parts.size() < 2 || parts[0] != "ed25519" || !IsLowerHex(parts[1], 64)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is not a fedlora public key (expected \"ed25519 <64 hex> <key id>\"; hint: "
              "`fedlora keys new --out KEY` writes KEY.pub)"));
  }
  auto raw = HexDecode(parts[1]);
  if (!raw.ok()) return raw.status();
  if (parts.size() > 2 && parts[2] != KeyId(*raw)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the key id does not match the key (the file was edited)"));
  }
  return *raw;
}

void TrustStore::Add(std::string public_raw) {
  keys_[KeyId(public_raw)] = std::move(public_raw);
}
void TrustStore::Revoke(const std::string& key_id) { revoked_.push_back(key_id); }

absl::Status TrustStore::AddFiles(const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    FEDLORA_ASSIGN_OR_RETURN(std::string raw, ReadPublicKeyFile(p));
    Add(std::move(raw));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TrustStore::Find(const std::string& key_id) const {
  if (std::find(revoked_.begin(), revoked_.end(), key_id) != revoked_.end()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "signed by key ", key_id, ", which is revoked (hint: the operator must re-sign the "
        "release with a current key)"));
  }
  auto it = keys_.find(key_id);
  if (it == keys_.end()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "signed by unknown key ", key_id, " (hint: add its .pub to the trusted keys with "
        "--trusted; during a key rotation trust both the old and the new key)"));
  }
  return it->second;
}

absl::Status VerifyManifestSignature(const ReleaseManifest& m, const TrustStore& trust) {
  if (m.key_id.empty()) {
    return absl::UnauthenticatedError(
        "release is not signed (hint: `fedlora release create ... --key KEY` signs it)");
  }
  return VerifyWith(trust, m.key_id, ReleaseCanonicalBytes(m), m.signature, "release manifest");
}

absl::Status VerifyRollbackSignature(const RollbackInstruction& r, const TrustStore& trust) {
  return VerifyWith(trust, r.key_id, RollbackCanonicalBytes(r), r.signature,
                    "rollback instruction");
}

}  // namespace fedlora
