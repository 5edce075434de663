// `accel train --plot FILE`: each epoch's loss and accuracy, training and held-out, side by side,
// drawn by gnuplot (Debian's gnuplot-nox, a program made for plots) into a PNG or an SVG.
#pragma once

#include <string>

#include "accel/train/model.h"

namespace accel::cli {

// Throws Error before any training when the plot could not be made: an extension other than
// .png or .svg, a folder that does not exist, or no gnuplot on PATH (naming the package).
void check_plot_target(const std::string& path);

// Draws history["loss"], ["accuracy"] and their "val_" twins (labelled `held_out`) into `path`,
// written beside it first and renamed, so a reader never sees half a file.
void plot_curves(const std::string& path, const train::History& history, const std::string& title,
                 const std::string& held_out);

}  // namespace accel::cli
