// A hostile or broken peer against ServeSession. Every case must be answered by an ERROR frame,
// end the session, and change nothing on disk outside the state directory (whole temp tree
// snapshotted before and after: names, sizes, inodes, mtimes, contents; the state dir and the
// .cyrsync-tmp staging directories are excluded) -- also after the Store is reopened, since
// recovery must not roll forward anything from a refused request.
#include <gtest/gtest.h>

#include <functional>

#include "replica/session_test_util.h"

namespace cyrsync::replica {
namespace {

using namespace ::cyrsync::replica::test;  // NOLINT(google-build-using-namespace)
using protocol::kData;
using protocol::kDataEnd;
using protocol::kDeltaData;

constexpr uint64_t kMaxFile = 4096;
const StatTuple kSrc{7, 1700000000123456789, 1700000000223456789, 4242};

struct Paths {
  std::string conf, spool, sieve, outside;
};

std::vector<TestRecord> AliceRecords() {
  return {{1, "From: x\r\n\r\nalice one\r\n"}, {2, "From: y\r\n\r\nalice two\r\n"}};
}
std::vector<TestRecord> AliceRecordsPlus3() {
  auto r = AliceRecords();
  r.push_back({3, "From: z\r\n\r\nalice three\r\n"});
  return r;
}
TestFolder AliceFolder() { return MakeFolder("uuid-alice", "user/alice", AliceRecords(), "alice"); }
TestFolder AliceUpdate() {
  return MakeFolder("uuid-alice", "user/alice", AliceRecordsPlus3(), "alice", 2);
}
TestFolder BobFolder() { return MakeFolder("uuid-bob", "user/bob", {{1, "bob one"}}); }

// ---------------------------------------------------------------------------------------------
// Case builders.

using Run = std::function<void(Peer&, const Paths&)>;

struct HostileCase {
  std::string name;
  bool hello = true;
  Run run;
};
void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.name; }

void SendFilePut(Peer& p, const WirePath& path, std::string_view body = "payload") {
  p.Send(protocol::kFilePut, protocol::Encode(MakeFilePut(path, body.size(), kSrc)));
  p.SendBody(body);
}

Run FilePutAt(std::string root, std::string rel) {
  return [=](Peer& p, const Paths&) { SendFilePut(p, {root, rel}); };
}
Run FilePutAtFn(std::function<WirePath(const Paths&)> path) {
  return [=](Peer& p, const Paths& d) { SendFilePut(p, path(d)); };
}

Run SymlinkPut(std::string rel, std::function<std::string(const Paths&)> target,
               std::string root = "sievedir") {
  return [=](Peer& p, const Paths& d) {
    protocol::FilePut put;
    put.path = {root, rel};
    put.kind = protocol::EntryKind::kSymlink;
    put.source = kSrc;
    put.target = target(d);
    p.Send(protocol::kFilePut, protocol::Encode(put));
  };
}
std::function<std::string(const Paths&)> Lit(std::string s) {
  return [=](const Paths&) { return s; };
}

Run FileRemoveAt(std::function<WirePath(const Paths&)> path) {
  return [=](Peer& p, const Paths& d) {
    p.Send(protocol::kFileRemove, protocol::EncodePath(path(d)));
  };
}
std::function<WirePath(const Paths&)> At(std::string root, std::string rel) {
  return [=](const Paths&) { return WirePath{root, rel}; };
}

// A FILE_PUT payload for configdirectory:new.db with one byte patched or the length changed.
std::string FilePutPayload() {
  return protocol::Encode(MakeFilePut({"configdirectory", "new.db"}, 7, kSrc));
}
size_t KindOffset() {
  return 4 + std::string("configdirectory").size() + 4 + std::string("new.db").size() + 4;
}
Run RawFilePut(std::function<std::string(std::string)> mutate) {
  return [=](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut, mutate(FilePutPayload()));
    p.SendBody("payload");
  };
}

Run FolderBeginWith(std::function<void(TestFolder&, const Paths&)> mutate,
                    TestFolder (*make)() = &BobFolder) {
  return [=](Peer& p, const Paths& d) {
    TestFolder f = make();
    mutate(f, d);
    SendFolderBegin(p, f);
  };
}

// Starts a legitimate update of alice's folder (adds uid 3), checks FOLDER_NEED asks for
// exactly uid 3, then lets the case misbehave, then sends FOLDER_COMMIT.
Run InAliceUpdate(std::function<void(Peer&)> then) {
  return [=](Peer& p, const Paths&) {
    SendFolderBegin(p, AliceUpdate());
    auto need = RecvNeed(p);
    ASSERT_TRUE(need.ok()) << need.status().ToString();
    ASSERT_EQ(NeedUids(*need), (std::vector<uint32_t>{3}));
    then(p);
    // Should the replica have accepted the misbehaviour, finish the exchange so that the test
    // fails on the OK (and shows what was installed) instead of waiting for a reply.
    p.Send(protocol::kFolderCommit, "");
  };
}

