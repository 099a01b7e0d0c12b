/* xentrain: command dispatch. Thin on purpose: every subcommand lives in its module. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "config.h"
#include "convert.h"
#include "error.h"
#include "evaluate.h"
#include "export.h"
#include "gen.h"
#include "h5io.h"
#include "linalg.h"
#include "predict.h"
#include "log.h"
#include "sighold.h"
#include "train.h"

static void usage(FILE *f)
{
    fprintf(f,
            "xentrain %s: data-parallel cross-entropy training over MPI\n"
            "\n"
            "usage:\n"
            "  mpirun -np P xentrain train CONFIG.ini [--set section.key=value]...\n"
            "  xentrain eval    --model M.h5 --data F.h5:/test [--json OUT.json | --json -]\n"
            "  xentrain predict --model M.h5 --data F.h5:/test --out P.h5|P.csv|-\n"
            "  xentrain export  --model M.h5 --format onnx|safetensors --out FILE\n"
            "  xentrain convert {idx|csv|libsvm|h5} ... --out F.h5\n"
            "  xentrain gen     {blobs|xor|spirals|multilabel|sparse|sparse-multilabel} ...\n"
            "                   --out F.h5\n"
            "  xentrain --help | --version | --help-config[=md]\n"
            "\n"
            "Run `xentrain SUBCOMMAND --help` for its options.\n"
            "Exit codes: 0 done, 1 runtime failure, 2 usage/config/input error,\n"
            "            3 diverged (NaN/Inf), 75 checkpointed on a signal (requeue).\n",
            XT_VERSION);
}

/* The version, and the libraries it was built with and runs with. */
static void print_version(void)
{
    char mpi[256], build[128], hdf5[128], blas[512];
    comm_library_version(mpi, sizeof mpi);
    comm_build_info(build, sizeof build);
    h5io_describe(hdf5, sizeof hdf5);
    linalg_describe(blas, sizeof blas);
    printf("xentrain %s\n  MPI:  %s; built for %s\n  HDF5: %s\n  BLAS: %s\n", XT_VERSION, mpi,
           build, hdf5, blas);
}

/* Runs a serial subcommand on rank 0 and shares its exit code with every rank. */
/* Rank 0 writes its exit code to $XT_EXIT_STATUS_FILE when that is set: scripts/xt-mpirun
 * and the sbatch scripts read it because MPICH 4.0's mpiexec (Debian 12) can report 0 when
 * several ranks exit with a non-zero code at once (pmodels/mpich#7057). Best effort. */
static void write_exit_status(const Comm *comm, int code)
{
    const char *path = getenv("XT_EXIT_STATUS_FILE");
    if (!path || !*path || comm_rank(comm) != 0) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "%d\n", code);
    fclose(f);
}

static int run_on_rank0(Comm *comm, int (*fn)(int, char **), int argc, char **argv)
{
    int code = 0;
    if (comm_rank(comm) == 0) code = fn(argc, argv);
    comm_bcast(comm, &code, sizeof code, 0);
    return code;
}

int main(int argc, char **argv)
{
    /* First: a SIGTERM/SIGINT/SIGUSR1 during MPI_Init must not end a training rank with
     * the default action (sighold.h). */
    if (argc >= 2 && !strcmp(argv[1], "train")) sighold_begin();
    if (argc < 2) {
        usage(stderr);
        return XT_ERR_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        print_version();
        return 0;
    }
    if (!strcmp(cmd, "--help-config") || !strcmp(cmd, "--help-config=text")) {
        config_print_reference("text");
        return 0;
    }
    if (!strcmp(cmd, "--help-config=md")) {
        config_print_reference("md");
        return 0;
    }

    int (*serial)(int, char **) = NULL;
    int (*parallel)(const Comm *, int, char **) = NULL;
    if (!strcmp(cmd, "convert")) serial = convert_main;
    else if (!strcmp(cmd, "gen")) serial = gen_main;
    else if (!strcmp(cmd, "export")) serial = export_main;
    else if (!strcmp(cmd, "train")) parallel = train_main;
    else if (!strcmp(cmd, "eval")) parallel = evaluate_main;
    else if (!strcmp(cmd, "predict")) parallel = predict_main;
    if (!serial && !parallel) {
        fprintf(stderr, "xentrain: error: unknown %s '%s' (try: train, eval, predict, export, "
                        "convert, gen, --help)\n", cmd[0] == '-' ? "option" : "subcommand", cmd);
        return XT_ERR_USAGE;
    }

    Comm *comm = NULL;
    h5io_init(); /* before MPI_Init: see h5io.h (a full disk must not crash MPI_Finalize) */
    if (comm_open(&argc, &argv, &comm) != XT_OK) return XT_ERR_RUNTIME;
    int code = serial ? run_on_rank0(comm, serial, argc - 1, argv + 1)
                      : parallel(comm, argc - 1, argv + 1);
    write_exit_status(comm, code);
    h5io_shutdown();
    comm_close(&comm);
    return code;
}
