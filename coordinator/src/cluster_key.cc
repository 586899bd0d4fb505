#include "fedlora/coordinator/cluster_key.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/openssl_status.h"
#include "fedlora/common/private_file.h"
#include "fedlora/common/random.h"

namespace fedlora::coordinator {

absl::Status CreateClusterKey(const std::string& state_dir) {
  std::string key(kClusterKeyBytes, '\0');
  SecureRandom().Fill(reinterpret_cast<uint8_t*>(key.data()), key.size());
  std::string hex = HexEncode(key);
  OPENSSL_cleanse(key.data(), key.size());
  absl::Status written =
      WriteFileWithMode(state_dir + "/" + kClusterKeyFile, hex + "\n", 0600, ExistingFile::kRefuse);
  OPENSSL_cleanse(hex.data(), hex.size());
  if (written.code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError(absl::StrCat(
        state_dir, "/", kClusterKeyFile,
        " already exists; a new key would lock out every process that holds the old one "
        "(hint: to replace it, stop the population's processes, delete it, run this again and "
        "copy the new file to every coordinator host)"));
  }
  return written;
}

absl::StatusOr<std::string> ReadClusterKey(const std::string& state_dir) {
  const std::string path = state_dir + "/" + kClusterKeyFile;
  absl::StatusOr<std::string> text = ReadPrivateFile(path);
  if (text.status().code() == absl::StatusCode::kNotFound) {
    return absl::FailedPreconditionError(absl::StrCat(
        path,
        " is missing: this multi-host folder was made before leaders authenticated their "
        "RunShard calls to aggregators (hint: run `fedlora coordinator cluster-key --state ",
        state_dir, "` once, on one host, then copy ", kClusterKeyFile,
        " into the state folder of every coordinator, aggregator and edge host of the "
        "population, mode 0600)"));
  }
  if (!text.ok()) return text.status();
  const absl::string_view hex = absl::StripAsciiWhitespace(*text);
  absl::StatusOr<std::string> key = HexDecode(std::string_view(hex.data(), hex.size()));
  OPENSSL_cleanse(text->data(), text->size());
  if (!key.ok() || key->size() != kClusterKeyBytes) {
    return absl::DataLossError(
        absl::StrCat(path, " is not a cluster key (", 2 * kClusterKeyBytes,
                     " hex digits); hint: copy it again from the leader's state folder"));
  }
  return key;
}

absl::StatusOr<std::string> RunShardMac(std::string_view key, const v1::RunShardRequest& request) {
  std::string message(kRunShardMacLabel);
  {
    google::protobuf::io::StringOutputStream out(&message);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    if (!request.SerializeToCodedStream(&coded)) {
      return absl::InternalError("could not serialize the RunShard request to authenticate it");
    }
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
           &mac_len) == nullptr) {
    return OpenSslError(absl::StatusCode::kInternal, "HMAC-SHA256 of a RunShard request failed");
  }
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

absl::Status CheckRunShardMac(std::string_view key, const v1::RunShardRequest& request,
                              const std::optional<std::string>& mac) {
  if (!mac.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "RunShard carries no leader credential (metadata ", kLeaderMacMetadata,
        "): only the population's leader may start a shard (hint: a leader running a fedlora "
        "build from before leader credentials must be upgraded)"));
  }
  absl::StatusOr<std::string> expected = RunShardMac(key, request);
  if (!expected.ok()) return expected.status();
  if (!ConstantTimeEqual(*expected, *mac)) {
    return absl::UnauthenticatedError(
        "RunShard's leader credential does not verify with this aggregator's cluster key: the "
        "leader's state folder has a different cluster.key than this aggregator's (hint: copy "
        "the leader's folder's cluster.key into this aggregator's state folder and restart it; "
        "the leader and its aggregators must also run the same fedlora version), or the call "
        "is not from a coordinator of this population");
  }
  return absl::OkStatus();
}

}  // namespace fedlora::coordinator