void SendMessagePut(Peer& p, uint32_t uid, bool archived, uint64_t declared) {
  p.Send(protocol::kMessagePut, protocol::Encode(protocol::MessagePut{uid, archived, declared}));
}

std::vector<HostileCase> Cases() {
  const std::string alice3 = AliceRecordsPlus3()[2].body;
  std::vector<HostileCase> c;
  auto add = [&](std::string name, Run run, bool hello = true) {
    c.push_back({std::move(name), hello, std::move(run)});
  };

  // --- Frames before HELLO, bad HELLO.
  add("NoHelloFilePut", FilePutAt("configdirectory", "new.db"), false);
  add("NoHelloFileRemove", FileRemoveAt(At("configdirectory", "mailboxes.db")), false);
  add("NoHelloFolderDelete", [](Peer& p, const Paths&) {
    p.Send(protocol::kFolderDelete, protocol::Encode(protocol::FolderDelete{"uuid-alice", true}));
  }, false);
  add("NoHelloFolderBegin", FolderBeginWith([](TestFolder&, const Paths&) {}), false);
  add("NoHelloGetManifest", [](Peer& p, const Paths&) {
    p.Send(protocol::kGetManifest, protocol::EncodeString(""));
  }, false);
  add("NoHelloUnknownType", [](Peer& p, const Paths&) { p.Send(999, ""); }, false);
  add("HelloBadMagic", [](Peer& p, const Paths&) {
    protocol::Hello h;
    h.magic = "CYRSYNX";
    p.Send(protocol::kHello, protocol::Encode(h));
  }, false);
  add("HelloTruncated", [](Peer& p, const Paths&) {
    std::string h = protocol::Encode(protocol::Hello{});
    p.Send(protocol::kHello, h.substr(0, h.size() - 1));
  }, false);
  add("HelloTrailingByte", [](Peer& p, const Paths&) {
    p.Send(protocol::kHello, protocol::Encode(protocol::Hello{}) + "x");
  }, false);
  add("HelloEmpty", [](Peer& p, const Paths&) { p.Send(protocol::kHello, ""); }, false);

  // --- Types the server does not accept at top level.
  for (uint16_t t : {uint16_t{999}, uint16_t{0}, uint16_t{kData}, uint16_t{kDataEnd},
                     uint16_t{kDeltaData}, uint16_t{protocol::kOk}, uint16_t{protocol::kHelloOk},
                     uint16_t{protocol::kManifestChunk}, uint16_t{protocol::kFolderNeed},
                     uint16_t{protocol::kMessagePut}, uint16_t{protocol::kMessageMissing},
                     uint16_t{protocol::kFolderCommit}, uint16_t{protocol::kError}}) {
    add("TopLevelType" + std::to_string(t), [t](Peer& p, const Paths&) {
      std::string payload = t == protocol::kMessagePut
                                ? protocol::Encode(protocol::MessagePut{1, false, 3})
                                : std::string("x");
      p.Send(t, payload);
    });
  }

  // --- FILE_PUT paths.
  add("FilePutDotDot", FilePutAt("configdirectory", "../outside/secret"));
  add("FilePutDotDotInside", FilePutAt("partition-default", "user/../../outside/secret"));
  add("FilePutDotDotLast", FilePutAt("partition-default", "user/.."));
  add("FilePutDotComponent", FilePutAt("configdirectory", "./mailboxes.db"));
  add("FilePutEmptyComponent", FilePutAt("partition-default", "user//x"));
  add("FilePutTrailingSlash", FilePutAt("partition-default", "user/"));
  add("FilePutAbsolute",
      FilePutAtFn([](const Paths& d) { return WirePath{"configdirectory", d.outside + "/secret"}; }));
  add("FilePutUnknownPartition", FilePutAt("partition-nosuch", "x"));
  add("FilePutUnknownRoot", FilePutAt("bogus", "x"));
  add("FilePutUnconfiguredMetadir", FilePutAt("metadir-cyrus.index-default", "x"));
  add("FilePutEmptyRoot", FilePutAt("", "x"));
  add("FilePutEmptyRel", FilePutAt("configdirectory", ""));
  add("FilePutNul", FilePutAt("configdirectory", std::string("mailboxes.db\0.evil", 18)));
  add("FilePutNulInDir", FilePutAt("partition-default", std::string("user\0/x", 7)));
  add("FilePutLongComponent", FilePutAt("configdirectory", std::string(256, 'a')));
  add("FilePutThroughSymlink", FilePutAt("partition-default", "user/link/secret"));
  add("FilePutThroughRelativeSymlink", FilePutAt("partition-default", "user/rel-link/new"));
  add("FilePutThroughSymlinkDeep", FilePutAt("partition-default", "user/link/sub/deeper/x"));
  add("FilePutIntoStaging", FilePutAt("partition-default", ".cyrsync-tmp/x"));
  add("FilePutIntoNestedStagingName", FilePutAt("partition-default", "user/.cyrsync-tmp/x"));
  add("FilePutOverDirectory", FilePutAt("partition-default", "user/alice"));

  // --- FILE_PUT payload decoding.
  add("FilePutKindZero", RawFilePut([](std::string s) { s[KindOffset()] = 0; return s; }));
  add("FilePutKindThree", RawFilePut([](std::string s) { s[KindOffset()] = 3; return s; }));
  add("FilePutUnsettledTwo",
      RawFilePut([](std::string s) { s[KindOffset() + 1 + 32] = 2; return s; }));
  add("FilePutTruncated", RawFilePut([](std::string s) { return s.substr(0, s.size() - 1); }));
  add("FilePutTrailingByte", RawFilePut([](std::string s) { return s + "z"; }));
  add("FilePutEmptyPayload", RawFilePut([](std::string) { return std::string(); }));
  add("FilePutHugeStringLength", RawFilePut([](std::string s) {
    s[0] = s[1] = s[2] = s[3] = '\xff';
    return s;
  }));

  // --- FILE_PUT symlinks.
  add("SymlinkTargetWithSlash", SymlinkPut("b/bob/defaultbc", Lit("../../../outside/secret")));
  add("SymlinkTargetSubdir", SymlinkPut("b/bob/defaultbc", Lit("sub/main.bc")));
  add("SymlinkTargetAbsolute",
      SymlinkPut("b/bob/defaultbc", [](const Paths& d) { return d.outside + "/secret"; }));
  add("SymlinkTargetDotDot", SymlinkPut("b/bob/defaultbc", Lit("..")));
  add("SymlinkTargetDot", SymlinkPut("b/bob/defaultbc", Lit(".")));
  add("SymlinkTargetEmpty", SymlinkPut("b/bob/defaultbc", Lit("")));
  add("SymlinkTargetNul", SymlinkPut("b/bob/defaultbc", Lit(std::string("main.bc\0x", 9))));
  add("SymlinkPathThroughSymlink",
      SymlinkPut("user/link/defaultbc", Lit("main.bc"), "partition-default"));
  add("SymlinkPathDotDot", SymlinkPut("../outside/defaultbc", Lit("main.bc")));
  add("SymlinkPutOverDirectory", SymlinkPut("user/alice", Lit("main.bc"), "partition-default"));

  // --- FILE_PUT bodies.
  add("FilePutBodyOverMaxFileSize", [](Peer& p, const Paths&) {
    SendFilePut(p, {"configdirectory", "big.db"}, std::string(kMaxFile + 1, 'b'));
  });
  add("FilePutBodyLargerThanDeclared", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut,
           protocol::Encode(MakeFilePut({"configdirectory", "new.db"}, 3, kSrc)));
    p.SendBody("0123456789");
  });
  add("FilePutBodyShorterThanDeclared", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut,
           protocol::Encode(MakeFilePut({"configdirectory", "new.db"}, 100, kSrc)));
    p.SendBody("0123456789");
  });
  add("FilePutWrongSha1", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut, FilePutPayload());
    p.SendBodyWithSha("payload", Sha1Hex("something else"));
  });
  add("FilePutWrongSha1OverInstalled", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut,
           protocol::Encode(MakeFilePut({"configdirectory", "mailboxes.db"}, 7, kSrc)));
    p.SendBodyWithSha("new-db!", Sha1Hex("x"));
  });
  add("FilePutMalformedSha1", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut, FilePutPayload());
    p.SendBodyWithSha("payload", "not-hex");
  });
  add("FilePutDataEndTruncated", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut, FilePutPayload());
    p.Send(kData, "payload");
    p.Send(kDataEnd, std::string("\0\0", 2));
  });
  add("FilePutUnexpectedFrameInBody", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut, FilePutPayload());
    p.Send(kData, "pay");
    p.Send(protocol::kOk, "");
  });
  add("FilePutDeltaWithoutBasis", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut, FilePutPayload());
    p.Send(kDeltaData, "garbage delta");
    p.Send(kDataEnd, protocol::EncodeString(Sha1Hex("payload")));
  });
  add("FilePutGarbageDeltaOverInstalled", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut,
           protocol::Encode(MakeFilePut({"configdirectory", "mailboxes.db"}, 7, kSrc)));
    p.Send(kDeltaData, std::string("\x72\x73\x02\x36garbage-after-magic", 23));
    p.Send(kDataEnd, protocol::EncodeString(Sha1Hex("new-db!")));
  });
  add("FilePutMixedDataAndDelta", [](Peer& p, const Paths&) {
    p.Send(protocol::kFilePut,
           protocol::Encode(MakeFilePut({"configdirectory", "mailboxes.db"}, 7, kSrc)));
    p.Send(kData, "new");
    p.Send(kDeltaData, "-db!");
    p.Send(kDataEnd, protocol::EncodeString(Sha1Hex("new-db!")));
  });

  // --- FILE_REMOVE.
  add("FileRemoveDotDot", FileRemoveAt(At("configdirectory", "../outside/secret")));
  add("FileRemoveAbsolute", FileRemoveAt([](const Paths& d) {
        return WirePath{"configdirectory", d.outside + "/secret"};
      }));
  add("FileRemoveThroughSymlink", FileRemoveAt(At("partition-default", "user/link/secret")));
  add("FileRemoveUnknownRoot", FileRemoveAt(At("partition-nosuch", "mailboxes.db")));
  add("FileRemoveEmptyRel", FileRemoveAt(At("configdirectory", "")));
  add("FileRemoveNul", FileRemoveAt(At("configdirectory", std::string("mailboxes.db\0x", 14))));
  add("FileRemoveDirectory", FileRemoveAt(At("partition-default", "user/alice")));
  add("FileRemoveTruncated", [](Peer& p, const Paths&) {
    p.Send(protocol::kFileRemove, protocol::EncodeString("configdirectory"));
  });
  add("FileRemoveTrailingByte", [](Peer& p, const Paths&) {
    p.Send(protocol::kFileRemove,
           protocol::EncodePath({"configdirectory", "mailboxes.db"}) + "z");
  });

  // --- Other requests with bad payloads or paths.
  add("GetSignatureDotDot", [](Peer& p, const Paths&) {
    p.Send(protocol::kGetSignature, protocol::EncodePath({"configdirectory", "../outside/secret"}));
  });
  add("GetManifestEmptyPayload",
      [](Peer& p, const Paths&) { p.Send(protocol::kGetManifest, ""); });
  add("FolderDeleteTruncated", [](Peer& p, const Paths&) {
    p.Send(protocol::kFolderDelete, protocol::EncodeString("uuid-alice"));
  });
  add("FolderDeleteBadBool", [](Peer& p, const Paths&) {
    p.Send(protocol::kFolderDelete, protocol::EncodeString("uuid-alice") + "\x07");
  });
  auto folder_check = [](std::vector<protocol::CheckedFolder> folders, std::string extra = "") {
    return [=](Peer& p, const Paths&) {
      p.Send(protocol::kFolderCheck, protocol::Encode(protocol::FolderCheck{folders}) + extra);
    };
  };
  const WirePath alice_dir{"partition-default", "user/alice"};
  add("FolderCheckDotDot",
      folder_check({{"uuid-alice", alice_dir, {"partition-default", "user/../../outside"}}}));
  add("FolderCheckAbsolute", folder_check({{"uuid-alice", {"partition-default", "/etc"}, alice_dir}}));
  add("FolderCheckUnknownRoot", folder_check({{"uuid-alice", {"nosuch", "x"}, alice_dir}}));
  add("FolderCheckTrailingByte", folder_check({{"uuid-alice", alice_dir, alice_dir}}, "z"));
  add("FolderCheckTooMany", folder_check(std::vector<protocol::CheckedFolder>(
                                protocol::kMaxFoldersPerCheck + 1, {"uuid-alice", alice_dir, alice_dir})));

  // --- FOLDER_BEGIN directories.
  auto data_dir = [](std::function<WirePath(const Paths&)> dir) {
    return FolderBeginWith([dir](TestFolder& f, const Paths& d) { f.fb.data_dir = dir(d); });
  };
  auto archive_dir = [](std::function<WirePath(const Paths&)> dir) {
    return FolderBeginWith([dir](TestFolder& f, const Paths& d) { f.fb.archive_dir = dir(d); });
  };
  add("FolderBeginDataDirDotDot", data_dir(At("partition-default", "../outside")));
  add("FolderBeginDataDirDotDotInside", data_dir(At("partition-default", "user/../../outside")));
  add("FolderBeginDataDirAbsolute", data_dir([](const Paths& d) {
        return WirePath{"partition-default", d.outside};
      }));
  add("FolderBeginDataDirUnknownRoot", data_dir(At("partition-nosuch", "user/bob")));
  add("FolderBeginDataDirEmpty", data_dir(At("partition-default", "")));
  add("FolderBeginDataDirNul", data_dir(At("partition-default", std::string("user/bob\0x", 10))));
  add("FolderBeginDataDirThroughSymlink", data_dir(At("partition-default", "user/link/bob")));
  add("FolderBeginArchiveDirDotDot", archive_dir(At("partition-default", "../outside")));
  add("FolderBeginArchiveDirThroughSymlink",
      archive_dir(At("partition-default", "user/link/bob")));

  // --- FOLDER_BEGIN files.
  auto file1 = [](std::function<WirePath(const Paths&)> path) {
    return FolderBeginWith([path](TestFolder& f, const Paths& d) { f.fb.files[1].path = path(d); });
  };
  add("FolderBeginFileDotDot",
      file1(At("partition-default", "user/bob/../../../outside/cyrus.index")));
  add("FolderBeginFileAbsolute", file1([](const Paths& d) {
        return WirePath{"partition-default", d.outside + "/cyrus.index"};
      }));
  add("FolderBeginFileThroughSymlink", file1(At("partition-default", "user/link/cyrus.index")));
  add("FolderBeginFileUnknownRoot", file1(At("nosuch", "user/bob/cyrus.index")));
  add("FolderBeginFileEmptyRel", file1(At("partition-default", "")));
  add("FolderBeginFileNul",
      file1(At("partition-default", std::string("user/bob/cyrus.index\0x", 22))));
  add("FolderBeginFileNotCyrus", file1(At("partition-default", "user/bob/notes.txt")));
  add("FolderBeginFileMessageName", file1(At("partition-default", "user/bob/1.")));
  add("FolderBeginFileBareCyrusDot", file1(At("partition-default", "user/bob/cyrus.")));
  add("FolderBeginFileInStaging",
      file1(At("partition-default", "user/bob/.cyrsync-tmp/cyrus.index")));
  add("FolderBeginFileServerWide", file1(At("configdirectory", "mailboxes.db")));

  // --- FOLDER_BEGIN bodies and payload.
  add("FolderBeginWrongSha1", [](Peer& p, const Paths&) {
    TestFolder f = BobFolder();
    p.Send(protocol::kFolderBegin, protocol::Encode(f.fb));
    p.SendBody(f.bodies[0]);
    p.SendBodyWithSha(f.bodies[1], Sha1Hex("not the index"));
  });
  add("FolderBeginBodyOverMax", [](Peer& p, const Paths&) {
    TestFolder f = BobFolder();
    f.bodies[0] = std::string(kMaxFile + 1, 'h');
    SendFolderBegin(p, f);
  });
  add("FolderBeginMissingBody", [](Peer& p, const Paths&) {
    TestFolder f = BobFolder();
    p.Send(protocol::kFolderBegin, protocol::Encode(f.fb));
    p.SendBody(f.bodies[0]);
    p.Send(protocol::kFolderCommit, "");
  });
  add("FolderBeginCorruptIndex", FolderBeginWith([](TestFolder& f, const Paths&) {
        f.bodies[1] = "this is not a cyrus.index";
      }));
  add("FolderBeginIndexBadRecordCrc", FolderBeginWith([](TestFolder& f, const Paths&) {
        f.bodies[1][160 + 20] ^= 1;
      }));
  add("FolderBeginIndexTruncatedRecords", FolderBeginWith([](TestFolder& f, const Paths&) {
        f.bodies[1].resize(160 + 50);
      }));
  add("FolderBeginTruncated", [](Peer& p, const Paths&) {
    std::string b = protocol::Encode(BobFolder().fb);
    p.Send(protocol::kFolderBegin, b.substr(0, b.size() - 1));
  });
  add("FolderBeginHugeFileCount", [](Peer& p, const Paths&) {
    TestFolder f = BobFolder();
    f.fb.files.clear();
    std::string b = protocol::Encode(f.fb);
    b.replace(b.size() - 4, 4, "\xff\xff\xff\xff");
    p.Send(protocol::kFolderBegin, b);
  });
  add("FolderBeginFileCountBeyondPayload", [](Peer& p, const Paths&) {
    TestFolder f = BobFolder();
    f.fb.files.clear();
    std::string b = protocol::Encode(f.fb);
    b.replace(b.size() - 4, 4, std::string("\x00\x00\x03\xe8", 4));
    p.Send(protocol::kFolderBegin, b);
  });
  add("FolderBeginDeltaWithoutBasis", [](Peer& p, const Paths&) {
    TestFolder f = BobFolder();
    p.Send(protocol::kFolderBegin, protocol::Encode(f.fb));
    p.Send(kDeltaData, "garbage");
    p.Send(kDataEnd, protocol::EncodeString(Sha1Hex(f.bodies[0])));
  });
  add("FolderBeginGarbageDeltaOverInstalledMeta", [](Peer& p, const Paths&) {
    TestFolder f = AliceUpdate();
    p.Send(protocol::kFolderBegin, protocol::Encode(f.fb));
    p.Send(kDeltaData, std::string("\x72\x73\x02\x36\x41\x41\x41\x41garbage", 15));
    p.Send(kDataEnd, protocol::EncodeString(Sha1Hex(f.bodies[0])));
  });
  add("FolderBeginNoFilesNoInstalledIndex", FolderBeginWith([](TestFolder& f, const Paths&) {
        f.fb.files.clear();
        f.bodies.clear();
      }));
  // A different folder key at a directory the manifest records for another folder (alice):
  // the request is refused, so alice's files must not be touched.
  add("FolderBeginOtherKeyAtOccupiedDirBadName", [](Peer& p, const Paths&) {
    TestFolder f = MakeFolder("uuid-mallory", "user/alice", {{1, "m"}}, "mallory");
    f.fb.files[1].path.rel = "user/alice/notes.txt";
    SendFolderBegin(p, f);
  });
  add("FolderBeginOtherKeyAtOccupiedDirBadSha1", [](Peer& p, const Paths&) {
    TestFolder f = MakeFolder("uuid-mallory", "user/alice", {{1, "m"}}, "mallory");
    p.Send(protocol::kFolderBegin, protocol::Encode(f.fb));
    p.SendBodyWithSha(f.bodies[0], Sha1Hex("wrong"));
  });

  // --- Inside a folder exchange (alice update; FOLDER_NEED asked for uid 3 only).
  add("MessagePutNotRequested", InAliceUpdate([](Peer& p) { SendMessage(p, 9, "nine"); }));
  add("MessagePutAlreadyPresentNotRequested",
      InAliceUpdate([](Peer& p) { SendMessage(p, 1, "overwritten alice one"); }));
  add("MessagePutWrongSha1", InAliceUpdate([alice3](Peer& p) {
        SendMessagePut(p, 3, false, alice3.size());
        p.SendBodyWithSha(alice3, Sha1Hex("other"));
      }));
  add("MessagePutOverMax", InAliceUpdate([](Peer& p) {
        std::string big(kMaxFile + 1, 'm');
        SendMessagePut(p, 3, false, big.size());
        p.SendBody(big);
      }));
  add("MessagePutLargerThanDeclared", InAliceUpdate([alice3](Peer& p) {
        SendMessagePut(p, 3, false, 5);
        p.SendBody(alice3);
      }));
  add("MessagePutTruncated", InAliceUpdate([](Peer& p) {
        std::string b = protocol::Encode(protocol::MessagePut{3, false, 10});
        p.Send(protocol::kMessagePut, b.substr(0, b.size() - 1));
      }));
  add("MessagePutBadArchivedBool", InAliceUpdate([](Peer& p) {
        std::string b = protocol::Encode(protocol::MessagePut{3, false, 10});
        b[4] = 9;
        p.Send(protocol::kMessagePut, b);
      }));
  add("MessagePutDeltaWithoutBasis", InAliceUpdate([alice3](Peer& p) {
        SendMessagePut(p, 3, false, alice3.size());
        p.Send(kDeltaData, "garbage");
        p.Send(kDataEnd, protocol::EncodeString(Sha1Hex(alice3)));
      }));
  add("MessageMissingTruncated", InAliceUpdate([](Peer& p) {
        p.Send(protocol::kMessageMissing, "\x01");
        p.Send(protocol::kFolderCommit, "");
      }));
  add("FolderCommitWithPayload", InAliceUpdate([](Peer& p) {
        p.Send(protocol::kMessageMissing, protocol::EncodeU32(3));
        p.Send(protocol::kFolderCommit, "junk");
      }));
  add("FilePutInsideFolder", InAliceUpdate([](Peer& p) {
        SendFilePut(p, {"configdirectory", "new.db"});
      }));
  add("DataFrameInsideFolder", InAliceUpdate([](Peer& p) { p.Send(kData, "stray"); }));
  add("HelloInsideFolder", InAliceUpdate([](Peer& p) {
        p.Send(protocol::kHello, protocol::Encode(protocol::Hello{}));
      }));
  return c;
}

