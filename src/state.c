#include "state.h"

#include "error.h"

void state_init(StateList *l, const char *kind) { *l = (StateList){.kind = kind}; }

void state_add_array(StateList *l, const char *name, float *data, size_t n)
{
    XT_ASSERT(l->n_arrays < STATE_MAX_ITEMS);
    l->arrays[l->n_arrays++] = (StateArray){.name = name, .data = data, .n = n};
}

static void add_scalar(StateList *l, const char *name, StateScalarType type, void *v)
{
    XT_ASSERT(l->n_scalars < STATE_MAX_ITEMS);
    l->scalars[l->n_scalars++] = (StateScalar){.name = name, .type = type, .value = v};
}

void state_add_f64(StateList *l, const char *name, double *v) { add_scalar(l, name, STATE_F64, v); }
void state_add_i64(StateList *l, const char *name, int64_t *v) { add_scalar(l, name, STATE_I64, v); }
