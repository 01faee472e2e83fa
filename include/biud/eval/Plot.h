#pragma once
/// \file Plot.h
/// A small raster plotting module for evaluation figures, with no plotting library: an RGB
/// canvas with anti-aliased lines and discs, polygon fill, a built-in 5x8 bitmap font (ASCII
/// 32-126, drawn at integer scales, also rotated for y-axis labels), axes with "nice" ticks,
/// legends and titles. PNGs are written through biud/core/Png.h (atomic).
#include <cstdint>
#include <string>
#include <vector>

#include "biud/eval/Classification.h"

namespace biud::eval::plot {

struct Color {
  std::uint8_t r = 0, g = 0, b = 0;
};
/// A qualitative palette (colour-blind friendly, Okabe-Ito); index wraps.
Color palette(std::size_t i);

class Canvas {
 public:
  Canvas(int width, int height, Color background = {255, 255, 255});
  int width() const { return w_; }
  int height() const { return h_; }
  /// Blend `c` over pixel (x, y) with coverage `alpha` in [0,1]; outside pixels are ignored.
  void blend(int x, int y, Color c, double alpha = 1.0);
  Color at(int x, int y) const;
  /// Anti-aliased line of width `width` pixels (round caps). `dash` > 0 draws dashes that long.
  void line(double x0, double y0, double x1, double y1, Color c, double width = 1.0, double dash = 0);
  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, Color c, double width = 1.0,
                double dash = 0);
  void fillRect(int x, int y, int w, int h, Color c, double alpha = 1.0);
  void rect(int x, int y, int w, int h, Color c);
  /// Anti-aliased filled disc.
  void disc(double cx, double cy, double radius, Color c);
  /// Marker centred at (cx, cy): 'o' disc, 's' square, '^' triangle, 'x' cross, 'd' diamond, '*' star (plus + cross).
  void marker(double cx, double cy, char kind, double size, Color c);
  /// Fill a simple polygon (even-odd rule) with coverage `alpha`.
  void fillPolygon(const std::vector<double>& xs, const std::vector<double>& ys, Color c, double alpha = 1.0);
  /// Text with its top-left corner at (x, y); `scale` multiplies the 5x8 glyph cell (6 px advance).
  void text(int x, int y, const std::string& s, Color c, int scale = 1);
  /// Text rotated 90 degrees counter-clockwise (reads bottom to top), top-left of its box at (x, y).
  void textVertical(int x, int y, const std::string& s, Color c, int scale = 1);
  static int textWidth(const std::string& s, int scale = 1);
  static int textHeight(int scale = 1);
  /// Write the canvas as an 8-bit RGB PNG (atomic).
  void save(const std::string& path) const;
  const std::vector<std::uint8_t>& pixels() const { return px_; }

 private:
  int w_, h_;
  std::vector<std::uint8_t> px_;
};

/// "Nice" tick positions (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi].
std::vector<double> niceTicks(double lo, double hi, int target = 5);
/// Shortest readable label of a tick value (no trailing zeros).
std::string tickLabel(double v, double step);

struct Series {
  std::string label;
  std::vector<double> x, y;
  Color color;
  double width = 2.0;
  bool line = true;
  char marker = 0;  ///< 0 = none; see Canvas::marker
  double markerSize = 5.0;
  double dash = 0;
};

/// One panel: data limits, labels and series, drawn into a rectangle of a canvas.
struct Axes {
  double xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  bool legend = true;
  bool legendBottomRight = true;  ///< else top-left
  bool grid = true;
  bool diagonal = false;  ///< dashed chance line y = x
  /// Draw into the canvas rectangle (x, y, w, h) including labels and ticks.
  void draw(Canvas& c, int x, int y, int w, int h, int scale = 1) const;
};

// --- Evaluation figures -------------------------------------------------------------------

/// One model's ROC curves, one per finding (aligned with `findings`).
struct ModelRocs {
  std::string name;
  std::vector<RocCurve> curves;
  std::vector<double> aucs;
};
/// ROC curves per finding in a grid of panels, several models overlaid in each (Figure 5 style).
void rocGrid(const std::string& path, const std::vector<std::string>& findings, const std::vector<ModelRocs>& models,
             int columns = 4);

/// Violin plots (Gaussian KDE, Scott's bandwidth) of predicted probabilities of positives
/// (right half, orange) and negatives (left half, blue) per finding, with medians marked.
void violins(const std::string& path, const std::vector<std::string>& findings,
             const std::vector<std::vector<double>>& positives, const std::vector<std::vector<double>>& negatives,
             const std::string& title = "Predicted probabilities");

/// A reader's operating point and the model's sensitivity at that reader's specificity.
struct ReaderPoint {
  std::string reader;
  double sensitivity = 0, specificity = 0;
  double modelSensitivity = 0;  ///< model at the reader's specificity (NaN if not reached)
};
/// Reader-study figure: model ROC, readers as markers, the model's matched operating points.
void readerStudy(const std::string& path, const std::string& title, const RocCurve& model, double auc,
                 const std::vector<ReaderPoint>& readers);

}  // namespace biud::eval::plot
