// SafetensorsFile: mmap a safetensors file and validate its header against the data section.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fedlora/io/safetensors.h"
#include "nlohmann/json.hpp"

namespace fedlora::io {
namespace {

// Real headers are a few hundred bytes per tensor; anything past this is garbage or an attack.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

using Json = nlohmann::json;

// One header entry before the views are built.
struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

std::string TensorWhat(const std::string& name, const std::string& what) {
  return absl::StrCat("tensor '", name, "' ", what);
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// A JSON value that is a non-negative integer fitting in int64 (for shapes and offsets).
bool AsCount(const Json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  uint64_t u = v.get<uint64_t>();
  if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  *out = u;
  return true;
}

absl::StatusOr<Entry> ParseEntry(const std::string& path, const std::string& name, const Json& v) {
  if (!v.is_object()) {
    return Invalid(path, TensorWhat(name, absl::StrCat("is ", v.dump(),
                                                       ", expected an object "
                                                       "with dtype, shape and data_offsets")));
  }
  Entry e{name, DType::kF32, {}, 0, 0};
  auto dtype_it = v.find("dtype");
  if (dtype_it == v.end() || !dtype_it->is_string()) {
    return Invalid(path, TensorWhat(name, "has no string field \"dtype\" (e.g. \"F32\")"));
  }
  absl::StatusOr<DType> dtype = ParseDType(dtype_it->get<std::string>());
  if (!dtype.ok()) return Invalid(path, TensorWhat(name, std::string(dtype.status().message())));
  e.dtype = *dtype;

  auto shape_it = v.find("shape");
  if (shape_it == v.end() || !shape_it->is_array()) {
    return Invalid(
        path, TensorWhat(name, absl::StrCat("has shape ",
                                            shape_it == v.end() ? "<missing>" : shape_it->dump(),
                                            ", expected a list of non-negative "
                                            "integers")));
  }
  for (const Json& d : *shape_it) {
    uint64_t dim;
    if (!AsCount(d, &dim)) {
      return Invalid(path,
                     TensorWhat(name, absl::StrCat("has shape ", shape_it->dump(), ": dimension ",
                                                   d.dump(), " is not a non-negative integer")));
    }
    e.shape.push_back(static_cast<int64_t>(dim));
  }

  auto off_it = v.find("data_offsets");
  uint64_t begin = 0, end = 0;
  if (off_it == v.end() || !off_it->is_array() || off_it->size() != 2 ||
      !AsCount((*off_it)[0], &begin) || !AsCount((*off_it)[1], &end)) {
    return Invalid(path,
                   TensorWhat(name, absl::StrCat("has data_offsets ",
                                                 off_it == v.end() ? "<missing>" : off_it->dump(),
                                                 ", expected [begin, end] with two "
                                                 "non-negative integers")));
  }
  if (begin > end) {
    return Invalid(path, TensorWhat(name, absl::StrCat("has data_offsets [", begin, ", ", end,
                                                       "] with begin > end")));
  }
  e.begin = begin;
  e.end = end;

  // numel x dtype size, guarding against overflow (a zero dimension makes it 0 regardless).
  uint64_t bytes = DTypeSize(e.dtype);
  bool has_zero = std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end();
  if (has_zero) bytes = 0;
  for (size_t i = 0; i < e.shape.size() && !has_zero; ++i) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(e.shape[i]), &bytes)) {
      return Invalid(path, TensorWhat(name, absl::StrCat("has shape ", ShapeString(e.shape),
                                                         " whose byte size overflows 64 bits "
                                                         "(hint: corrupt header)")));
    }
  }
  if (bytes != end - begin) {
    return Invalid(
        path,
        TensorWhat(name, absl::StrCat("has shape ", ShapeString(e.shape), " ", DTypeName(e.dtype),
                                      " = ", bytes, " bytes but data_offsets span ", end - begin,
                                      " bytes (hint: file truncated or written by a "
                                      "buggy exporter)")));
  }
  return e;
}

absl::Status ParseMetadata(const std::string& path, const Json& v,
                           std::map<std::string, std::string>* out) {
  if (!v.is_object()) {
    return Invalid(path, absl::StrCat("__metadata__ is ", v.dump(),
                                      ", expected an object of string -> string"));
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_string()) {
      return Invalid(path, absl::StrCat("__metadata__ key '", it.key(), "' has value ", it->dump(),
                                        ", expected a string"));
    }
    (*out)[it.key()] = it->get<std::string>();
  }
  return absl::OkStatus();
}

