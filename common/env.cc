#include "common/env.h"

#include <sys/stat.h>

#include <cerrno>

namespace cyrsync {

std::vector<Result<FileStat>> Env::StatInDir(const std::string& dir,
                                             std::span<const std::string> names) {
  std::vector<Result<FileStat>> out;
  out.reserve(names.size());
  for (const auto& n : names) out.push_back(Stat(dir + "/" + n));
  return out;
}

Result<FileStat> Env::StatBeneath(const std::string& root, std::string_view rel) {
  std::string cur = root;
  size_t start = 0;
  while (true) {
    size_t end = rel.find('/', start);
    if (end == std::string_view::npos) end = rel.size();
    cur = JoinPath(cur, rel.substr(start, end - start));
    ASSIGN_OR_RETURN(FileStat st, Stat(cur));
    if (end >= rel.size()) return st;
    if (st.IsSymlink()) return InvalidArgumentError("path through a symlink refused: " + cur);
    start = end + 1;
  }
}

Status Env::ScanDir(const std::string& path,
                    const std::function<void(std::string_view, EntryType)>& fn) {
  ASSIGN_OR_RETURN(auto entries, ListDir(path));
  for (const auto& e : entries) fn(e.name, e.type);
  return Status::Ok();
}

Status Env::ScanDirBeneath(const std::string& root, std::string_view rel,
                           const std::function<void(std::string_view, EntryType)>& fn) {
  ASSIGN_OR_RETURN(FileStat st, StatBeneath(root, rel));
  const std::string path = JoinPath(root, rel);
  if (st.IsSymlink()) return InvalidArgumentError("path through a symlink refused: " + path);
  if (!st.IsDir()) return PosixError("opendir " + path, ENOTDIR);
  return ScanDir(path, fn);
}

bool FileStat::IsDir() const { return S_ISDIR(mode); }
bool FileStat::IsRegular() const { return S_ISREG(mode); }
bool FileStat::IsSymlink() const { return S_ISLNK(mode); }

Result<std::string> ReadableFile::ReadAll() {
  // Read in place into a buffer of the file's size (+1 for the read that sees the end): no
  // doubling growth, so a 2 MB file costs 2 MB, not a 4 MB buffer plus the copy.
  std::string out;
  auto st = Stat();
  out.resize(st.ok() ? st->size + 1 : 1 << 16);
  size_t used = 0;
  while (true) {
    if (used == out.size()) out.resize(out.size() * 2);
    ASSIGN_OR_RETURN(size_t n, ReadAt(used, std::span<char>(out.data() + used, out.size() - used)));
    if (n == 0) break;
    used += n;
  }
  out.resize(used);
  return out;
}

Result<std::string> ReadFileToString(Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(auto f, env->OpenRead(path));
  return f->ReadAll();
}

Status MakeDirs(Env* env, const std::string& path, uint32_t mode, const Owner& owner) {
  if (path.empty() || path == "/") return Status::Ok();
  auto st = env->Stat(path);
  if (st.ok()) {
    if (!st->IsDir()) return FailedPreconditionError("not a directory: " + path);
    return Status::Ok();
  }
  if (st.error().code() != Code::kNotFound) return st.error();
  RETURN_IF_ERROR(MakeDirs(env, Dirname(path), mode, owner));
  RETURN_IF_ERROR(env->MakeDir(path, mode));
  if (owner.set) RETURN_IF_ERROR(env->Chown(path, owner.uid, owner.gid));
  return Status::Ok();
}

Status AtomicWriteFile(Env* env, const std::string& path, std::string_view data,
                       const AtomicWriteOptions& opts) {
  const std::string tmp = path + ".cyrsync-tmp";
  {
    ASSIGN_OR_RETURN(auto f, env->NewWritable(tmp, opts.mode));
    RETURN_IF_ERROR(f->Append(data));
    RETURN_IF_ERROR(f->Sync());
    RETURN_IF_ERROR(f->Close());
  }
  if (opts.owner.set) RETURN_IF_ERROR(env->Chown(tmp, opts.owner.uid, opts.owner.gid));
  if (opts.mtime_ns != 0) RETURN_IF_ERROR(env->SetMtime(tmp, opts.mtime_ns));
  RETURN_IF_ERROR(env->Rename(tmp, path));
  if (opts.sync_dir) RETURN_IF_ERROR(env->SyncDir(Dirname(path)));
  return Status::Ok();
}

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  std::string out(a);
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  if (out != "/") out.push_back('/');
  out.append(b);
  return out;
}

std::string Dirname(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  auto pos = path.rfind('/');
  if (pos == std::string_view::npos) return ".";
  if (pos == 0) return "/";
  return std::string(path.substr(0, pos));
}

std::string Basename(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  auto pos = path.rfind('/');
  if (pos == std::string_view::npos) return std::string(path);
  return std::string(path.substr(pos + 1));
}

}  // namespace cyrsync
