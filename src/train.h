/* train: `xentrain train CONFIG.ini`: the product's main job. The only module that
 * knows all the others; it wires the data flow of DESIGN.md §1:
 *
 *   config -> data (this rank's shard) -> model -> loss -> gradients
 *          -> ONE allreduce (gradient sums | loss sum | weight total | non-finite flag)
 *          -> optimiser (identical on every rank) -> rank 0 validation
 *          -> early-stopping decision broadcast -> every rank continues or stops.
 *
 * Collective over comm: every rank calls it with the same arguments.
 */
#ifndef XT_TRAIN_H
#define XT_TRAIN_H

#include "comm.h"

/* argv[0] is "train". Returns the process exit code (error.h). */
int train_main(const Comm *comm, int argc, char **argv);

#endif