// ---------------------------------------------------------------------------------------------

class ReplicaHostileFixture : public ReplicaFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ReplicaFixture::SetUp());
    opts_.max_file_size = kMaxFile;
    ASSERT_NO_FATAL_FAILURE(OpenStore());
    paths_ = {conf_dir_, spool_, sieve_, outside_};
    WriteFile(Outside("secret"), "top secret");
    WriteFile(Outside("7."), "outside message seven");
    WriteFile(Outside("cyrus.index"), "outside index");
    fs::create_directories(Spool("user"));
    fs::create_directory_symlink(outside_, Spool("user/link"));
    fs::create_directory_symlink("../../outside", Spool("user/rel-link"));
    WriteFile(Sieve("b/bob/main.bc"), "bytecode");
    // Legitimately installed state the hostile requests must not disturb.
    Peer& p = Connect();
    Status st = PutFile(p, {"configdirectory", "mailboxes.db"}, "db-content",
                        {10, kSrc.mtime_ns, kSrc.ctime_ns, 1});
    ASSERT_TRUE(st.ok()) << st.ToString();
    st = InstallFolder(p, AliceFolder(), AliceRecords());
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_TRUE(EndSession().ok());
    ASSERT_TRUE(Exists(Spool("user/alice/1.")));
  }

  std::vector<std::string> ManifestRows() {
    std::vector<std::string> rows;
    auto page = store_->manifest().Page("", nullptr, 1 << 20);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    for (const auto& e : page.ok() ? *page : std::vector<StoredEntry>{}) {
      rows.push_back(e.entry.path.root + ":" + e.entry.path.rel);
    }
    return rows;
  }

  // Reads the next frame and checks it is an ERROR followed by the end of the session.
  void ExpectErrorAndEnd(Peer& p) {
    auto f = p.Recv();
    ASSERT_TRUE(f.ok()) << "no ERROR frame: " << f.status().ToString();
    if (f->type != protocol::kError) {
      ADD_FAILURE() << "expected ERROR, got message type " << f->type;
      (void)EndSession();
      return;
    }
    Status err = protocol::StatusFromError(f->payload);
    EXPECT_FALSE(err.ok());
    RecordProperty("replica_error", err.ToString());
    auto next = p.Recv();
    ASSERT_FALSE(next.ok()) << "frame type " << next->type << " after ERROR";
    EXPECT_EQ(next.status().code(), Code::kUnavailable) << "session not closed after ERROR";
    EXPECT_FALSE(EndSession().ok()) << "ServeSession returned OK after sending ERROR";
  }

  Paths paths_;
};

