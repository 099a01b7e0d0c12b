/* The trainer end to end, in process, at several rank counts:
 * full-batch softmax regression from zero init must follow an independent
 * double-precision gradient descent, epoch by epoch, whatever P is (N is not
 * divisible by 3 or 4, so uneven shards must weigh every row equally). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "model_io.h"
#include "rng.h"
#include "train.h"
#include "xt_test.h"

static Comm *g_comm;

#define N 203
#define D 6
#define K 3
#define EPOCHS 20
#define LR 0.5

static float X[N * D];
static int32_t Y[N];

static void make_data(void)
{
    Rng r;
    rng_seed(&r, 2024);
    for (size_t i = 0; i < N; i++) {
        Y[i] = (int32_t)rng_below(&r, K);
        for (size_t j = 0; j < D; j++)
            X[i * D + j] = (float)(rng_normal(&r) + (j % K == (size_t)Y[i] ? 1.5 : 0.0));
    }
}

/* Plain double-precision batch gradient descent on the mean cross-entropy. */
static void reference_gd(double loss[EPOCHS], double W[K * D], double b[K])
{
    memset(W, 0, K * D * sizeof *W);
    memset(b, 0, K * sizeof *b);
    for (int e = 0; e < EPOCHS; e++) {
        double gW[K * D] = {0}, gb[K] = {0}, L = 0;
        for (size_t i = 0; i < N; i++) {
            double z[K], m = -INFINITY, s = 0;
            for (size_t k = 0; k < K; k++) {
                z[k] = b[k];
                for (size_t j = 0; j < D; j++) z[k] += W[k * D + j] * X[i * D + j];
                m = fmax(m, z[k]);
            }
            for (size_t k = 0; k < K; k++) s += exp(z[k] - m);
            L += m + log(s) - z[Y[i]];
            for (size_t k = 0; k < K; k++) {
                double g = exp(z[k] - m) / s - (k == (size_t)Y[i]);
                gb[k] += g;
                for (size_t j = 0; j < D; j++) gW[k * D + j] += g * X[i * D + j];
            }
        }
        loss[e] = L / N;
        for (size_t k = 0; k < K; k++) {
            b[k] -= LR * gb[k] / N;
            for (size_t j = 0; j < D; j++) W[k * D + j] -= LR * gW[k * D + j] / N;
        }
    }
}

static void test_train_full_batch_matches_double_gd(void **state)
{
    (void)state;
    char dir[512], data[600], cfg[600], run[600], csv[700], model[700];
    xt_test_tmpdir(dir, sizeof dir, g_comm);
    snprintf(data, sizeof data, "%s/d.h5", dir);
    snprintf(cfg, sizeof cfg, "%s/c.ini", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    make_data();
    if (comm_rank(g_comm) == 0) {
        H5File *f = NULL;
        size_t dx[2] = {N, D}, dy[1] = {N};
        assert_int_equal(h5io_create(data, &f), XT_OK);
        assert_int_equal(h5io_create_group(f, "/train"), XT_OK);
        assert_int_equal(h5io_write(f, "/train/X", H5IO_F32, 2, dx, X, 0), XT_OK);
        assert_int_equal(h5io_write(f, "/train/y", H5IO_I32, 1, dy, Y, 0), XT_OK);
        assert_int_equal(h5io_close(&f), XT_OK);
        FILE *c = fopen(cfg, "w");
        assert_non_null(c);
        fprintf(c, "[data]\ntrain = %s:/train\nnormalize = none\nvirtual_shards = 8\n"
                   "[model]\ntype = softmax\ninit = zeros\n"
                   "[optim]\nlr = %g\nmomentum = 0\n[train]\nepochs = %d\nbatch_size = 0\n"
                   "check_every = 1\nprogress = false\n[early_stopping]\nenabled = false\n"
                   "[run]\ndir = %s\n",
                data, LR, EPOCHS, run);
        fclose(c);
    }
    comm_barrier(g_comm);
    char *argv[] = {"train", cfg, NULL};
    int code = train_main(g_comm, 2, argv);
    assert_all_ranks(g_comm, code == 0);

    double ref[EPOCHS], W[K * D], b[K];
    reference_gd(ref, W, b);
    if (comm_rank(g_comm) == 0) {
        snprintf(csv, sizeof csv, "%s/metrics.csv", run);
        FILE *f = fopen(csv, "r");
        assert_non_null(f);
        char line[1024];
        assert_non_null(fgets(line, sizeof line, f)); /* header */
        double worst = 0;
        int rows = 0;
        while (fgets(line, sizeof line, f)) {
            int e;
            double l;
            assert_int_equal(sscanf(line, "%d,%lf", &e, &l), 2);
            assert_int_equal(e, rows + 1);
            worst = fmax(worst, fabs(l - ref[rows]) / fabs(ref[rows]));
            rows++;
        }
        fclose(f);
        assert_int_equal(rows, EPOCHS);
        printf("P = %d: train loss vs double GD over %d epochs: max rel err %.2e (loss %.4f -> %.4f)\n",
               comm_size(g_comm), EPOCHS, worst, ref[0], ref[EPOCHS - 1]);
        assert_true(worst < 1e-5);
        /* the final parameters, from model.h5 */
        snprintf(model, sizeof model, "%s/model.h5", run);
        ModelFile mf;
        assert_int_equal(model_io_load(model, &mf), XT_OK);
        double wmax = 0, werr = 0;
        for (size_t k = 0; k < K; k++) {
            for (size_t j = 0; j < D; j++) {
                wmax = fmax(wmax, fabs(W[k * D + j]));
                werr = fmax(werr, fabs(mf.params[mf.shape.w_off[0] + k * D + j] - W[k * D + j]));
            }
            werr = fmax(werr, fabs(mf.params[mf.shape.b_off[0] + k] - b[k]));
        }
        printf("P = %d: final parameters vs double GD: max abs err %.2e (max |w| %.3f)\n",
               comm_size(g_comm), werr, wmax);
        assert_true(werr / wmax < 1e-5);
        assert_int_equal(mf.epoch, EPOCHS);
        model_io_free(&mf);
    }
    xt_test_rmtree(dir, g_comm);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_full_batch_matches_double_gd),
    };
    return xt_test_run_mpi(&argc, &argv, "train_mpi", tests, sizeof tests / sizeof *tests, &g_comm);
}
