// The replica's manifest as the syncer holds it for one pass: what the replica installed, by
// path, and which folders it holds. At 10k folders that is 30k entries, looked up once or twice
// each, so the layout is flat: slots in fixed blocks, their strings in an arena, and an
// open-addressing table of slot numbers. The node-per-entry hash map it replaces cost about
// 240 bytes and three allocations per entry; this costs about 120 bytes and none.
// Thread-compatible: built by one thread, then only read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/messages.h"

namespace cyrsync::syncer {

class ReplicaView {
 public:
  // What the pass compares per entry.
  struct Entry {
    protocol::EntryKind kind = protocol::EntryKind::kFile;
    bool unsettled = false;
    uint32_t index_minor = 0;
    protocol::StatTuple source;
  };

  ReplicaView() = default;
  ReplicaView(ReplicaView&&) = default;
  ReplicaView& operator=(ReplicaView&&) = default;

  // A later entry for the same path replaces the earlier one.
  void Add(const protocol::ManifestEntryView& e);
  void Add(const protocol::ManifestEntry& e);

  // nullptr when the replica holds nothing at that path.
  const Entry* Find(const protocol::WirePath& p) const { return Find(p.root, p.rel); }
  const Entry* Find(std::string_view root, std::string_view rel) const;

  // Every entry, in arrival order: fn(root, rel, entry, owner).
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (uint32_t i = 0; i < size_; ++i) {
      const Slot& s = SlotAt(i);
      fn(s.Root(), s.Rel(), s.entry, s.Owner());
    }
  }

  size_t size() const { return size_; }
  // folder key -> owner, for the folders (kMeta entries) the replica holds.
  const std::unordered_map<std::string, std::string>& folder_owner() const { return folder_owner_; }

 private:
  struct Slot {
    uint64_t hash;
    const char* text;  // root, rel, owner, back to back in the arena
    uint32_t root_len, rel_len, owner_len;
    Entry entry;
    std::string_view Root() const { return {text, root_len}; }
    std::string_view Rel() const { return {text + root_len, rel_len}; }
    std::string_view Owner() const { return {text + root_len + rel_len, owner_len}; }
  };
  static constexpr uint32_t kBlockSlots = 1024;
  static constexpr size_t kArenaChunk = 64 * 1024;

  static uint64_t Hash(std::string_view root, std::string_view rel);
  const Slot& SlotAt(uint32_t i) const { return blocks_[i / kBlockSlots][i % kBlockSlots]; }
  Slot& SlotAt(uint32_t i) { return blocks_[i / kBlockSlots][i % kBlockSlots]; }
  const char* Store(const protocol::ManifestEntryView& e);
  int64_t FindSlot(uint64_t hash, std::string_view root, std::string_view rel) const;
  // Linear probing: puts slot number `slot` at the first free place from hash.
  static void Place(std::vector<uint32_t>& table, uint64_t hash, uint32_t slot);
  void Grow();

  std::vector<std::unique_ptr<Slot[]>> blocks_;
  uint32_t size_ = 0;
  std::vector<std::unique_ptr<char[]>> arena_;  // chunks of kArenaChunk bytes
  size_t arena_used_ = kArenaChunk;              // bytes used in arena_.back()
  std::vector<std::unique_ptr<char[]>> big_;     // strings longer than a quarter chunk
  std::vector<uint32_t> table_;      // slot number + 1; 0 is empty; size a power of two
  std::unordered_map<std::string, std::string> folder_owner_;
};

}  // namespace cyrsync::syncer