class ReplicaHostileTest : public ReplicaHostileFixture,
                           public ::testing::WithParamInterface<HostileCase> {};

TEST_P(ReplicaHostileTest, ErrorEndsSessionAndDiskUnchanged) {
  const HostileCase& c = GetParam();
  const Snapshot before = Snap();
  const auto rows_before = ManifestRows();
  Peer& p = StartSession();
  if (c.hello) {
    auto hello = DoHello(p);
    ASSERT_TRUE(hello.ok()) << hello.status().ToString();
  }
  c.run(p, paths_);
  ASSERT_NO_FATAL_FAILURE(ExpectErrorAndEnd(p));
  EXPECT_EQ(DiffSnapshots(before, Snap()), "") << "disk changed for a refused request";
  EXPECT_EQ(ManifestRows(), rows_before);
  // A restart must not roll anything forward either, and must still succeed.
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(DiffSnapshots(before, Snap()), "") << "disk changed after reopening the store";
}

INSTANTIATE_TEST_SUITE_P(Cases, ReplicaHostileTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<HostileCase>& i) {
                           return i.param.name;
                         });

// ---------------------------------------------------------------------------------------------
// Hostile cases that need their own set-up or checks.

using ReplicaHostileExtraTest = ReplicaHostileFixture;

// A brand-new folder whose exchange is refused after FOLDER_NEED (unrequested MESSAGE_PUT):
// strictly nothing may change, including the folder's directory.
TEST_F(ReplicaHostileExtraTest, UnrequestedMessageForNewFolderLeavesNoTrace) {
  const Snapshot before = Snap();
  Peer& p = Connect();
  SendFolderBegin(p, BobFolder());
  auto need = RecvNeed(p);
  ASSERT_TRUE(need.ok()) << need.status().ToString();
  EXPECT_EQ(NeedUids(*need), (std::vector<uint32_t>{1}));
  SendMessage(p, 2, "not asked for");
  ASSERT_NO_FATAL_FAILURE(ExpectErrorAndEnd(p));
  EXPECT_FALSE(Exists(Spool("user/bob/2.")));
  EXPECT_EQ(DiffSnapshots(before, Snap()), "");
}

