#include "protocol/pki.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <memory>

namespace cyrsync::protocol {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;

constexpr int kValidityDays = 3652;      // 10 years including leap days
constexpr long kBackdateSeconds = 3600;  // tolerates peers whose clocks run a little behind

// Returns `code` with "<what>: <OpenSSL's reason>" and clears OpenSSL's error queue.
Status OpenSslError(Code code, const std::string& what) {
  const unsigned long err = ERR_get_error();
  ERR_clear_error();
  const char* reason = err != 0 ? ERR_reason_error_string(err) : nullptr;
  return Status(code, what + ": " + (reason != nullptr ? reason : "openssl error"));
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') {
    return false;
  }
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool ValidDnsName(const std::string& host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  for (unsigned char c : host) {
    if (!std::isalnum(c) && c != '.' && c != '-' && c != '*') {
      return false;
    }
  }
  return true;
}

Status RefuseExisting(Env* env, const std::string& path) {
  auto st = env->Stat(path);
  if (st.ok()) {
    return FailedPreconditionError("refusing to overwrite existing " + path);
  }
  if (st.error().code() != Code::kNotFound) {
    return st.error();
  }
  return Status::Ok();
}

Result<KeyPtr> GenerateKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) {
    return OpenSslError(Code::kInternal, "generate EC P-256 key");
  }
  return key;
}

Status SetSerialAndValidity(X509* cert) {
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) {
    return OpenSslError(Code::kInternal, "random serial");
  }
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x40);  // positive, 16 bytes long
  BnPtr bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr ||
      X509_gmtime_adj(X509_getm_notBefore(cert), -kBackdateSeconds) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert), kValidityDays, 0, nullptr) == nullptr) {
    return OpenSslError(Code::kInternal, "set serial and validity");
  }
  return Status::Ok();
}

// A certificate for key with subject CN=common_name, not yet signed and without extensions.
Result<CertPtr> NewCertificate(EVP_PKEY* key, const std::string& common_name) {
  CertPtr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1 || X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError(Code::kInternal, "new certificate");
  }
  RETURN_IF_ERROR(SetSerialAndValidity(cert.get()));
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1) {
    return OpenSslError(Code::kInvalidArgument, "certificate common name " + common_name);
  }
  return cert;
}

// Adds an extension given in OpenSSL's config syntax, e.g. "critical,CA:TRUE".
Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(Code::kInternal, std::string("certificate extension ") + OBJ_nid2sn(nid));
  }
  return Status::Ok();
}

// One GENERAL_NAME per host: an IP entry for address literals, a DNS entry otherwise.
Status AddSubjectAltNames(X509* cert, const std::vector<std::string>& hosts) {
  if (hosts.empty()) {
    return Status::Ok();
  }
  NamesPtr names(sk_GENERAL_NAME_new_null());
  for (const std::string& host : hosts) {
    GENERAL_NAME* gen = GENERAL_NAME_new();
    if (gen == nullptr || sk_GENERAL_NAME_push(names.get(), gen) == 0) {
      GENERAL_NAME_free(gen);
      return OpenSslError(Code::kInternal, "subjectAltName " + host);
    }
    // names owns gen from here on.
    if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str())) {
      GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
      continue;
    }
    ERR_clear_error();
    if (!ValidDnsName(host)) {
      return InvalidArgumentError("invalid certificate host name '" + host + "'");
    }
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
    if (ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size())) != 1) {
      return OpenSslError(Code::kInternal, "subjectAltName " + host);
    }
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return OpenSslError(Code::kInternal, "certificate subjectAltName");
  }
  return Status::Ok();
}

Status Sign(X509* cert, EVP_PKEY* issuer_key) {
  if (X509_sign(cert, issuer_key, EVP_sha256()) <= 0) {
    return OpenSslError(Code::kInternal, "sign certificate");
  }
  return Status::Ok();
}

Result<std::string> BioContents(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  if (len < 0) {
    return OpenSslError(Code::kInternal, "read PEM buffer");
  }
  return std::string(data, static_cast<size_t>(len));
}

Result<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError(Code::kInternal, "encode certificate PEM");
  }
  return BioContents(bio.get());
}

Result<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError(Code::kInternal, "encode key PEM");
  }
  return BioContents(bio.get());
}

