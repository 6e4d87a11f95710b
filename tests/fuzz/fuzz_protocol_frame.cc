// Fuzzes the wire protocol (HOUSE-STYLE H5): FrameDecoder over a byte stream from the peer and
// every message decoder of protocol/messages.h, in both directions (a compromised replica is as
// hostile as a compromised source).
//
// The input is the raw stream. Properties checked:
//  - feeding the stream whole and in arbitrary pieces (empty ones too) yields the same frames
//    and the same error; a failed decoder stays failed and consumes nothing;
//  - the decoded frames re-encode (EncodeFrame) to exactly the bytes they were read from;
//  - each frame's payload goes to the decoder of its type; a payload a decoder accepts
//    re-encodes to the same bytes (the encoding is canonical), and rejects are kCorruption;
//  - because the frame CRC hides payloads from the fuzzer, the whole input is also handed to
//    every decoder directly, and walked with a PayloadReader driven by its first bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/frame.h"
#include "protocol/messages.h"
#include "tests/fuzz/fuzz_util.h"

namespace cyrsync::protocol {
namespace {

using fuzz::CheckCorruption;

// Decodes p with dec; when accepted, enc(value) must give p back.
template <typename Dec, typename Enc>
void RoundTrip(std::string_view p, std::string_view name, Dec dec, Enc enc) {
  auto r = dec(p);
  if (!r.ok()) {
    CheckCorruption(r.error(), name);
    return;
  }
  std::string again = enc(*r);
  FUZZ_CHECK(again == p, std::string(name) + " is not canonical: " + std::to_string(p.size()) +
                             " bytes in, " + std::to_string(again.size()) + " re-encoded");
}

void DecodeErrorFrame(std::string_view p) {
  RoundTrip(p, "DecodeError", DecodeError, [](const ErrorMsg& m) { return Encode(m); });
  Status s = StatusFromError(p);
  FUZZ_CHECK(!s.ok(), "StatusFromError returned OK");
}

// Every decoder, by the frame type whose payload it reads (doc/formats/protocol.md).
void DecodeByType(uint16_t type, std::string_view p) {
  auto str = [](const std::string& s) { return EncodeString(s); };
  auto path = [](const WirePath& w) { return EncodePath(w); };
  auto enc = [](const auto& m) { return Encode(m); };
  switch (type) {
    case kHello:
      return RoundTrip(p, "DecodeHello", DecodeHello, enc);
    case kHelloOk:
      return RoundTrip(p, "DecodeHelloOk", DecodeHelloOk, enc);
    case kGetManifest:
      return RoundTrip(p, "DecodeString", DecodeString, str);
    case kManifestChunk:
      return RoundTrip(p, "DecodeManifestChunk", DecodeManifestChunk, EncodeManifestChunk);
    case kManifestEnd:
      return RoundTrip(p, "DecodeU64", DecodeU64, EncodeU64);
    case kFolderBegin:
      return RoundTrip(p, "DecodeFolderBegin", DecodeFolderBegin, enc);
    case kFolderNeed:
      return RoundTrip(p, "DecodeNeed", DecodeNeed, EncodeNeed);
    case kMessagePut:
      return RoundTrip(p, "DecodeMessagePut", DecodeMessagePut, enc);
    case kMessageMissing:
      return RoundTrip(p, "DecodeU32", DecodeU32, EncodeU32);
    case kFolderDelete:
      return RoundTrip(p, "DecodeFolderDelete", DecodeFolderDelete, enc);
    case kFolderCheck:
      return RoundTrip(p, "DecodeFolderCheck", DecodeFolderCheck, enc);
    case kFolderCheckResult:
      return RoundTrip(p, "DecodeFolderCheckResult", DecodeFolderCheckResult, enc);
    case kFilePut:
      return RoundTrip(p, "DecodeFilePut", DecodeFilePut, enc);
    case kFileRemove:
    case kGetSignature:
      return RoundTrip(p, "DecodePath", DecodePath, path);
    case kData:
    case kDeltaData:
    case kFolderCommit:
    case kOk:
    case kAbsent:
      return;  // raw bytes, or no payload
    case kDataEnd:
      return RoundTrip(p, "DecodeString", DecodeString, str);
    case kUserState:
      return RoundTrip(p, "DecodeString", DecodeString, str);
    case kUserStateOk:
      return RoundTrip(p, "DecodeUserState", DecodeUserState, enc);
    case kFolderFetch:
      return RoundTrip(p, "DecodeString", DecodeString, str);
    case kMetaFile:
      return RoundTrip(p, "DecodeStateFile", DecodeStateFile, enc);
    case kMessageFetch:
      return RoundTrip(p, "DecodeMessageFetch", DecodeMessageFetch, enc);
    case kFileFetch:
      return RoundTrip(p, "DecodePath", DecodePath, path);
    case kPassDone:
      return RoundTrip(p, "DecodePassDone", DecodePassDone, enc);
    case kMessagesFetch:
      return RoundTrip(p, "DecodeMessagesFetch", DecodeMessagesFetch, enc);
    case kRestoreBegin:
      return RoundTrip(p, "DecodeString", DecodeString, str);
    case kRestoreDone:
      return RoundTrip(p, "DecodeRestoreDone", DecodeRestoreDone, enc);
    case kError:
      return DecodeErrorFrame(p);
    default:
      return;  // unknown types are the receiver's protocol error, not the decoder's
  }
}

constexpr uint16_t kAllTypes[] = {
    kHello,       kHelloOk,    kGetManifest,  kManifestChunk, kManifestEnd, kFolderBegin,
    kFolderNeed,  kMessagePut, kFolderDelete, kFilePut,       kFileRemove,  kDataEnd,
    kUserStateOk, kMetaFile,   kMessageFetch, kPassDone,      kError};

struct Decoded {
  std::vector<Frame> frames;
  std::string error;      // empty when the stream ended without an error
  size_t frames_end = 0;  // stream bytes up to the end of the last frame
  bool at_boundary = false;
};

Decoded DecodeStream(const std::vector<std::string_view>& pieces, size_t max_payload) {
  FrameDecoder dec(max_payload);
  Decoded d;
  uint64_t fed = 0;
  for (std::string_view in : pieces) {
    while (true) {
      size_t consumed = 0;
      FrameDecoder::Out out = dec.Feed(in, &consumed);
      FUZZ_CHECK(consumed <= in.size(), "Feed consumed more than it was given");
      fed += consumed;
      FUZZ_CHECK(dec.stream_offset() == fed, "stream_offset disagrees with the bytes consumed");
      if (out.kind == FrameDecoder::Out::kError) {
        CheckCorruption(out.error, "FrameDecoder");
        d.error = out.error.ToString();
        size_t again = 1;
        FrameDecoder::Out after = dec.Feed(in.substr(consumed), &again);
        FUZZ_CHECK(after.kind == FrameDecoder::Out::kError && again == 0,
                   "a failed FrameDecoder accepted more bytes");
        FUZZ_CHECK(!dec.AtFrameBoundary(), "a failed FrameDecoder claims a frame boundary");
        return d;
      }
      in.remove_prefix(consumed);
      if (out.kind == FrameDecoder::Out::kNeedMore) {
        FUZZ_CHECK(in.empty(), "kNeedMore left input unconsumed");
        break;
      }
      FUZZ_CHECK(out.payload.size() <= max_payload, "frame payload over the limit");
      d.frames.push_back(Frame{out.type, std::move(out.payload)});
      d.frames_end = fed;
      FUZZ_CHECK(dec.AtFrameBoundary(), "no frame boundary right after a frame");
      if (in.empty()) break;
    }
  }
  d.at_boundary = dec.AtFrameBoundary();
  return d;
}

// Reads payload with a sequence of typed reads chosen by ops; a failed read must leave the
// position unchanged and every read must stay within the payload.
void WalkPayload(std::string_view payload, std::string_view ops) {
  PayloadReader r(payload);
  for (unsigned char op : ops) {
    const size_t before = r.offset();
    FUZZ_CHECK(r.offset() + r.remaining() == payload.size(), "offset + remaining != size");
    Status st;
    switch (op % 7) {
      case 0:
        st = r.U8().status();
        break;
      case 1:
        st = r.U16().status();
        break;
      case 2:
        st = r.U32().status();
        break;
      case 3:
        st = r.U64().status();
        break;
      case 4:
        st = r.I64().status();
        break;
      case 5:
        st = r.String(size_t{op} / 8 * 8).status();
        break;
      default:
        st = r.Bytes(size_t{op} / 8).status();
        break;
    }
    if (!st.ok()) {
      CheckCorruption(st, "PayloadReader");
      FUZZ_CHECK(r.offset() == before, "a failed read moved the position");
    }
    FUZZ_CHECK(r.offset() <= payload.size(), "PayloadReader ran past the payload");
  }
  FUZZ_CHECK(r.ExpectEnd().ok() == r.AtEnd(), "ExpectEnd disagrees with AtEnd");
}

}  // namespace
}  // namespace cyrsync::protocol

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cyrsync::protocol;
  using cyrsync::fuzz::Pieces;
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  // The default limit is what both daemons use; a small one exercises the early rejection.
  for (size_t max_payload : {kDefaultMaxPayload, size_t{64}}) {
    Decoded whole = DecodeStream({in}, max_payload);
    Decoded split = DecodeStream(Pieces(in, 13), max_payload);
    FUZZ_CHECK(whole.error == split.error,
               "split feeding changed the error: '" + whole.error + "' vs '" + split.error + "'");
    FUZZ_CHECK(whole.frames.size() == split.frames.size(), "split feeding changed the frames");
    std::string reencoded;
    for (size_t i = 0; i < whole.frames.size(); ++i) {
      const Frame& f = whole.frames[i];
      FUZZ_CHECK(f.type == split.frames[i].type && f.payload == split.frames[i].payload,
                 "split feeding changed frame " + std::to_string(i));
      reencoded += EncodeFrame(f.type, f.payload);
      if (max_payload == kDefaultMaxPayload) DecodeByType(f.type, f.payload);
    }
    FUZZ_CHECK(reencoded == in.substr(0, whole.frames_end), "frames do not re-encode to the input");
    FUZZ_CHECK(whole.at_boundary == split.at_boundary, "split feeding changed the boundary state");
  }

  for (uint16_t type : kAllTypes) DecodeByType(type, in);
  WalkPayload(in, in.substr(0, 16));
  return 0;
}