// A data directory whose last component is a symlink to outside the root, with the metadata in
// another (legitimate) directory: message files would be written -- and stray ones removed --
// through the symlink.
TEST_F(ReplicaHostileExtraTest, DataDirThatIsASymlinkIsRefused) {
  const Snapshot before = Snap();
  Peer& p = Connect();
  TestFolder f = MakeFolder("uuid-carol", "user/carol", {{1, "carol one"}}, "carol");
  f.fb.data_dir = {"partition-default", "user/link"};
  f.fb.archive_dir = f.fb.data_dir;
  SendFolderBegin(p, f);
  auto reply = p.Recv();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  if (reply->type == protocol::kFolderNeed) {
    ADD_FAILURE() << "FOLDER_BEGIN with a symlinked data_dir was accepted (FOLDER_NEED)";
    // Play the exchange to the end to show what a hostile peer gets.
    auto need = protocol::DecodeNeed(reply->payload);
    ASSERT_TRUE(need.ok());
    for (const auto& n : *need) SendMessage(p, n.uid, "carol one", n.archived);
    Status st = Commit(p);
    ADD_FAILURE() << "commit through the symlink: " << st.ToString();
  } else {
    EXPECT_EQ(reply->type, protocol::kError);
  }
  (void)EndSession();
  EXPECT_TRUE(Exists(Outside("7."))) << "a file outside the roots was deleted";
  EXPECT_FALSE(Exists(Outside("1."))) << "a file was written outside the roots";
  EXPECT_EQ(DiffSnapshots(before, Snap()), "");
}

