/* state: a module's resumable state as a list of named arrays and scalars.
 *
 * Optimisers and early stopping describe what they must carry across a restart with a
 * StateList (optim_state, early_stop_state); checkpoints save and restore whatever is
 * listed, by name (checkpoint.h), so a new optimiser with its own state needs no change
 * in checkpoint.c. A list borrows the module's own buffers: restoring writes straight
 * into them. `kind` names the owner ("sgd", "early_stopping"): a checkpoint written by
 * another kind is refused with both names. Local; no allocation.
 */
#ifndef XT_STATE_H
#define XT_STATE_H

#include <stddef.h>
#include <stdint.h>

#define STATE_MAX_ITEMS 12 /* a full-batch solver lists 9 scalars (solver.h) */

typedef struct {
    const char *name;
    float *data;   /* (n) borrowed */
    size_t n;
} StateArray;

typedef enum { STATE_F64, STATE_I64 } StateScalarType;

typedef struct {
    const char *name;
    StateScalarType type;
    void *value;   /* double * or int64_t *, borrowed */
} StateScalar;

typedef struct {
    const char *kind;
    StateArray arrays[STATE_MAX_ITEMS];
    size_t n_arrays;
    StateScalar scalars[STATE_MAX_ITEMS];
    size_t n_scalars;
} StateList;

void state_init(StateList *l, const char *kind);
void state_add_array(StateList *l, const char *name, float *data, size_t n);
void state_add_f64(StateList *l, const char *name, double *v);
void state_add_i64(StateList *l, const char *name, int64_t *v);

#endif
