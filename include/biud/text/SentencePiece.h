#pragma once
/// \file SentencePiece.h
/// SentencePiece through the dlopen shim (never linked next to libtorch; see SpmShimApi.h).
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace biud::text {

class SentencePiece {
 public:
  /// Load a trained .model file. IoError naming the file when it cannot.
  explicit SentencePiece(const std::string& modelPath);
  ~SentencePiece();
  SentencePiece(const SentencePiece&) = delete;
  SentencePiece& operator=(const SentencePiece&) = delete;

  std::vector<int> encode(const std::string& text) const;
  /// Ids with the byte range [first, second) of each piece in `text` (empty for pieces that
  /// only carry the word-boundary marker).
  std::vector<int> encode(const std::string& text, std::vector<std::pair<int, int>>& offsets) const;
  std::vector<std::string> encodePieces(const std::string& text) const;
  std::string decode(const std::vector<int>& ids) const;
  int vocabSize() const;
  std::string idToPiece(int id) const;
  int pieceToId(const std::string& piece) const;
  int unkId() const;
  int bosId() const;
  int eosId() const;
  int padId() const;

  /// Train a model with SentencePieceTrainer flags, e.g.
  /// "--input=corpus.txt --model_prefix=out/spm --vocab_size=800 --model_type=unigram".
  static void train(const std::string& args);
  /// Path of the shim that will be (or was) loaded.
  static std::string shimPath();

 private:
  struct Handle;
  std::unique_ptr<Handle> h_;
};

}  // namespace biud::text