// With a separate archive partition the archived flag names a different file: a MESSAGE_PUT for
// the archived copy of a uid FOLDER_NEED asked for in the data directory is not requested.
TEST_F(ReplicaHostileExtraTest, ArchivedCopyNotRequestedWithArchivePartition) {
  fs::create_directories(Spool("user/dave"));
  fs::create_directories(Archive("user/dave"));
  const Snapshot before = Snap();
  Peer& p = Connect();
  TestFolder f = MakeFolder("uuid-dave", "user/dave", {{1, "dave one"}}, "dave");
  f.fb.archive_dir = {"archivepartition-default", "user/dave"};
  SendFolderBegin(p, f);
  auto need = RecvNeed(p);
  ASSERT_TRUE(need.ok()) << need.status().ToString();
  EXPECT_EQ(NeedUids(*need), (std::vector<uint32_t>{1}));
  SendMessage(p, 1, "dave one", /*archived=*/true);
  ASSERT_NO_FATAL_FAILURE(ExpectErrorAndEnd(p));
  EXPECT_EQ(DiffSnapshots(before, Snap()), "");
}

// The install journal is "staged\tfinal\n" per file, and final comes from the peer's rel. A rel
// holding '\n' and '\t' (not refused by the path checks) forges a second journal line naming
// two arbitrary absolute paths. A journal is left behind whenever an install's rename fails (here:
// the destination is a directory, which the first request created), and the next Store::Open
// then renames the first forged path onto the second.
TEST_F(ReplicaHostileExtraTest, ControlCharactersInPathCannotForgeJournalLines) {
  const std::string forged = "foo\n" + Outside("secret") + "\t" + Conf("stolen");
  {
    Peer& p = Connect();
    Status st = PutFile(p, {"configdirectory", forged + "/x"}, "x", kSrc);
    RecordProperty("first_put", st.ToString());
    (void)EndSession();
  }
  {
    Peer& p = Connect();
    Status st = PutFile(p, {"configdirectory", forged}, "y", kSrc);
    RecordProperty("second_put", st.ToString());
    (void)EndSession();
  }
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(ReadFile(Outside("secret")), "top secret")
      << "a file outside the roots was moved by a forged journal line";
  EXPECT_FALSE(Exists(Conf("stolen")));
}