// Offsets sorted by position must tile [0, data_size) exactly.
absl::Status CheckTiling(const std::string& path, std::vector<const Entry*> order,
                         uint64_t data_size) {
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    if (e->begin < pos) {
      return Invalid(path, absl::StrCat("tensors '", prev->name, "' [", prev->begin, ", ",
                                        prev->end, ") and '", e->name, "' [", e->begin, ", ",
                                        e->end, ") overlap (hint: corrupt header)"));
    }
    if (e->begin > pos) {
      std::string after = prev == nullptr
                              ? "the start of the data section"
                              : absl::StrCat("tensor '", prev->name, "' (ends at ", prev->end, ")");
      return Invalid(path, absl::StrCat("gap of ", e->begin - pos, " bytes between ", after,
                                        " and tensor '", e->name, "' (begins at ", e->begin,
                                        "); data_offsets must be contiguous from 0"));
    }
    pos = e->end;
    prev = e;
  }
  if (pos < data_size) {
    return Invalid(path, absl::StrCat("data section is ", data_size,
                                      " bytes but data_offsets "
                                      "end at ",
                                      pos, " (", data_size - pos,
                                      " trailing bytes; hint: corrupt or concatenated file)"));
  }
  if (pos > data_size) {
    return Invalid(path, absl::StrCat("data section is ", data_size,
                                      " bytes but data_offsets "
                                      "need ",
                                      pos, " (tensor '", prev->name, "' ends at ", prev->end,
                                      "; hint: file truncated)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string msg = absl::StrCat(path, ": cannot open: ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(msg, " (hint: check the path)"));
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InternalError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Invalid(path, "not a regular file");
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Invalid(path, absl::StrCat("file is ", size,
                                      " bytes, shorter than the 8-byte header "
                                      "length (hint: truncated or not a safetensors file)"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    return absl::InternalError(
        absl::StrCat(path, ": mmap of ", size, " bytes failed: ", std::strerror(map_err)));
  }
  // From here on the object owns the mapping, so every error path unmaps it.
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = map;
  file->map_size_ = size;
  const uint8_t* bytes = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes) {
    return Invalid(path,
                   absl::StrCat("header length ", header_len, " exceeds the ", kMaxHeaderBytes,
                                "-byte limit (hint: not a safetensors "
                                "file, or corrupt first 8 bytes)"));
  }
  if (header_len > size - 8) {
    return Invalid(path, absl::StrCat("header length ", header_len, " runs past the end of the ",
                                      size, "-byte file (hint: file truncated)"));
  }
  const char* header = reinterpret_cast<const char*>(bytes + 8);
  std::set<std::string> seen;
  std::string duplicate;
  // Catch repeated tensor names, which nlohmann::json would silently collapse.
  Json::parser_callback_t on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !seen.insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  Json root;
  try {
    root = Json::parse(header, header + header_len, on_event);
  } catch (const Json::exception& e) {
    return Invalid(path, absl::StrCat("header is not valid JSON: ", e.what(),
                                      " (hint: corrupt file or not safetensors)"));
  }
  if (!duplicate.empty()) {
    return Invalid(path, TensorWhat(duplicate, "appears more than once in the header"));
  }
  if (!root.is_object()) {
    return Invalid(path, absl::StrCat("header is a JSON ", root.type_name(),
                                      ", expected an object mapping tensor names to entries"));
  }

  std::vector<Entry> entries;
  entries.reserve(root.size());
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      absl::Status s = ParseMetadata(path, *it, &file->metadata_);
      if (!s.ok()) return s;
      continue;
    }
    absl::StatusOr<Entry> entry = ParseEntry(path, it.key(), *it);
    if (!entry.ok()) return entry.status();
    entries.push_back(*std::move(entry));
  }
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  uint64_t data_size = size - 8 - header_len;
  absl::Status tiled = CheckTiling(path, order, data_size);
  if (!tiled.ok()) return tiled;

  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
  const uint8_t* data = bytes + 8 + header_len;
  for (Entry& e : entries) {
    file->by_name_[e.name] = file->tensors_.size();
    TensorView view;
    view.name = std::move(e.name);
    view.dtype = e.dtype;
    view.shape = std::move(e.shape);
    view.data = data + e.begin;
    view.nbytes = static_cast<size_t>(e.end - e.begin);
    file->tensors_.push_back(std::move(view));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace fedlora::io
