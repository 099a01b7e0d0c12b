/* export_common: what the two writers (export_onnx.c, export_safetensors.c) share,
 * private to `xentrain export`: a growable text buffer with JSON string escaping, the
 * model's description as key/value metadata (the same keys in both formats), float32 to
 * little-endian bytes, and the atomic file writer. Local.
 */
#ifndef XT_EXPORT_COMMON_H
#define XT_EXPORT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "log.h"
#include "model_io.h"

/* A growing NUL-terminated string. Zero-initialise; a failed allocation sets oom and
 * later appends do nothing (check oom once at the end). */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} ExportText;

void export_text_printf(ExportText *t, const char *fmt, ...) XT_PRINTF(2, 3);
/* Appends s as a JSON string literal: quoted, with '"', '\\' and control characters
 * escaped (RFC 8259); other bytes are copied (s must be valid UTF-8). */
void export_text_json(ExportText *t, const char *s);
void export_text_free(ExportText *t);

/* The model's description, in this order: xentrain_version, model_type, activation,
 * head, layer_sizes (JSON list), classes (K; 2 for logistic), class_names (JSON list of
 * strings, when the model has them), normalize, epoch, val_loss, val_accuracy,
 * train_split (when known), and with with_normalization (safetensors: ONNX holds them
 * as graph initializers) normalization_shift and normalization_mul (JSON lists, each
 * float printed with 9 significant digits: exact for float32). Values are owned. */
#define EXPORT_META_MAX 16
typedef struct {
    const char *key[EXPORT_META_MAX];
    char *value[EXPORT_META_MAX];
    size_t n;
} ExportMeta;

/* XT_ERR_RUNTIME (with a message) when out of memory. */
Status export_meta_init(ExportMeta *m, const ModelFile *mf, bool with_normalization);
void export_meta_free(ExportMeta *m);

/* dst (4 n bytes) = src (n floats) as IEEE 754 binary32 little-endian, on any host. */
void export_f32le(uint8_t *dst, const float *src, size_t n);

/* What the writers get: the model, the file it came from and the output path. */
typedef struct {
    const ModelFile *mf;
    const char *model;
    const char *out;
} ExportJob;

/* Writes job->out atomically: fill(f, job) writes the whole content to f, open on a
 * temporary file in out's directory; then fsync, rename, directory fsync. On any
 * failure (fill's status, a write error) the temporary file is removed. */
typedef Status (*ExportFill)(FILE *f, const ExportJob *job);
Status export_write_atomic(const ExportJob *job, ExportFill fill);

/* The two formats' fill functions. */
Status export_onnx_fill(FILE *f, const ExportJob *job);
Status export_safetensors_fill(FILE *f, const ExportJob *job);

#endif
