// A minimal private CA for cyrsync's mutual TLS (`cyrsync ca init` / `cyrsync ca issue`): EC P-256
// keys, X.509 v3 certificates valid for 10 years, written as PEM. Keys are written 0600 and never
// overwritten. Functions are thread-safe; files go through the given Env.
#pragma once

#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace cyrsync::protocol {

// Creates dir (0700, with parents) if needed and writes a self-signed CA: dir/ca.key (0600) and
// dir/ca.crt (0644), subject CN=common_name, basicConstraints CA:TRUE pathlen:0, keyUsage
// keyCertSign+cRLSign. Returns kFailedPrecondition if either file exists, kInvalidArgument for
// an empty common_name, kIOError (or the Env's code) when writing fails.
Status CreateCa(const std::string& dir, const std::string& common_name, Env* env = Env::Default());

// Issues out_dir/<name>.crt (0644) and out_dir/<name>.key (0600), signed by ca_dir's CA, with
// subject CN=name, subjectAltName of hosts (IP literals as IP entries, the rest as DNS names),
// keyUsage digitalSignature and extendedKeyUsage serverAuth+clientAuth, so the same certificate
// serves a replica and a syncer. Creates out_dir (0700) if needed.
// Returns kFailedPrecondition if either output file exists, kInvalidArgument for a name that is
// not [A-Za-z0-9._-]+ (not starting with '.') or a host that is empty or has characters outside
// [A-Za-z0-9.*:-], kNotFound when the CA files are missing, kCorruption when they do not parse or
// do not match, kIOError (or the Env's code) when writing fails.
Status IssueCertificate(const std::string& ca_dir, const std::string& name,
                        const std::vector<std::string>& hosts, const std::string& out_dir,
                        Env* env = Env::Default());

}  // namespace cyrsync::protocol
