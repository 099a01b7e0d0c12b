/* model_io: model.h5, the trained model with what is needed to use it.
 *
 * Layout (HDF5, readable with h5py / h5dump):
 *   /model                      attributes: format = "xentrain-model", format_version,
 *                               model_type, activation, head, layer_sizes (int64[L+1]),
 *                               classes, normalize, epoch, val_loss, val_accuracy,
 *                               xentrain_version, class_names (optional, string[K]),
 *                               label_values (optional, string[K]: the original label of
 *                               each class id, e.g. "1", "2", "5"; since xentrain 0.1.0 of
 *                               issue 26, same format_version: older files lack it),
 *                               train_split (optional: FILE.h5:/GROUP it was trained on)
 *   /model/layer<l>/W  float32 (sizes[l], sizes[l-1])   (out, in), as torch.nn.Linear
 *   /model/layer<l>/b  float32 (sizes[l])
 *   /model/normalization/shift, /mul  float32 (D): x' = (x - shift) * mul, when
 *                               normalize != none (eval and predict apply it)
 *   every float32 array carries an int64 attribute crc32: zlib's CRC-32 of its values as
 *   little-endian IEEE bytes, checked on load (files written before it have none and are
 *   read unchecked); loaded arrays must hold finite values only
 * Saving is atomic (temporary file, fsync, rename, directory fsync). Rank 0 only.
 */
#ifndef XT_MODEL_IO_H
#define XT_MODEL_IO_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "model.h"

#define MODEL_FORMAT_VERSION 1

typedef struct {
    ModelShape shape;
    float *params;            /* (n_params); borrowed by save, owned after load */
    Normalize normalize;
    float *shift, *mul;       /* (D) each or NULL (normalize == none) */
    char **class_names;       /* K names or NULL */
    size_t n_class_names;
    char **label_values;      /* K original label values (the data's label_values: what
                                 class id c stood for before convert mapped it) or NULL */
    size_t n_label_values;
    char **feature_names;     /* D names of the training file's features (its
                                 feature_names attribute; one-hot columns as "color=red"), or
                                 NULL; eval and predict refuse data whose names differ */
    size_t n_feature_names;
    int64_t epoch;            /* the epoch these parameters are from */
    double val_loss, val_accuracy;
    char train_split[XT_PATH_MAX + 260]; /* "" when unknown */
    bool has_ignore;          /* the run left rows with this label out (loss.ignore_index) */
    int64_t ignore_index;
} ModelFile;

/* Writes mf to path atomically. Local (rank 0). */
Status model_io_save(const char *path, const ModelFile *mf);
/* Reads and validates (format, version, type, shapes). Errors name the file and the
 * object at fault. Local. */
Status model_io_load(const char *path, ModelFile *mf);
/* How class c is shown to users: "5 (dog)", "dog", "5" or "c", from label_values and
 * class_names when the file has them. Local. */
void model_io_class_text(const ModelFile *mf, size_t c, char *buf, size_t len);
/* Only the epoch attribute of path's /model (what the run's closing line and plots
 * report: the file's own claim). Local. */
Status model_io_read_epoch(const char *path, int64_t *epoch);
/* Frees what model_io_load allocated; safe on a zeroed struct. */
void model_io_free(ModelFile *mf);

/* Writes the /model group and its contents into an open file (used by checkpoints). */
struct H5File;
/* A float32 array with its crc32 attribute (see above). Local. */
Status model_io_write_floats(struct H5File *f, const char *dset, int rank, const size_t *dims,
                             const float *data);
/* Reads a float32 array that must have exactly these dims, verifies its crc32 when it has
 * one and that every value is finite: XT_ERR_USAGE naming the file and dataset otherwise.
 * Local. */
Status model_io_read_floats(struct H5File *f, const char *dset, int rank, const size_t *dims,
                            float *out);
Status model_io_write_group(struct H5File *f, const char *group, const ModelFile *mf);
/* dst's group <- a copy of the model file path's /model (values, attributes and checksums
 * as they are: no copy of the parameters in memory), which must say it holds `epoch`:
 * XT_ERR_RUNTIME naming the file and both epochs otherwise. Local. */
Status model_io_copy_group(const char *path, int64_t epoch, struct H5File *dst,
                           const char *group);
Status model_io_read_group(struct H5File *f, const char *group, ModelFile *mf);

#endif
