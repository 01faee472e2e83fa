#include "biud/text/SentencePiece.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/text/SpmShimApi.h"

namespace biud::text {

namespace {

struct Api {
  void* lib = nullptr;
  biud_spm_load_fn load;
  biud_spm_free_fn free;
  biud_spm_encode_fn encode;
  biud_spm_encode_pieces_fn encodePieces;
  biud_spm_encode_offsets_fn encodeOffsets;
  biud_spm_decode_fn decode;
  biud_spm_vocab_size_fn vocabSize;
  biud_spm_id_to_piece_fn idToPiece;
  biud_spm_piece_to_id_fn pieceToId;
  biud_spm_special_id_fn specialId;
  biud_spm_train_fn train;
};

template <class F>
F sym(void* lib, const char* name, const std::string& path) {
  void* p = ::dlsym(lib, name);
  BIUD_CHECK(p != nullptr, IoError, "SentencePiece shim `{}` lacks symbol {}: rebuild biud", path, name);
  return reinterpret_cast<F>(p);
}

const Api& api() {
  static Api a;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string path = SentencePiece::shimPath();
#ifdef BIUD_SPM_SHIM_DLMOPEN
    // Sanitizer builds: ASan aborts on RTLD_DEEPBIND. A link-map namespace of its own isolates
    // the shim, libsentencepiece and their protobuf (with their own libstdc++ and libc) from
    // libtorch just as well; the shim is built uninstrumented for it (src/CMakeLists.txt).
    a.lib = ::dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
#else
    // RTLD_DEEPBIND: the shim and libsentencepiece resolve their own protobuf symbols first,
    // never libtorch's. RTLD_LOCAL: nothing of theirs leaks into the global namespace.
    a.lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
    BIUD_CHECK(a.lib != nullptr, IoError,
               "cannot load the SentencePiece shim `{}`: {} (set BIUD_SPM_SHIM to its path, or rebuild biud)", path,
               ::dlerror());
    a.load = sym<biud_spm_load_fn>(a.lib, "biud_spm_load", path);
    a.free = sym<biud_spm_free_fn>(a.lib, "biud_spm_free", path);
    a.encode = sym<biud_spm_encode_fn>(a.lib, "biud_spm_encode", path);
    a.encodePieces = sym<biud_spm_encode_pieces_fn>(a.lib, "biud_spm_encode_pieces", path);
    a.encodeOffsets = sym<biud_spm_encode_offsets_fn>(a.lib, "biud_spm_encode_offsets", path);
    a.decode = sym<biud_spm_decode_fn>(a.lib, "biud_spm_decode", path);
    a.vocabSize = sym<biud_spm_vocab_size_fn>(a.lib, "biud_spm_vocab_size", path);
    a.idToPiece = sym<biud_spm_id_to_piece_fn>(a.lib, "biud_spm_id_to_piece", path);
    a.pieceToId = sym<biud_spm_piece_to_id_fn>(a.lib, "biud_spm_piece_to_id", path);
    a.specialId = sym<biud_spm_special_id_fn>(a.lib, "biud_spm_special_id", path);
    a.train = sym<biud_spm_train_fn>(a.lib, "biud_spm_train", path);
  });
  return a;
}

std::string readString(const std::function<int(char*, int)>& call) {
  std::string buf(256, '\0');
  int need = call(buf.data(), static_cast<int>(buf.size()));
  BIUD_CHECK(need >= 0, ValueError, "SentencePiece call failed");
  if (need > static_cast<int>(buf.size())) {
    buf.assign(static_cast<size_t>(need), '\0');
    need = call(buf.data(), need);
  }
  buf.resize(static_cast<size_t>(need - 1));
  return buf;
}

}  // namespace

struct SentencePiece::Handle {
  biud_spm* p = nullptr;
};

std::string SentencePiece::shimPath() {
  if (const char* env = std::getenv("BIUD_SPM_SHIM"); env && *env) return env;
  const auto sibling = fs::executableDir() / ".." / "lib" / "libbiud_spm_shim.so";
  std::error_code ec;
  if (std::filesystem::exists(sibling, ec)) return sibling.lexically_normal().string();
  return BIUD_SPM_SHIM_BUILD_PATH;
}

