/* early_stop: the early-stopping state machine. See early_stop.h for the rules.
 *
 * Choices the header leaves open, made here:
 *   - before any epoch is monitored, best is NaN and best_epoch 0;
 *   - precedence when several rules fire at one epoch: DIVERGED, then MAX_EPOCHS
 *     (the last epoch ran in full, so the stop is not "early"), then STOP_EARLY;
 *   - a diverged epoch changes no state (best, bad_epochs stay as they were).
 */
#include "early_stop.h"

#include <math.h>

#include "error.h"

void early_stop_init(EarlyStop *es, const Config *cfg)
{
    XT_ASSERT(es != NULL && cfg != NULL);
    es->enabled = cfg->early_stopping.enabled;
    es->has_val = cfg->data.val[0] != '\0';
    es->monitor = cfg->early_stopping.monitor;
    if (es->monitor == MONITOR_AUTO) es->monitor = es->has_val ? MONITOR_VAL_LOSS : MONITOR_TRAIN_LOSS;
    es->mode = cfg->early_stopping.mode;
    if (es->mode == MODE_AUTO) es->mode = es->monitor == MONITOR_VAL_ACCURACY ? MODE_MAX : MODE_MIN;
    es->patience = cfg->early_stopping.patience;
    es->start_epoch = cfg->early_stopping.start_epoch;
    es->max_epochs = cfg->train.epochs;
    es->min_delta = cfg->early_stopping.min_delta;
    es->best = NAN;
    es->best_epoch = 0;
    es->bad_epochs = 0;
}

/* Whether value beats the best by more than min_delta, in the resolved mode. */
static bool improves(const EarlyStop *es, double value)
{
    if (es->best_epoch == 0) return true; /* the first monitored epoch */
    if (es->mode == MODE_MAX) return value > es->best + es->min_delta;
    return value < es->best - es->min_delta;
}

EsDecision early_stop_update(EarlyStop *es, int64_t epoch, double train_loss, double val_loss,
                             double val_accuracy)
{
    XT_ASSERT(es != NULL);
    XT_ASSERT(epoch >= 1 && epoch <= INT32_MAX);
    XT_ASSERT(es->mode == MODE_MIN || es->mode == MODE_MAX);
    double value = es->monitor == MONITOR_VAL_ACCURACY ? val_accuracy
                   : es->monitor == MONITOR_TRAIN_LOSS ? train_loss
                                                       : val_loss;
    EsDecision d = {.action = ES_CONTINUE, .epoch = (int32_t)epoch};

    if (!isfinite(train_loss) || !isfinite(value)) {
        d.action = ES_STOP_DIVERGED;
    } else if (epoch >= es->start_epoch) {
        if (improves(es, value)) {
            es->best = value;
            es->best_epoch = epoch;
            es->bad_epochs = 0;
            d.improved = 1;
        } else {
            es->bad_epochs++;
        }
        if (epoch >= es->max_epochs)
            d.action = ES_STOP_MAX_EPOCHS;
        else if (es->enabled && es->bad_epochs >= es->patience)
            d.action = ES_STOP_EARLY;
    } else if (epoch >= es->max_epochs) {
        d.action = ES_STOP_MAX_EPOCHS;
    }
    d.best_epoch = (int32_t)es->best_epoch;
    d.best_value = es->best;
    return d;
}

void early_stop_state(EarlyStop *es, StateList *out)
{
    state_init(out, "early_stopping");
    state_add_f64(out, "best", &es->best);
    state_add_i64(out, "best_epoch", &es->best_epoch);
    state_add_i64(out, "bad_epochs", &es->bad_epochs);
}

const char *early_stop_action_name(EsAction a)
{
    switch (a) {
    case ES_CONTINUE: return "continue";
    case ES_STOP_EARLY: return "early_stop";
    case ES_STOP_MAX_EPOCHS: return "max_epochs";
    case ES_STOP_DIVERGED: return "diverged";
    case ES_STOP_ERROR: return "error";
    case ES_STOP_SIGNAL: return "signal";
    }
    return "unknown";
}
