/* predict: `xentrain predict`: class probabilities and predicted classes of a model for
 * every row of a split, written to an HDF5 file.
 */
#ifndef XT_PREDICT_H
#define XT_PREDICT_H

#include "comm.h"

/* argv[0] is "predict". Collective over comm: every rank predicts its share of the rows
 * (whole blocks of --batch-size rows), rank 0 gathers and writes. Returns an exit code. */
int predict_main(const Comm *comm, int argc, char **argv);

#endif