// FILE_PUT over an existing symlink (final component) replaces the link itself; the file it
// pointed to, outside the roots, is untouched.
TEST_F(ReplicaHostileExtraTest, FilePutOverSymlinkReplacesLinkNotTarget) {
  fs::create_symlink(Outside("secret"), Conf("evil-link"));
  Peer& p = Connect();
  Status st = PutFile(p, {"configdirectory", "evil-link"}, "replaced", kSrc);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_FALSE(fs::is_symlink(Conf("evil-link")));
  EXPECT_EQ(ReadFile(Conf("evil-link")), "replaced");
  EXPECT_EQ(ReadFile(Outside("secret")), "top secret");
}

// FILE_REMOVE of a symlink removes the link, not its target.
TEST_F(ReplicaHostileExtraTest, FileRemoveOfSymlinkRemovesLinkNotTarget) {
  fs::create_symlink(Outside("secret"), Conf("evil-link"));
  Peer& p = Connect();
  Status st = RemoveFile(p, {"configdirectory", "evil-link"});
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_FALSE(Exists(Conf("evil-link")));
  EXPECT_EQ(ReadFile(Outside("secret")), "top secret");
}

// The peer hangs up in the middle of a body: nothing is installed.
TEST_F(ReplicaHostileExtraTest, PeerClosingMidBodyInstallsNothing) {
  const Snapshot before = Snap();
  Peer& p = Connect();
  p.Send(protocol::kFilePut,
         protocol::Encode(MakeFilePut({"configdirectory", "mailboxes.db"}, 100, kSrc)));
  p.Send(kData, "partial");
  Status st = EndSession();
  EXPECT_FALSE(st.ok()) << "a half-received FILE_PUT ended the session as a clean close";
  EXPECT_EQ(DiffSnapshots(before, Snap()), "");
  EXPECT_EQ(ReadFile(Conf("mailboxes.db")), "db-content");
}

