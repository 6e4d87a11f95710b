#include "protocol/pki.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "tests/testutil/temp_dir.h"

namespace cyrsync::protocol {
namespace {

using cyrsync::testing::TempDir;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using CertPtr = std::unique_ptr<X509, X509Free>;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CertPtr LoadCert(const std::string& path) {
  const std::string pem = Slurp(path);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  CertPtr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return cert;
}

uint32_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Returns the X509 verification result of cert against the single trusted CA.
int Verify(X509* ca, X509* cert, int purpose) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert, nullptr);
  X509_STORE_CTX_set_purpose(ctx, purpose);
  const int ok = X509_verify_cert(ctx);
  const int err = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return err;
}

TEST(PkiTest, CreateCaWritesSelfSignedCaWithPrivateKey) {
  TempDir tmp;
  const std::string dir = tmp.Sub("ca");
  ASSERT_TRUE(CreateCa(dir, "Example Mail CA").ok());
  EXPECT_EQ(Mode(dir + "/ca.key"), 0600u);
  CertPtr ca = LoadCert(dir + "/ca.crt");
  ASSERT_TRUE(ca);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(X509_check_issued(ca.get(), ca.get()), X509_V_OK);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(ca.get()), NID_commonName, cn, sizeof(cn));
  EXPECT_STREQ(cn, "Example Mail CA");
  EXPECT_EQ(X509_get_version(ca.get()), 2);
  // Valid for roughly ten years.
  int days = 0;
  int secs = 0;
  ASSERT_EQ(
      ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca.get()), X509_get0_notAfter(ca.get())), 1);
  EXPECT_GE(days, 3650);
  EXPECT_LE(days, 3660);
}

TEST(PkiTest, CreateCaRefusesToOverwrite) {
  TempDir tmp;
  ASSERT_TRUE(CreateCa(tmp.path(), "ca").ok());
  const std::string before = Slurp(tmp.path() + "/ca.key");
  Status again = CreateCa(tmp.path(), "ca");
  EXPECT_EQ(again.code(), Code::kFailedPrecondition) << again.ToString();
  EXPECT_EQ(Slurp(tmp.path() + "/ca.key"), before);
}

TEST(PkiTest, CreateCaRejectsEmptyName) {
  TempDir tmp;
  EXPECT_EQ(CreateCa(tmp.path(), "").code(), Code::kInvalidArgument);
}

TEST(PkiTest, IssuedCertificateVerifiesForServerAndClientWithSans) {
  TempDir tmp;
  ASSERT_TRUE(CreateCa(tmp.Sub("ca"), "ca").ok());
  Status st = IssueCertificate(tmp.Sub("ca"), "replica1",
                               {"replica.example.org", "192.0.2.7", "::1"}, tmp.Sub("out"));
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Mode(tmp.Sub("out/replica1.key")), 0600u);
  CertPtr ca = LoadCert(tmp.Sub("ca/ca.crt"));
  CertPtr leaf = LoadCert(tmp.Sub("out/replica1.crt"));
  ASSERT_TRUE(ca && leaf);
  EXPECT_EQ(Verify(ca.get(), leaf.get(), X509_PURPOSE_SSL_SERVER), X509_V_OK);
  EXPECT_EQ(Verify(ca.get(), leaf.get(), X509_PURPOSE_SSL_CLIENT), X509_V_OK);
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_EQ(X509_check_host(leaf.get(), "replica.example.org", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(leaf.get(), "other.example.org", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "192.0.2.7", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "192.0.2.8", 0), 0);
}

TEST(PkiTest, SerialsDiffer) {
  TempDir tmp;
  ASSERT_TRUE(CreateCa(tmp.path(), "ca").ok());
  ASSERT_TRUE(IssueCertificate(tmp.path(), "a", {}, tmp.path()).ok());
  ASSERT_TRUE(IssueCertificate(tmp.path(), "b", {}, tmp.path()).ok());
  CertPtr a = LoadCert(tmp.Sub("a.crt"));
  CertPtr b = LoadCert(tmp.Sub("b.crt"));
  ASSERT_TRUE(a && b);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(a.get()), X509_get0_serialNumber(b.get())), 0);
}

TEST(PkiTest, CertificateFromOtherCaDoesNotVerify) {
  TempDir tmp;
  ASSERT_TRUE(CreateCa(tmp.Sub("ca1"), "ca").ok());
  ASSERT_TRUE(CreateCa(tmp.Sub("ca2"), "ca").ok());
  ASSERT_TRUE(IssueCertificate(tmp.Sub("ca2"), "x", {"localhost"}, tmp.Sub("out")).ok());
  CertPtr ca1 = LoadCert(tmp.Sub("ca1/ca.crt"));
  CertPtr leaf = LoadCert(tmp.Sub("out/x.crt"));
  EXPECT_NE(Verify(ca1.get(), leaf.get(), X509_PURPOSE_SSL_CLIENT), X509_V_OK);
}

TEST(PkiTest, IssueRefusesToOverwrite) {
  TempDir tmp;
  ASSERT_TRUE(CreateCa(tmp.path(), "ca").ok());
  ASSERT_TRUE(IssueCertificate(tmp.path(), "node", {"localhost"}, tmp.path()).ok());
  EXPECT_EQ(IssueCertificate(tmp.path(), "node", {"localhost"}, tmp.path()).code(),
            Code::kFailedPrecondition);
  // The CA's own files are protected too.
  EXPECT_EQ(IssueCertificate(tmp.path(), "ca", {}, tmp.path()).code(), Code::kFailedPrecondition);
}

TEST(PkiTest, IssueValidatesInput) {
  TempDir tmp;
  ASSERT_TRUE(CreateCa(tmp.path(), "ca").ok());
  EXPECT_EQ(IssueCertificate(tmp.path(), "../evil", {}, tmp.path()).code(), Code::kInvalidArgument);
  EXPECT_EQ(IssueCertificate(tmp.path(), ".hidden", {}, tmp.path()).code(), Code::kInvalidArgument);
  EXPECT_EQ(IssueCertificate(tmp.path(), "", {}, tmp.path()).code(), Code::kInvalidArgument);
  EXPECT_EQ(IssueCertificate(tmp.path(), "n", {"a,DNS:b"}, tmp.path()).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(IssueCertificate(tmp.path(), "n", {""}, tmp.path()).code(), Code::kInvalidArgument);
}

TEST(PkiTest, IssueWithoutCaIsNotFound) {
  TempDir tmp;
  EXPECT_EQ(IssueCertificate(tmp.Sub("missing"), "n", {}, tmp.path()).code(), Code::kNotFound);
}

TEST(PkiTest, IssueWithMismatchedCaKeyIsCorruption) {
  TempDir tmp;
  ASSERT_TRUE(CreateCa(tmp.Sub("ca1"), "ca").ok());
  ASSERT_TRUE(CreateCa(tmp.Sub("ca2"), "ca").ok());
  std::ofstream(tmp.Sub("ca1/ca.key"), std::ios::trunc) << Slurp(tmp.Sub("ca2/ca.key"));
  EXPECT_EQ(IssueCertificate(tmp.Sub("ca1"), "n", {}, tmp.path()).code(), Code::kCorruption);
}

}  // namespace
}  // namespace cyrsync::protocol
