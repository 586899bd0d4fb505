#include "fedlora/coordinator/demo_pki.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/openssl_status.h"
#include "fedlora/common/private_file.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::coordinator {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;
using NamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME, GENERAL_NAME_free>>;

constexpr int kCaDays = 3650;
constexpr int kServerDays = 398;
constexpr long kBackdateSeconds = 300;  // NOLINT(runtime/int): tolerate small clock skew.

absl::Status Internal(const std::string& what) {
  return OpenSslError(absl::StatusCode::kInternal, absl::StrCat("demo PKI: ", what));
}

absl::StatusOr<PkeyPtr> NewP256Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return Internal("P-256 key generation failed");
  return key;
}

bool ValidDnsName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '*';
    if (!ok) return false;
  }
  return true;
}

absl::Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext) return Internal(absl::StrCat("building extension ", OBJ_nid2sn(nid), " failed"));
  if (X509_add_ext(cert, ext.get(), -1) != 1) {
    return Internal(absl::StrCat("adding extension ", OBJ_nid2sn(nid), " failed"));
  }
  return absl::OkStatus();
}

// Builds the GENERAL_NAMES of the subjectAltName; INVALID_ARGUMENT for a malformed entry.
absl::StatusOr<NamesPtr> SubjectAltNames(const std::vector<std::string>& dns_names,
                                         const std::vector<std::string>& ips) {
  NamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return Internal("allocating subjectAltName failed");
  for (const std::string& dns : dns_names) {
    if (!ValidDnsName(dns)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "demo PKI: '", dns, "' is not a valid DNS name (hint: letters, digits, '-', '.')"));
    }
    NamePtr gen(GENERAL_NAME_new());
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (!gen || ia5 == nullptr ||
        ASN1_STRING_set(ia5, dns.data(), static_cast<int>(dns.size())) != 1) {
      ASN1_IA5STRING_free(ia5);
      return Internal("building a DNS subjectAltName failed");
    }
    GENERAL_NAME_set0_value(gen.get(), GEN_DNS, ia5);
    if (sk_GENERAL_NAME_push(names.get(), gen.get()) == 0) return Internal("push failed");
    gen.release();
  }
  for (const std::string& ip : ips) {
    ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
    if (octets == nullptr) {
      ClearOpenSslErrors();
      return absl::InvalidArgumentError(absl::StrCat(
          "demo PKI: '", ip, "' is not an IPv4 or IPv6 address (hint: e.g. 127.0.0.1 or ::1)"));
    }
    NamePtr gen(GENERAL_NAME_new());
    if (!gen) {
      ASN1_OCTET_STRING_free(octets);
      return Internal("building an IP subjectAltName failed");
    }
    GENERAL_NAME_set0_value(gen.get(), GEN_IPADD, octets);
    if (sk_GENERAL_NAME_push(names.get(), gen.get()) == 0) return Internal("push failed");
    gen.release();
  }
  return names;
}

// A certificate skeleton: v3, random positive 16-byte serial, validity, subject CN, public key.
absl::StatusOr<X509Ptr> NewCert(const std::string& common_name, EVP_PKEY* key, int days) {
  X509Ptr cert(X509_new());
  if (!cert) return Internal("X509_new failed");
  SecureRandom rng;
  unsigned char serial[16];
  rng.Fill(serial, sizeof(serial));
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x01);  // Positive, 16 bytes.
  BnPtr bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!bn || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr) == nullptr ||
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("fedlora demo"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return Internal("filling in the certificate failed");
  }
  return cert;
}

absl::StatusOr<std::string> BioToString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);  // NOLINT(runtime/int): OpenSSL's type.
  if (len <= 0) return Internal("PEM encoding produced nothing");
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return Internal("PEM_write_bio_X509");
  return BioToString(bio.get());
}

// PEM PKCS#8; the memory BIO is OpenSSL's secure heap, the returned string is the caller's to
// cleanse.
absl::StatusOr<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("PEM_write_bio_PrivateKey failed");
  }
  return BioToString(bio.get());
}

struct PkiFiles {
  std::string ca_pem, ca_key, server_pem, server_key;
};

