/* libFuzzer harness: the HDF5 loaders, on mutations of small valid files. FUZZ_KIND 0:
 * a data split (dataset_probe, then dataset_load of every row); 1: a model file
 * (model_io_load) and the same bytes as a checkpoint (checkpoint_load). Serial: comm is
 * NULL, so HDF5 uses its POSIX driver and MPI is never initialised.
 *
 * dataset_load is called only when N x (D + K) <= 2^22 values: a header that claims a
 * large but plausible shape would otherwise make every run allocate gigabytes, which
 * measures the allocator, not the reader (the corpus covers those claims:
 * data_dims_overflow, data_dims_beyond_memory). */
#include "fuzz_common.h"

#include "checkpoint.h"
#include "dataset.h"
#include "log.h"
#include "model_io.h"

#ifndef FUZZ_KIND
#define FUZZ_KIND 0
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[256];
    if (!path[0]) {
        fuzz_path(path, sizeof path, "h5", ".h5");
        log_set_quiet(true);
    }
    if (fuzz_write(path, data, size) != 0) return 0;
#if FUZZ_KIND == 0
    static const char *const groups[2] = {":/train", ":/val"};
    for (int g = 0; g < 2; g++) {
        char spec[300];
        snprintf(spec, sizeof spec, "%s%s", path, groups[g]);
        DatasetInfo info;
        if (dataset_probe(spec, NULL, true, &info) != XT_OK) continue;
        double values = (double)info.n * (double)(info.d + info.k_dense + 1);
        if (values > (double)(1 << 22)) continue;
        Dataset ds;
        if (dataset_load(&ds, &info, 0, info.n, 3, NULL) == XT_OK) {
            if (info.n > 1) {
                Dataset part;
                if (dataset_load(&part, &info, 1, info.n, 0, NULL) == XT_OK) dataset_free(&part);
            }
            dataset_free(&ds);
        }
    }
#else
    ModelFile mf;
    if (model_io_load(path, &mf) == XT_OK) model_io_free(&mf);
    Checkpoint ck;
    if (checkpoint_load(path, &ck) == XT_OK) checkpoint_free(&ck);
#endif
    return 0;
}
