/* libFuzzer harness: the text readers of `xentrain convert` (CSV, LIBSVM, IDX), through
 * convert_main exactly as the command line calls it. One harness source, three
 * binaries: FUZZ_FORMAT is 0 (csv), 1 (libsvm) or 2 (idx).
 *
 * The first input byte picks options (header detection, delimiter, index base, IDX
 * role); the rest is the file. LIBSVM always gets --features 4096: the dense matrix is
 * rows x D, and an inferred D from a huge index would only measure the allocator (the
 * corpus covers that path: tests/bad_inputs, libsvm_huge_index). */
#include "fuzz_common.h"

#include "convert.h"
#include "log.h"

#ifndef FUZZ_FORMAT
#define FUZZ_FORMAT 0
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char in[256], out[256], other[256];
    if (!in[0]) {
        fuzz_path(in, sizeof in, "text", ".in");
        fuzz_path(out, sizeof out, "text", ".h5");
        fuzz_path(other, sizeof other, "text", ".idx");
        log_set_quiet(true);
    }
    if (size < 1) return 0;
    uint8_t mode = data[0];
    if (fuzz_write(in, data + 1, size - 1) != 0) return 0;
    char *argv[16];
    int argc = 0;
    argv[argc++] = "convert";
#if FUZZ_FORMAT == 0
    argv[argc++] = "csv";
    argv[argc++] = "--input";
    argv[argc++] = in;
    if (mode & 1) argv[argc++] = (mode & 2) ? "--header" : "--no-header";
    if (mode & 4) {
        argv[argc++] = "--delimiter";
        argv[argc++] = (mode & 8) ? "tab" : ";";
    }
    if (mode & 16) {
        argv[argc++] = "--label-column";
        argv[argc++] = (mode & 32) ? "0" : "label";
    }
#elif FUZZ_FORMAT == 1
    argv[argc++] = "libsvm";
    argv[argc++] = "--input";
    argv[argc++] = in;
    argv[argc++] = "--features";
    argv[argc++] = "4096";
    if (mode & 1) argv[argc++] = (mode & 2) ? "--zero-based" : "--one-based";
#else
    /* the input is the images file (mode even) or the labels file (mode odd); the other
     * is a small valid file: 3 labels, or 3 images of 2 x 2 */
    static const uint8_t labels3[] = {0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2};
    static const uint8_t images3[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2,
                                      1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    if (mode & 1) (void)fuzz_write(other, images3, sizeof images3);
    else (void)fuzz_write(other, labels3, sizeof labels3);
    argv[argc++] = "idx";
    argv[argc++] = "--images";
    argv[argc++] = (mode & 1) ? other : in;
    argv[argc++] = "--labels";
    argv[argc++] = (mode & 1) ? in : other;
#endif
    argv[argc++] = "--val-fraction";
    argv[argc++] = "0";
    argv[argc++] = "--out";
    argv[argc++] = out;
    argv[argc] = NULL;
    (void)convert_main(argc, argv);
    unlink(out);
    return 0;
}
