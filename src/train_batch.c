/* train_batch: the one micro-batch of every training method (trainer.h). The rows already in
 * tr->batch (dense or CSR: the row source's form) go
 *
 *   forward -> loss (dL/dz; its totals added to the reduction) -> backward into the
 *   reduction's partial buffer for the micro-batch (overlap hooks start buckets inside it)
 *
 * SGD's step (train_sgd.c) and a full-batch solver's F-and-gradient pass (train_solver.c)
 * both call it; how the rows were fetched (a step's gather, a pass's read) is theirs.
 */
#include "trainer.h"

void trainer_batch_gradient(Trainer *tr, size_t m, size_t part, bool last, EpochRun *er)
{
    Model *md = &tr->model;
    const size_t KO = model_outputs(&md->shape);
    double t1 = comm_wtime();
    const float *z = model_forward_input(md, tr->batch.in, m);
    double t2 = comm_wtime();
    LossTargets tg = {.y = tr->batch.y, .t = tr->batch.t};
    LossTotals lt = {0};
    StepSums s = {0};
    loss_compute(tr->loss_kind, tr->dz, NULL, &lt, z, tg, m, KO, &tr->lopt);
    loss_count_correct(tr->loss_kind, z, tg, m, KO, tr->lopt.ignore_index, &s.correct,
                       &s.decisions);
    s.loss = lt.sum;
    s.weight = lt.weight;
    reduce_add(tr->red, part, &s);
    ModelInput in = tr->batch.in;
    reduce_note_input(tr->red, part, &in); /* where backward puts W_1's gradient */
    double t3 = comm_wtime();
    bool acc;
    float *grads = reduce_partial(tr->red, part, &acc);
    model_backward_input(md, in, tr->dz, m, acc, grads, reduce_hooks(tr->red, last));
    double t4 = comm_wtime();
    reduce_partial_done(tr->red, part);
    er->forward += t2 - t1;
    er->loss += t3 - t2;
    er->backward += t4 - t3;
    er->reduce += comm_wtime() - t4;
}
