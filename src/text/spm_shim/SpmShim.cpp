// The only translation unit linked against libsentencepiece (see include/biud/text/SpmShimApi.h).
// Built as libbiud_spm_shim.so with hidden visibility; only the extern "C" functions are exported.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <string>
#include <vector>

#include "biud/text/SpmShimApi.h"

#define BIUD_SPM_EXPORT extern "C" __attribute__((visibility("default")))

// Not in the public headers, but exported by libsentencepiece (0.1.9x).
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}

struct biud_spm {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {
void setErr(char* err, size_t len, const std::string& msg) {
  if (!err || len == 0) return;
  std::strncpy(err, msg.c_str(), len - 1);
  err[len - 1] = '\0';
}
int copyOut(const std::string& s, char* out, int cap) {
  const int need = static_cast<int>(s.size()) + 1;
  if (out && cap >= need) std::memcpy(out, s.c_str(), static_cast<size_t>(need));
  return need;
}
}  // namespace

BIUD_SPM_EXPORT biud_spm* biud_spm_load(const char* model_path, char* err, size_t err_len) {
  sentencepiece::logging::SetMinLogLevel(3);  // see biud_spm_train
  auto* h = new biud_spm;
  const auto st = h->sp.Load(model_path);
  if (!st.ok()) {
    setErr(err, err_len, st.ToString());
    delete h;
    return nullptr;
  }
  return h;
}

BIUD_SPM_EXPORT void biud_spm_free(biud_spm* h) { delete h; }

BIUD_SPM_EXPORT int biud_spm_encode(biud_spm* h, const char* text, int* ids, int cap) {
  std::vector<int> v;
  if (!h->sp.Encode(text, &v).ok()) return -1;
  const int n = static_cast<int>(v.size());
  if (ids && cap >= n) std::memcpy(ids, v.data(), v.size() * sizeof(int));
  return n;
}

BIUD_SPM_EXPORT int biud_spm_encode_offsets(biud_spm* h, const char* text, int* ids, int* begins, int* ends, int cap) {
  const auto spt = h->sp.EncodeAsImmutableProto(text);
  const int n = static_cast<int>(spt.pieces_size());
  if (ids && begins && ends && cap >= n) {
    for (int i = 0; i < n; ++i) {
      const auto p = spt.pieces(i);
      ids[i] = static_cast<int>(p.id());
      begins[i] = static_cast<int>(p.begin());
      ends[i] = static_cast<int>(p.end());
    }
  }
  return n;
}

BIUD_SPM_EXPORT int biud_spm_encode_pieces(biud_spm* h, const char* text, char* out, int cap) {
  std::vector<std::string> v;
  if (!h->sp.Encode(text, &v).ok()) return -1;
  std::string joined;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) joined += '\n';
    joined += v[i];
  }
  return copyOut(joined, out, cap);
}

BIUD_SPM_EXPORT int biud_spm_decode(biud_spm* h, const int* ids, int n, char* out, int cap) {
  std::string s;
  if (!h->sp.Decode(std::vector<int>(ids, ids + n), &s).ok()) return -1;
  return copyOut(s, out, cap);
}

BIUD_SPM_EXPORT int biud_spm_vocab_size(biud_spm* h) { return h->sp.GetPieceSize(); }

BIUD_SPM_EXPORT int biud_spm_id_to_piece(biud_spm* h, int id, char* out, int cap) {
  if (id < 0 || id >= h->sp.GetPieceSize()) return -1;
  return copyOut(h->sp.IdToPiece(id), out, cap);
}

BIUD_SPM_EXPORT int biud_spm_piece_to_id(biud_spm* h, const char* piece) { return h->sp.PieceToId(piece); }

BIUD_SPM_EXPORT int biud_spm_special_id(biud_spm* h, int which) {
  switch (which) {
    case 0:
      return h->sp.unk_id();
    case 1:
      return h->sp.bos_id();
    case 2:
      return h->sp.eos_id();
    case 3:
      return h->sp.pad_id();
    default:
      return -1;
  }
}

BIUD_SPM_EXPORT int biud_spm_train(const char* args, char* err, size_t err_len) {
  // SentencePiece logs to std::cerr. Loaded with RTLD_DEEPBIND it binds libstdc++'s own cerr,
  // which is never constructed when the executable holds a copy-relocated std::cerr/std::cout
  // (any program using iostreams, e.g. gtest): the first log line crashes. Trainer logging starts
  // before the --minloglevel flag is parsed, so silence it here; errors come back as Status.
  sentencepiece::logging::SetMinLogLevel(3);
  // --random_seed is a flag of the spm_train program, not of TrainerSpec: take it out and set the
  // library's generator, so that sampling during training is reproducible.
  std::string rest;
  {
    const std::string all(args);
    std::size_t pos = 0;
    while (pos < all.size()) {
      std::size_t end = all.find(' ', pos);
      if (end == std::string::npos) end = all.size();
      const std::string tok = all.substr(pos, end - pos);
      if (tok.rfind("--random_seed=", 0) == 0) {
        sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned>(std::stoul(tok.substr(14))));
      } else if (!tok.empty()) {
        if (!rest.empty()) rest += ' ';
        rest += tok;
      }
      pos = end + 1;
    }
  }
  const auto st = sentencepiece::SentencePieceTrainer::Train(rest);
  if (!st.ok()) {
    setErr(err, err_len, st.ToString());
    return -1;
  }
  return 0;
}
