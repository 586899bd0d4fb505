#include "fedlora/common/ed25519.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "fedlora/common/openssl_status.h"
#include "fedlora/common/private_file.h"
#include "fedlora/common/status_macros.h"

namespace fedlora {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// Overwrites a string that held key material before it is freed.
void Cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

}  // namespace

Ed25519Key::Ed25519Key(Ed25519Key&& other) noexcept : pkey_(std::exchange(other.pkey_, nullptr)) {}

Ed25519Key& Ed25519Key::operator=(Ed25519Key&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(pkey_);
    pkey_ = std::exchange(other.pkey_, nullptr);
  }
  return *this;
}

Ed25519Key::~Ed25519Key() { EVP_PKEY_free(pkey_); }

absl::StatusOr<Ed25519Key> Ed25519Key::Generate() {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (pkey == nullptr) {
    return OpenSslError(absl::StatusCode::kInternal, "ed25519: key generation failed");
  }
  return Ed25519Key(pkey);
}

absl::StatusOr<Ed25519Key> Ed25519Key::LoadPrivate(const std::string& path) {
  FEDLORA_ASSIGN_OR_RETURN(std::string pem, ReadPrivateFile(path));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    Cleanse(pem);
    return OpenSslError(absl::StatusCode::kInternal, "ed25519: BIO_new_mem_buf failed");
  }
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  bio.reset();
  Cleanse(pem);
  if (pkey == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("ed25519: '", path,
                                     "' is not an unencrypted PEM PKCS#8 private key (hint: "
                                     "expected '-----BEGIN PRIVATE KEY-----', as written by "
                                     "fedlora or `openssl genpkey -algorithm ed25519`)"));
  }
  Ed25519Key key(pkey);
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        absl::StrCat("ed25519: '", path, "' holds a ", OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)),
                     " key, not an Ed25519 key (hint: point to the device's Ed25519 key)"));
  }
  return key;
}

absl::Status Ed25519Key::SavePrivate(const std::string& path) const {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio) return OpenSslError(absl::StatusCode::kInternal, "ed25519: BIO_new failed");
  if (PEM_write_bio_PrivateKey(bio.get(), pkey_, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "ed25519: encoding the private key failed");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);  // NOLINT(runtime/int): OpenSSL's type.
  return WriteFileWithMode(path, std::string_view(data, static_cast<size_t>(len)), 0600,
                           ExistingFile::kReplace);
}

std::string Ed25519Key::PublicRaw() const {
  std::string out(kEd25519PublicKeyBytes, '\0');
  size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(pkey_, reinterpret_cast<unsigned char*>(out.data()), &len) != 1 ||
      len != kEd25519PublicKeyBytes) {
    // Cannot happen for a key this class constructed; an empty string never verifies.
    ClearOpenSslErrors();
    return std::string();
  }
  return out;
}

absl::StatusOr<std::string> Ed25519Key::Sign(std::string_view message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return OpenSslError(absl::StatusCode::kInternal, "ed25519: EVP_MD_CTX_new failed");
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey_) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "ed25519: EVP_DigestSignInit failed");
  }
  std::string sig(kEd25519SignatureBytes, '\0');
  size_t len = sig.size();
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      len != kEd25519SignatureBytes) {
    return OpenSslError(absl::StatusCode::kInternal, "ed25519: signing failed");
  }
  return sig;
}

absl::Status VerifyEd25519(std::string_view public_raw, std::string_view message,
                           std::string_view signature) {
  if (public_raw.size() != kEd25519PublicKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("ed25519: public key is ", public_raw.size(),
                                                   " bytes, expected ", kEd25519PublicKeyBytes));
  }
  if (signature.size() != kEd25519SignatureBytes) {
    return absl::InvalidArgumentError(absl::StrCat("ed25519: signature is ", signature.size(),
                                                   " bytes, expected ", kEd25519SignatureBytes));
  }
  EVP_PKEY* raw = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_raw.data()),
      public_raw.size());
  if (raw == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "ed25519: not a valid Ed25519 public key");
  }
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> pkey(raw, EVP_PKEY_free);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return OpenSslError(absl::StatusCode::kInternal, "ed25519: EVP_MD_CTX_new failed");
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "ed25519: EVP_DigestVerifyInit failed");
  }
  int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(),
                            reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ClearOpenSslErrors();  // A bad signature queues an error; it is expected, not a fault.
  if (rc != 1) return absl::UnauthenticatedError("ed25519: signature does not verify");
  return absl::OkStatus();
}

}  // namespace fedlora
