# Every dependency is found, never downloaded. scripts/setup.sh installs them.

# --- Python reference environment (LibTorch comes from its torch wheel) --------------------
if(NOT BIUD_PYTHON)
  if(DEFINED ENV{BIUD_VENV} AND EXISTS "$ENV{BIUD_VENV}/bin/python")
    set(BIUD_PYTHON "$ENV{BIUD_VENV}/bin/python" CACHE FILEPATH "" FORCE)
  elseif(EXISTS "$ENV{HOME}/.cache/biud/venv/bin/python")
    set(BIUD_PYTHON "$ENV{HOME}/.cache/biud/venv/bin/python" CACHE FILEPATH "" FORCE)
  else()
    find_program(_biud_py python3)
    set(BIUD_PYTHON "${_biud_py}" CACHE FILEPATH "" FORCE)
  endif()
endif()

execute_process(COMMAND ${BIUD_PYTHON} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
  OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _torch_rc ERROR_QUIET)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "biud: cannot import torch with ${BIUD_PYTHON}. Run scripts/setup.sh, or pass -DBIUD_PYTHON=/path/to/venv/bin/python")
endif()
list(APPEND CMAKE_PREFIX_PATH ${_torch_prefix})
execute_process(COMMAND ${BIUD_PYTHON} -c "import torch, os; print(os.path.dirname(torch.__file__))"
  OUTPUT_VARIABLE BIUD_TORCH_DIR OUTPUT_STRIP_TRAILING_WHITESPACE)

# CUDA: the toolkit must exist before find_package(Torch) can configure torch_cuda.
include(CheckLanguage)
set(BIUD_WITH_CUDA OFF)
if(NOT BIUD_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  if(NOT CUDAToolkit_FOUND AND BIUD_CUDA STREQUAL "ON")
    message(FATAL_ERROR "biud: BIUD_CUDA=ON but no CUDA toolkit was found (nvcc on PATH or CUDAToolkit_ROOT)")
  endif()
endif()
if(CUDAToolkit_FOUND AND NOT TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  # No GPU here to detect: target Hopper (the GPU machines we test on). Override with
  # -DTORCH_CUDA_ARCH_LIST="8.0;9.0".
  set(TORCH_CUDA_ARCH_LIST "9.0" CACHE STRING "CUDA architectures for LibTorch's CMake")
endif()
find_package(Torch REQUIRED)
if(TARGET torch_cuda AND CUDAToolkit_FOUND AND NOT BIUD_CUDA STREQUAL "OFF")
  set(BIUD_WITH_CUDA ON)
elseif(BIUD_CUDA STREQUAL "ON")
  message(FATAL_ERROR "biud: BIUD_CUDA=ON but LibTorch at ${_torch_prefix} has no CUDA (torch_cuda missing)")
endif()
if(BIUD_WITH_CUDA)
  set(BIUD_WITH_CUDA_INT 1)
else()
  set(BIUD_WITH_CUDA_INT 0)
endif()

# LibTorch as one interface target; its flags (-D_GLIBCXX_USE_CXX11_ABI) travel with it.
add_library(biud_torch INTERFACE)
target_link_libraries(biud_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(biud_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
target_compile_options(biud_torch INTERFACE ${TORCH_CXX_FLAGS})
# The wheel ships fmt 12 headers in its include folder, which shadow Debian's fmt 9 in every
# translation unit that sees LibTorch. There fmt is used header-only (fmt's versioned inline
# namespaces keep the two apart); only std::string crosses into spdlog/libfmt (core/Log.cpp).
target_compile_definitions(biud_torch INTERFACE FMT_HEADER_ONLY)
# libtorch.so exports its own (statically linked) copy of std::filesystem; when it comes first
# in the search order, std::filesystem::remove_all & co. resolve to it and crash. Listing
# libstdc++ before every other library (link options precede the objects) makes the system
# copy win.
target_link_options(biud_torch INTERFACE "LINKER:--push-state,--no-as-needed" "-lstdc++" "LINKER:--pop-state")
# c10d backends: Gloo always (CPU), NCCL with CUDA. The wheel ships no gloo headers, Debian's
# libgloo-dev supplies them (tests/dist proves the ABI with a 2-rank allreduce).
find_path(BIUD_GLOO_INCLUDE gloo/algorithm.h PATHS ${BIUD_TORCH_DIR}/include /usr/include NO_DEFAULT_PATH)
if(NOT BIUD_GLOO_INCLUDE)
  message(FATAL_ERROR "biud: gloo headers not found; install libgloo-dev (scripts/setup.sh does)")
endif()
target_include_directories(biud_torch SYSTEM INTERFACE ${BIUD_GLOO_INCLUDE})
target_compile_definitions(biud_torch INTERFACE USE_C10D_GLOO USE_DISTRIBUTED)
if(BIUD_WITH_CUDA)
  target_compile_definitions(biud_torch INTERFACE USE_C10D_NCCL BIUD_WITH_CUDA=1)
  target_link_libraries(biud_torch INTERFACE CUDA::cudart)
  find_path(BIUD_NCCL_INCLUDE nccl.h PATHS ${BIUD_TORCH_DIR}/../nvidia/nccl/include ${CUDAToolkit_INCLUDE_DIRS} /usr/include)
  if(BIUD_NCCL_INCLUDE)
    target_include_directories(biud_torch SYSTEM INTERFACE ${BIUD_NCCL_INCLUDE})
  endif()
endif()

# --- Debian packages ----------------------------------------------------------------------
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
find_package(ITK REQUIRED COMPONENTS
  ITKCommon ITKIOImageBase ITKIONIFTI ITKIOGDCM ITKIOMeta ITKIONRRD ITKIOPNG ITKIOJPEG
  ITKImageGrid ITKImageIntensity ITKTransform ITKGDCM)
if(BIUD_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(BIUD_BUILD_BENCH)
  find_package(benchmark QUIET)
  if(NOT benchmark_FOUND)
    message(STATUS "biud: Google Benchmark not found, biud-bench is not built")
    set(BIUD_BUILD_BENCH OFF)
  endif()
endif()

# SentencePiece is linked only into the dlopen shim (src/text/spm_shim), never next to libtorch.
find_library(BIUD_SPM_LIB sentencepiece)
find_library(BIUD_SPM_TRAIN_LIB sentencepiece_train)
find_path(BIUD_SPM_INCLUDE sentencepiece_processor.h)
if(NOT BIUD_SPM_LIB OR NOT BIUD_SPM_TRAIN_LIB OR NOT BIUD_SPM_INCLUDE)
  message(FATAL_ERROR "biud: SentencePiece not found; install libsentencepiece-dev (scripts/setup.sh does)")
endif()