absl::StatusOr<PkiFiles> BuildPki(const std::vector<std::string>& dns_names,
                                  const std::vector<std::string>& ips) {
  FEDLORA_ASSIGN_OR_RETURN(NamesPtr sans, SubjectAltNames(dns_names, ips));
  FEDLORA_ASSIGN_OR_RETURN(PkeyPtr ca_key, NewP256Key());
  FEDLORA_ASSIGN_OR_RETURN(PkeyPtr server_key, NewP256Key());

  FEDLORA_ASSIGN_OR_RETURN(X509Ptr ca, NewCert("fedlora demo CA", ca_key.get(), kCaDays));
  if (X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get())) != 1) {
    return Internal("setting the CA issuer failed");
  }
  FEDLORA_RETURN_IF_ERROR(
      AddExt(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  FEDLORA_RETURN_IF_ERROR(
      AddExt(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  FEDLORA_RETURN_IF_ERROR(AddExt(ca.get(), ca.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(ca.get(), ca_key.get(), EVP_sha256()) <= 0)
    return Internal("signing the CA failed");

  const std::string& cn = dns_names.empty() ? ips.front() : dns_names.front();
  FEDLORA_ASSIGN_OR_RETURN(X509Ptr server, NewCert(cn, server_key.get(), kServerDays));
  if (X509_set_issuer_name(server.get(), X509_get_subject_name(ca.get())) != 1) {
    return Internal("setting the server certificate's issuer failed");
  }
  FEDLORA_RETURN_IF_ERROR(
      AddExt(server.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE"));
  FEDLORA_RETURN_IF_ERROR(
      AddExt(server.get(), ca.get(), NID_key_usage, "critical,digitalSignature"));
  FEDLORA_RETURN_IF_ERROR(AddExt(server.get(), ca.get(), NID_ext_key_usage, "serverAuth"));
  FEDLORA_RETURN_IF_ERROR(AddExt(server.get(), ca.get(), NID_subject_key_identifier, "hash"));
  FEDLORA_RETURN_IF_ERROR(
      AddExt(server.get(), ca.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_add1_ext_i2d(server.get(), NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT) !=
      1) {
    return Internal("adding subjectAltName failed");
  }
  if (X509_sign(server.get(), ca_key.get(), EVP_sha256()) <= 0) {
    return Internal("signing the server certificate failed");
  }

  PkiFiles files;
  FEDLORA_ASSIGN_OR_RETURN(files.ca_pem, CertPem(ca.get()));
  FEDLORA_ASSIGN_OR_RETURN(files.server_pem, CertPem(server.get()));
  FEDLORA_ASSIGN_OR_RETURN(files.ca_key, KeyPem(ca_key.get()));
  FEDLORA_ASSIGN_OR_RETURN(files.server_key, KeyPem(server_key.get()));
  return files;
}

void Cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

}  // namespace

absl::Status CreateDemoPki(const std::string& dir, const std::vector<std::string>& dns_names,
                           const std::vector<std::string>& ip_addresses) {
  if (dns_names.empty() && ip_addresses.empty()) {
    return absl::InvalidArgumentError(
        "demo PKI: no DNS name or IP address for the server certificate (hint: e.g. localhost "
        "and 127.0.0.1, plus the name devices use to reach the coordinator)");
  }
  const std::string paths[4] = {dir + "/ca.pem", dir + "/ca.key", dir + "/server.pem",
                                dir + "/server.key"};
  std::vector<std::string> existing;
  for (const std::string& p : paths) {
    struct stat st;
    if (::lstat(p.c_str(), &st) == 0) existing.push_back(p);
  }
  if (!existing.empty()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "demo PKI: ", absl::StrJoin(existing, ", "),
        " already exist(s); refusing to overwrite (hint: choose an empty directory or remove "
        "the old files)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(PkiFiles files, BuildPki(dns_names, ip_addresses));
  FEDLORA_RETURN_IF_ERROR(MakeDirs(dir));
  const std::string* contents[4] = {&files.ca_pem, &files.ca_key, &files.server_pem,
                                    &files.server_key};
  const mode_t modes[4] = {0644, 0600, 0644, 0600};
  absl::Status status;
  int written = 0;
  for (; written < 4 && status.ok(); ++written) {
    status = WriteFileWithMode(paths[written], *contents[written], modes[written],
                               ExistingFile::kRefuse);
  }
  if (!status.ok()) {
    for (int i = 0; i < written - 1; ++i) std::remove(paths[i].c_str());  // Ours, not theirs.
  }
  Cleanse(files.ca_key);
  Cleanse(files.server_key);
  return status;
}

absl::StatusOr<std::string> CertificateFingerprintSha256(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Internal("BIO_new_mem_buf failed");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "no PEM certificate found (hint: expected '-----BEGIN CERTIFICATE-----')");
  }
  unsigned char* der = nullptr;
  int len = i2d_X509(cert.get(), &der);
  if (len <= 0) return Internal("DER encoding of the certificate failed");
  std::string digest = Sha256(std::string_view(reinterpret_cast<const char*>(der), len));
  OPENSSL_free(der);
  return HexEncode(digest);
}

}  // namespace fedlora::coordinator
