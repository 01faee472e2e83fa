#pragma once
/// \file DicomWorker.h
/// DICOM is read in a child process (`biud-dicom-worker`, next to the running executable).
///
/// GDCM, the DICOM library under ITK, stops the whole process on some damaged files: its own
/// `assert()`s abort, and data-element lengths from the file are allocated as given (fuzzing
/// findings F5 and F6, docs/reliability-fuzz.md). biud cannot repair GDCM, so every read that
/// may reach it (a DICOM folder, a file whose extension is not one of the non-DICOM formats,
/// the list of series in a folder) runs in the worker: a crash there becomes an IoError naming
/// the file or folder, an allocation beyond the worker's memory limit a bad_alloc there, and the
/// calling process (biud-preprocess, a loader thread) goes on.
///
/// `BIUD_DICOM_ISOLATION=0` reads in-process (faster start, no protection);
/// `BIUD_DICOM_WORKER=/path/to/biud-dicom-worker` names the worker; `BIUD_DICOM_TIMEOUT`
/// (seconds, default 900) bounds one read. Without a worker next to the executable the read is
/// in-process, as before.
namespace biud::image {

/// main() of `biud-dicom-worker`: `biud-dicom-worker OP PATH SERIES OUT` with OP one of
/// volume, info, image2d, series. Writes OUT (or OUT.err with the error) and returns the exit code.
int dicomWorkerMain(int argc, char** argv);

}  // namespace biud::image
