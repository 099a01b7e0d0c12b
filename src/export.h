/* export: `xentrain export --model M.h5 --format onnx|safetensors --out FILE`: a trained
 * model (model_io.h) in formats that other tools read (docs/export.md).
 *
 *   onnx         an ONNX model (opset EXPORT_ONNX_OPSET, IR version EXPORT_ONNX_IR_VERSION)
 *                that takes the raw features "features" float32 (N, D), applies the stored
 *                normalisation as graph nodes (Sub, Mul: the same float operations as
 *                predict), the layers (Gemm, transB = 1: W is (out, in)) and the head, and
 *                returns "probabilities" (N, K) and "logits" (N, outputs); K = 2 for
 *                logistic regression, as `xentrain predict` writes. Class names and the
 *                model's description are metadata_props. Written with protobuf-c from
 *                the onnx.proto generated at build time.
 *   safetensors  the weights under torch.nn.Sequential names ("0.weight" (out, in),
 *                "0.bias", "2.weight", ... with an activation between Linear layers),
 *                float32 little-endian; the description, the normalisation and the class
 *                names in "__metadata__" (strings only; lists as JSON text).
 *
 * Not done here: training, evaluation, any other format, models over 2 GiB as ONNX (that
 * needs external data) or normalisations whose safetensors header exceeds what readers
 * accept (EXPORT_SAFETENSORS_MAX_HEADER): both are refused with a message.
 * Invariants: the output is written to a temporary name in its directory, fsync'ed and
 * renamed (fsutil_commit): a failed export leaves no file and never damages an existing
 * one. The model is validated before anything is written. Serial (rank 0). Local.
 */
#ifndef XT_EXPORT_H
#define XT_EXPORT_H

#include "error.h"
#include "model_io.h"

#define EXPORT_ONNX_OPSET 13
#define EXPORT_ONNX_IR_VERSION 7
/* The largest JSON header the reference safetensors reader accepts (100 MB). */
#define EXPORT_SAFETENSORS_MAX_HEADER ((size_t)100000000)

typedef enum { EXPORT_ONNX, EXPORT_SAFETENSORS } ExportFormat;

/* argv[0] is "export". Returns a process exit code (0, 1 I/O, 2 bad input or options)
 * and prints its own messages. */
int export_main(int argc, char **argv);

/* "onnx" / "safetensors" -> *fmt; XT_ERR_USAGE (no message) for anything else. */
Status export_parse_format(const char *name, ExportFormat *fmt);

/* Checks that mf can be exported faithfully: finite normalisation, class names in valid
 * UTF-8. XT_ERR_USAGE with a message naming `model` (the file mf came from) otherwise. */
Status export_check_model(const ModelFile *mf, const char *model);

/* Validates mf (export_check_model), then writes it as fmt to path atomically.
 * XT_ERR_USAGE for a model the format cannot hold, XT_ERR_RUNTIME for I/O. */
Status export_write(const ModelFile *mf, const char *model, ExportFormat fmt, const char *path);

#endif
