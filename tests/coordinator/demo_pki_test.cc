#include "fedlora/coordinator/demo_pki.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "fedlora/common/file_util.h"
#include "fedlora/common/private_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr ParseCert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return X509Ptr(x);
}

class DemoPkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("fedlora_pki_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Read(const std::string& name) { return *ReadFileToString(dir_ + "/" + name); }
  unsigned Mode(const std::string& name) {
    struct stat st;
    EXPECT_EQ(::stat((dir_ + "/" + name).c_str(), &st), 0) << name;
    return st.st_mode & 0777;
  }
  std::string dir_;
};

TEST_F(DemoPkiTest, WritesFilesWithModes) {
  ASSERT_TRUE(CreateDemoPki(dir_, {"localhost"}, {"127.0.0.1"}).ok());
  EXPECT_EQ(Mode("ca.pem"), 0644u);
  EXPECT_EQ(Mode("server.pem"), 0644u);
  EXPECT_EQ(Mode("ca.key"), 0600u);
  EXPECT_EQ(Mode("server.key"), 0600u);
  EXPECT_THAT(Read("ca.key"), HasSubstr("-----BEGIN PRIVATE KEY-----"));
  EXPECT_THAT(Read("server.pem"), HasSubstr("-----BEGIN CERTIFICATE-----"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            4);
  // The key files pass the private-file check that servers apply.
  EXPECT_TRUE(ReadPrivateFile(dir_ + "/server.key").ok());
}

TEST_F(DemoPkiTest, ServerCertVerifiesAgainstCaWithSans) {
  ASSERT_TRUE(CreateDemoPki(dir_, {"localhost", "coord.example"}, {"127.0.0.1", "::1"}).ok());
  X509Ptr ca = ParseCert(Read("ca.pem"));
  X509Ptr server = ParseCert(Read("server.pem"));
  ASSERT_TRUE(ca && server);

  X509_STORE* store = X509_STORE_new();
  ASSERT_EQ(X509_STORE_add_cert(store, ca.get()), 1);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  ASSERT_EQ(X509_STORE_CTX_init(ctx, store, server.get(), nullptr), 1);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(param, "localhost", 0);
  EXPECT_EQ(X509_verify_cert(ctx), 1)
      << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  X509_STORE_CTX_free(ctx);

  // SANs: both names and both addresses, and nothing else matches.
  EXPECT_EQ(X509_check_host(server.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(server.get(), "coord.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(server.get(), "evil.example", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "127.0.0.2", 0), 0);

  // A certificate from another demo CA does not verify against this one.
  const std::string other = dir_ + "/other";
  ASSERT_TRUE(CreateDemoPki(other, {"localhost"}, {}).ok());
  X509Ptr foreign = ParseCert(*ReadFileToString(other + "/server.pem"));
  ctx = X509_STORE_CTX_new();
  ASSERT_EQ(X509_STORE_CTX_init(ctx, store, foreign.get(), nullptr), 1);
  EXPECT_NE(X509_verify_cert(ctx), 1);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);

  // serverAuth EKU, leaf is not a CA, validity ~398 days, 16-byte serial.
  EXPECT_TRUE(X509_get_extended_key_usage(server.get()) & XKU_SSL_SERVER);
  EXPECT_EQ(X509_check_ca(server.get()), 0);
  EXPECT_NE(X509_check_ca(ca.get()), 0);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(server.get()),
                           X509_get0_notAfter(server.get())),
            1);
  EXPECT_EQ(days, 398);
  const ASN1_INTEGER* serial = X509_get0_serialNumber(server.get());
  EXPECT_EQ(ASN1_STRING_length(serial), 16);
  EXPECT_NE(ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(foreign.get())), 0);
  EXPECT_EQ(X509_get_signature_nid(server.get()), NID_ecdsa_with_SHA256);
}

TEST_F(DemoPkiTest, RefusesToOverwriteAndBadInputs) {
  ASSERT_TRUE(CreateDemoPki(dir_, {"localhost"}, {"127.0.0.1"}).ok());
  const std::string ca_before = Read("ca.pem");
  absl::Status again = CreateDemoPki(dir_, {"localhost"}, {"127.0.0.1"});
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(again.message(), HasSubstr("ca.key"));
  EXPECT_EQ(Read("ca.pem"), ca_before);

  // One existing file is enough to refuse, and nothing else is written.
  const std::string partial = dir_ + "/partial";
  ASSERT_TRUE(MakeDirs(partial).ok());
  ASSERT_TRUE(WriteFileAtomic(partial + "/server.key", "mine").ok());
  EXPECT_EQ(CreateDemoPki(partial, {"localhost"}, {}).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(std::filesystem::exists(partial + "/ca.pem"));
  EXPECT_EQ(*ReadFileToString(partial + "/server.key"), "mine");

  EXPECT_EQ(CreateDemoPki(dir_ + "/a", {}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateDemoPki(dir_ + "/b", {"bad name,DNS:evil"}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status bad_ip = CreateDemoPki(dir_ + "/c", {"localhost"}, {"300.1.1.1"});
  EXPECT_EQ(bad_ip.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_ip.message(), HasSubstr("300.1.1.1"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/c/ca.pem"));
}

TEST_F(DemoPkiTest, Fingerprint) {
  ASSERT_TRUE(CreateDemoPki(dir_, {"localhost"}, {}).ok());
  auto fp = CertificateFingerprintSha256(Read("server.pem"));
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ(fp->size(), 64u);
  EXPECT_EQ(fp->find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(*fp, *CertificateFingerprintSha256(Read("ca.pem")));
  EXPECT_EQ(*fp, *CertificateFingerprintSha256(Read("server.pem")));
  EXPECT_EQ(CertificateFingerprintSha256("not a cert").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Connects a TLS client trusting `ca_pem` to `target`; true if the channel becomes READY
// within `seconds`.
bool TlsConnects(const std::string& target, const std::string& ca_pem, int seconds) {
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = ca_pem;
  auto channel = grpc::CreateChannel(target, grpc::SslCredentials(opts));
  return channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::seconds(seconds));
}

TEST_F(DemoPkiTest, GrpcTlsServerAcceptsClientTrustingTheCa) {
  ASSERT_TRUE(CreateDemoPki(dir_, {"localhost"}, {"127.0.0.1"}).ok());
  grpc::SslServerCredentialsOptions server_opts;
  server_opts.pem_key_cert_pairs.push_back({Read("server.key"), Read("server.pem")});
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(server_opts), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);
  const std::string target = "127.0.0.1:" + std::to_string(port);

  EXPECT_TRUE(TlsConnects(target, Read("ca.pem"), 20));
  // A client that trusts another CA refuses the handshake.
  ASSERT_TRUE(CreateDemoPki(dir_ + "/other", {"localhost"}, {"127.0.0.1"}).ok());
  EXPECT_FALSE(TlsConnects(target, *ReadFileToString(dir_ + "/other/ca.pem"), 2));
  server->Shutdown();
}

}  // namespace
}  // namespace fedlora::coordinator
