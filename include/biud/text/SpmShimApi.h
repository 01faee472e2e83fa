#pragma once
/// \file SpmShimApi.h
/// C API of libbiud_spm_shim.so. libsentencepiece carries its own protobuf-lite, which crashes
/// at static initialisation next to libtorch's protobuf; the shim is the only thing linked to
/// it and is loaded with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) so its symbols stay
/// private. Only plain C types cross this boundary.
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct biud_spm biud_spm;

/// Load a .model file; NULL on failure with a message in err.
typedef biud_spm* (*biud_spm_load_fn)(const char* model_path, char* err, size_t err_len);
typedef void (*biud_spm_free_fn)(biud_spm*);
/// Encode UTF-8 text to ids. Returns the number of ids; if > cap, nothing useful was written and
/// the call should be repeated with a larger buffer. -1 on error.
typedef int (*biud_spm_encode_fn)(biud_spm*, const char* text, int* ids, int cap);
/// Encode to ids with the byte range [begin, end) of each piece in `text`. Returns the number of
/// pieces; if > cap, nothing useful was written (call again with larger buffers). -1 on error.
typedef int (*biud_spm_encode_offsets_fn)(biud_spm*, const char* text, int* ids, int* begins, int* ends, int cap);
/// Encode to pieces, joined by '\n' into out. Returns bytes needed (incl. NUL).
typedef int (*biud_spm_encode_pieces_fn)(biud_spm*, const char* text, char* out, int cap);
/// Decode ids to UTF-8. Returns bytes needed (incl. NUL); -1 on error.
typedef int (*biud_spm_decode_fn)(biud_spm*, const int* ids, int n, char* out, int cap);
typedef int (*biud_spm_vocab_size_fn)(biud_spm*);
/// Piece of an id. Returns bytes needed (incl. NUL).
typedef int (*biud_spm_id_to_piece_fn)(biud_spm*, int id, char* out, int cap);
typedef int (*biud_spm_piece_to_id_fn)(biud_spm*, const char* piece);
/// which: 0 unk, 1 bos, 2 eos, 3 pad. -1 when the model has none.
typedef int (*biud_spm_special_id_fn)(biud_spm*, int which);
/// Train with SentencePieceTrainer flags ("--input=... --model_prefix=... --vocab_size=...").
/// 0 on success, else -1 with a message in err.
typedef int (*biud_spm_train_fn)(const char* args, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif
