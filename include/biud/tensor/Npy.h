#pragma once
/// \file Npy.h
/// Reading NumPy .npy arrays (format 1.0/2.0/3.0, C order, little-endian or byte-sized dtypes:
/// f2 f4 f8 i1 i2 i4 i8 u1 b1) into CPU tensors.
#include <string>

#include <torch/types.h>

namespace biud::tensor {

/// The header is parsed as numpy.load does (magic; version 1.0/2.0/3.0; header <= 10000 bytes; a
/// dict literal with exactly descr, fortran_order, shape; shape a tuple of non-negative integers,
/// element and byte counts overflow-checked), and the data must fill the rest of the file exactly
/// (bool bytes 0/1). IoError naming the file, in one line, for anything else, and for a
/// Fortran-order array, a big-endian or an unsupported dtype.
torch::Tensor readNpy(const std::string& path);
/// Parse .npy bytes already in memory (`name` is used in messages).
torch::Tensor parseNpy(const std::string& bytes, const std::string& name);

}  // namespace biud::tensor