// Writes the key first: a crash in between leaves a key without a certificate, which a rerun
// reports as existing rather than silently pairing a new certificate with a stale key.
Status WriteKeyAndCertificate(Env* env, const std::string& key_path, EVP_PKEY* key,
                              const std::string& cert_path, X509* cert) {
  ASSIGN_OR_RETURN(std::string key_pem, KeyPem(key));
  ASSIGN_OR_RETURN(std::string cert_pem, CertificatePem(cert));
  AtomicWriteOptions key_opts;
  key_opts.mode = 0600;
  RETURN_IF_ERROR(AtomicWriteFile(env, key_path, key_pem, key_opts));
  AtomicWriteOptions cert_opts;
  cert_opts.mode = 0644;
  return AtomicWriteFile(env, cert_path, cert_pem, cert_opts);
}

struct LoadedCa {
  CertPtr cert;
  KeyPtr key;
};

Result<LoadedCa> LoadCa(Env* env, const std::string& ca_dir) {
  const std::string cert_path = JoinPath(ca_dir, "ca.crt");
  const std::string key_path = JoinPath(ca_dir, "ca.key");
  ASSIGN_OR_RETURN(std::string cert_pem, ReadFileToString(env, cert_path));
  ASSIGN_OR_RETURN(std::string key_pem, ReadFileToString(env, key_path));
  LoadedCa ca;
  BioPtr cert_bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  ca.cert.reset(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!ca.cert) {
    return OpenSslError(Code::kCorruption, "parse CA certificate " + cert_path);
  }
  BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  ca.key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!ca.key) {
    return OpenSslError(Code::kCorruption, "parse CA key " + key_path);
  }
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    return OpenSslError(Code::kCorruption, "CA key " + key_path + " does not match " + cert_path);
  }
  return ca;
}

Status AddCaExtensions(X509* cert) {
  RETURN_IF_ERROR(AddExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  RETURN_IF_ERROR(AddExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign"));
  return AddExtension(cert, cert, NID_subject_key_identifier, "hash");
}

Status AddLeafExtensions(X509* cert, X509* issuer, const std::vector<std::string>& hosts) {
  RETURN_IF_ERROR(AddExtension(cert, issuer, NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(cert, issuer, NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(AddExtension(cert, issuer, NID_ext_key_usage, "serverAuth,clientAuth"));
  RETURN_IF_ERROR(AddExtension(cert, issuer, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExtension(cert, issuer, NID_authority_key_identifier, "keyid:always"));
  return AddSubjectAltNames(cert, hosts);
}

}  // namespace

Status CreateCa(const std::string& dir, const std::string& common_name, Env* env) {
  if (common_name.empty()) {
    return InvalidArgumentError("CA common name is empty");
  }
  const std::string cert_path = JoinPath(dir, "ca.crt");
  const std::string key_path = JoinPath(dir, "ca.key");
  RETURN_IF_ERROR(MakeDirs(env, dir, 0700));
  RETURN_IF_ERROR(RefuseExisting(env, cert_path));
  RETURN_IF_ERROR(RefuseExisting(env, key_path));
  ASSIGN_OR_RETURN(KeyPtr key, GenerateKey());
  ASSIGN_OR_RETURN(CertPtr cert, NewCertificate(key.get(), common_name));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return OpenSslError(Code::kInternal, "set CA issuer");
  }
  RETURN_IF_ERROR(AddCaExtensions(cert.get()));
  RETURN_IF_ERROR(Sign(cert.get(), key.get()));
  return WriteKeyAndCertificate(env, key_path, key.get(), cert_path, cert.get());
}

Status IssueCertificate(const std::string& ca_dir, const std::string& name,
                        const std::vector<std::string>& hosts, const std::string& out_dir,
                        Env* env) {
  if (!ValidName(name)) {
    return InvalidArgumentError("invalid certificate name '" + name +
                                "' (want [A-Za-z0-9._-]+, not starting with '.')");
  }
  const std::string cert_path = JoinPath(out_dir, name + ".crt");
  const std::string key_path = JoinPath(out_dir, name + ".key");
  ASSIGN_OR_RETURN(LoadedCa ca, LoadCa(env, ca_dir));
  RETURN_IF_ERROR(MakeDirs(env, out_dir, 0700));
  RETURN_IF_ERROR(RefuseExisting(env, cert_path));
  RETURN_IF_ERROR(RefuseExisting(env, key_path));
  ASSIGN_OR_RETURN(KeyPtr key, GenerateKey());
  ASSIGN_OR_RETURN(CertPtr cert, NewCertificate(key.get(), name));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert.get())) != 1) {
    return OpenSslError(Code::kInternal, "set issuer");
  }
  RETURN_IF_ERROR(AddLeafExtensions(cert.get(), ca.cert.get(), hosts));
  RETURN_IF_ERROR(Sign(cert.get(), ca.key.get()));
  return WriteKeyAndCertificate(env, key_path, key.get(), cert_path, cert.get());
}

}  // namespace cyrsync::protocol
