// Internal helper of the volume readers: reads DICOM in its own process so that a damaged file
// that crashes GDCM cannot take the caller with it. Not meant to be run by hand except to see
// GDCM's own message on a file (include/biud/image/DicomWorker.h).
#include "biud/image/DicomWorker.h"

int main(int argc, char** argv) { return biud::image::dicomWorkerMain(argc, argv); }
