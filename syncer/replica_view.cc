#include "syncer/replica_view.h"

#include <cstring>
#include <functional>

namespace cyrsync::syncer {

uint64_t ReplicaView::Hash(std::string_view root, std::string_view rel) {
  uint64_t h = std::hash<std::string_view>()(rel);
  return h ^ (std::hash<std::string_view>()(root) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

const char* ReplicaView::Store(const protocol::ManifestEntryView& e) {
  const size_t n = e.root.size() + e.rel.size() + e.owner.size();
  char* p;
  if (n > kArenaChunk / 4) {
    big_.emplace_back(new char[n]);  // a rare long path: its own allocation
    p = big_.back().get();
  } else {
    if (n > kArenaChunk - arena_used_) {
      arena_.emplace_back(new char[kArenaChunk]);
      arena_used_ = 0;
    }
    p = arena_.back().get() + arena_used_;
    arena_used_ += n;
  }
  std::memcpy(p, e.root.data(), e.root.size());
  std::memcpy(p + e.root.size(), e.rel.data(), e.rel.size());
  std::memcpy(p + e.root.size() + e.rel.size(), e.owner.data(), e.owner.size());
  return p;
}

int64_t ReplicaView::FindSlot(uint64_t hash, std::string_view root, std::string_view rel) const {
  if (table_.empty()) return -1;
  const size_t mask = table_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    uint32_t v = table_[i];
    if (v == 0) return -1;
    const Slot& s = SlotAt(v - 1);
    if (s.hash == hash && s.Rel() == rel && s.Root() == root) return v - 1;
  }
}

void ReplicaView::Place(std::vector<uint32_t>& table, uint64_t hash, uint32_t slot) {
  const size_t mask = table.size() - 1;
  size_t i = hash & mask;
  while (table[i] != 0) i = (i + 1) & mask;
  table[i] = slot + 1;
}

void ReplicaView::Grow() {
  std::vector<uint32_t> t(table_.empty() ? 1024 : table_.size() * 2, 0);
  for (uint32_t n = 0; n < size_; ++n) Place(t, SlotAt(n).hash, n);
  table_.swap(t);
}

void ReplicaView::Add(const protocol::ManifestEntryView& e) {
  if (e.kind == protocol::EntryKind::kMeta && !e.folder_key.empty()) {
    folder_owner_.emplace(std::string(e.folder_key), std::string(e.owner));
  }
  const uint64_t h = Hash(e.root, e.rel);
  Entry entry{e.kind, e.unsettled, e.index_minor, e.source};
  auto fill = [&](Slot& s) {
    s = Slot{h, Store(e), static_cast<uint32_t>(e.root.size()),
             static_cast<uint32_t>(e.rel.size()), static_cast<uint32_t>(e.owner.size()), entry};
  };
  if (int64_t at = FindSlot(h, e.root, e.rel); at >= 0) {
    fill(SlotAt(static_cast<uint32_t>(at)));  // the old strings stay in the arena, unused
    return;
  }
  if ((size_ + 1) * 2 > table_.size()) Grow();
  if (size_ % kBlockSlots == 0) blocks_.push_back(std::make_unique<Slot[]>(kBlockSlots));
  fill(SlotAt(size_));
  Place(table_, h, size_++);
}

void ReplicaView::Add(const protocol::ManifestEntry& e) { Add(protocol::ViewOf(e)); }

const ReplicaView::Entry* ReplicaView::Find(std::string_view root, std::string_view rel) const {
  int64_t at = FindSlot(Hash(root, rel), root, rel);
  return at < 0 ? nullptr : &SlotAt(static_cast<uint32_t>(at)).entry;
}

}  // namespace cyrsync::syncer
