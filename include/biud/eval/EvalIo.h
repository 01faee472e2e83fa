#pragma once
/// \file EvalIo.h
/// Reading evaluation inputs with errors that name the file, the id and the column:
/// prediction/label CSVs aligned by id, report texts, similarity matrices and embeddings
/// (CSV or .npy), reader-study tables.
#include <string>
#include <vector>

#include "biud/eval/CsvTable.h"
#include "biud/eval/Retrieval.h"

namespace biud::eval {

/// Predictions and labels of the same cases, rows in the label file's order.
struct LabeledPredictions {
  std::vector<std::string> ids;
  std::vector<std::string> findings;        ///< the label file's columns (minus id)
  std::vector<std::vector<double>> probs;   ///< [case][finding], finite
  std::vector<std::vector<double>> labels;  ///< [case][finding], 0/1 or NaN (unknown)
};

/// Read `labelsPath` (id + 0/1/empty per finding) and `predPath` (id + probability per finding)
/// and align them by id. DataError when: the id sets differ (names the first missing id and the
/// file lacking it), a label column is missing from the predictions, a probability is empty/NaN/inf,
/// a label is not 0, 1 or empty. Prediction columns without labels are ignored (logged).
LabeledPredictions loadLabeledPredictions(const std::string& predPath, const std::string& labelsPath);

/// Only the predictions of `predPath` for the ids and findings of `like` (e.g. a second model).
std::vector<std::vector<double>> loadPredictionsLike(const std::string& predPath, const LabeledPredictions& like);

/// Texts keyed by id: a CSV with `id` and `text` columns (an id may repeat: several references),
/// or a plain text file with one report per line (ids are the line numbers, from 1).
struct Texts {
  std::vector<std::string> ids;                 ///< first-appearance order
  std::vector<std::vector<std::string>> texts;  ///< per id, one or more
};
Texts readTexts(const std::string& path);

/// A numeric matrix from a CSV (optionally with a leading `id` column; a header row is required)
/// or a 2-D .npy array (float32/float64/int, C order). `ids` receives the id column or indices.
Matrix readMatrix(const std::string& path, std::vector<std::string>* ids = nullptr,
                  std::vector<std::string>* header = nullptr);

/// A reader study table: columns reader, sensitivity, specificity and optionally finding.
struct ReaderRow {
  std::string reader, finding;
  double sensitivity = 0, specificity = 0;
};
std::vector<ReaderRow> readReaders(const std::string& path);

}  // namespace biud::eval