// ---------------------------------------------------------------------------------------------
// The default state directory (<configdirectory>/cyrsync) lies inside a root the peer may write
// to. The peer must not be able to write there: an injected journal is rolled forward by the
// next Store::Open, renaming arbitrary absolute paths.

class ReplicaDefaultStateDirTest : public ReplicaFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ReplicaFixture::SetUp());
    opts_.state_dir = "";  // default: <configdirectory>/cyrsync
    ASSERT_NO_FATAL_FAILURE(OpenStore());
    ASSERT_EQ(store_->options().state_dir, Conf("cyrsync"));
    WriteFile(Outside("secret"), "top secret");
  }
};

TEST_F(ReplicaDefaultStateDirTest, FilePutOfJournalIntoStateDirIsRefused) {
  Peer& p = Connect();
  std::string journal = EncodeJournal({{Outside("secret"), Conf("stolen")}});
  Status st = PutFile(p, {"configdirectory", "cyrsync/journal-1-1"}, journal, kSrc);
  EXPECT_FALSE(st.ok()) << "FILE_PUT into the replica's state directory was accepted";
  (void)EndSession();
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_TRUE(Exists(Outside("secret"))) << "injected journal moved a file from outside the roots";
  EXPECT_FALSE(Exists(Conf("stolen")));
}

TEST_F(ReplicaDefaultStateDirTest, FileRemoveInStateDirIsRefused) {
  Peer& p = Connect();
  Status st = RemoveFile(p, {"configdirectory", "cyrsync/instance-id"});
  EXPECT_FALSE(st.ok()) << "FILE_REMOVE inside the replica's state directory was accepted";
  EXPECT_TRUE(Exists(Conf("cyrsync/instance-id")));
}

TEST_F(ReplicaDefaultStateDirTest, FilePutOverInstanceIdIsRefused) {
  const std::string id = store_->instance_id();
  Peer& p = Connect();
  Status st = PutFile(p, {"configdirectory", "cyrsync/instance-id"}, std::string(32, '0'), kSrc);
  EXPECT_FALSE(st.ok()) << "FILE_PUT over the replica's instance-id was accepted";
  (void)EndSession();
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(store_->instance_id(), id);
}

}  // namespace
}  // namespace cyrsync::replica