SentencePiece::SentencePiece(const std::string& modelPath) : h_(std::make_unique<Handle>()) {
  fs::requireFile(modelPath, "SentencePiece model");
  char err[512] = {0};
  h_->p = api().load(modelPath.c_str(), err, sizeof err);
  BIUD_CHECK(h_->p != nullptr, IoError, "cannot load SentencePiece model `{}`: {}", modelPath, err);
}

SentencePiece::~SentencePiece() {
  if (h_ && h_->p) api().free(h_->p);
}

std::vector<int> SentencePiece::encode(const std::string& text) const {
  std::vector<int> ids(text.size() + 16);
  int n = api().encode(h_->p, text.c_str(), ids.data(), static_cast<int>(ids.size()));
  BIUD_CHECK(n >= 0, ValueError, "SentencePiece failed to encode a text of {} bytes", text.size());
  if (n > static_cast<int>(ids.size())) {
    ids.resize(static_cast<size_t>(n));
    n = api().encode(h_->p, text.c_str(), ids.data(), n);
  }
  ids.resize(static_cast<size_t>(n));
  return ids;
}

std::vector<int> SentencePiece::encode(const std::string& text, std::vector<std::pair<int, int>>& offsets) const {
  std::size_t cap = text.size() + 16;
  std::vector<int> ids(cap), b(cap), e(cap);
  int n = api().encodeOffsets(h_->p, text.c_str(), ids.data(), b.data(), e.data(), static_cast<int>(cap));
  BIUD_CHECK(n >= 0, ValueError, "SentencePiece failed to encode a text of {} bytes", text.size());
  if (n > static_cast<int>(cap)) {
    cap = static_cast<std::size_t>(n);
    ids.resize(cap), b.resize(cap), e.resize(cap);
    n = api().encodeOffsets(h_->p, text.c_str(), ids.data(), b.data(), e.data(), n);
  }
  ids.resize(static_cast<std::size_t>(n));
  offsets.clear();
  for (int i = 0; i < n; ++i) offsets.emplace_back(b[static_cast<std::size_t>(i)], e[static_cast<std::size_t>(i)]);
  return ids;
}

std::vector<std::string> SentencePiece::encodePieces(const std::string& text) const {
  const std::string joined =
      readString([&](char* out, int cap) { return api().encodePieces(h_->p, text.c_str(), out, cap); });
  std::vector<std::string> pieces;
  if (joined.empty()) return pieces;
  size_t start = 0;
  for (size_t i = 0; i <= joined.size(); ++i) {
    if (i == joined.size() || joined[i] == '\n') {
      pieces.push_back(joined.substr(start, i - start));
      start = i + 1;
    }
  }
  return pieces;
}

std::string SentencePiece::decode(const std::vector<int>& ids) const {
  return readString(
      [&](char* out, int cap) { return api().decode(h_->p, ids.data(), static_cast<int>(ids.size()), out, cap); });
}

int SentencePiece::vocabSize() const { return api().vocabSize(h_->p); }
std::string SentencePiece::idToPiece(int id) const {
  BIUD_CHECK(id >= 0 && id < vocabSize(), ValueError, "SentencePiece id {} out of range [0, {})", id, vocabSize());
  return readString([&](char* out, int cap) { return api().idToPiece(h_->p, id, out, cap); });
}
int SentencePiece::pieceToId(const std::string& piece) const { return api().pieceToId(h_->p, piece.c_str()); }
int SentencePiece::unkId() const { return api().specialId(h_->p, 0); }
int SentencePiece::bosId() const { return api().specialId(h_->p, 1); }
int SentencePiece::eosId() const { return api().specialId(h_->p, 2); }
int SentencePiece::padId() const { return api().specialId(h_->p, 3); }

void SentencePiece::train(const std::string& args) {
  char err[1024] = {0};
  const int rc = api().train(args.c_str(), err, sizeof err);
  BIUD_CHECK(rc == 0, IoError, "SentencePiece training failed: {}", err);
}

}  // namespace biud::text
