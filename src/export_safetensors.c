/* safetensors, written by hand: the format is an 8-byte little-endian header length N,
 * N bytes of JSON ({"__metadata__": {string: string}, "NAME": {"dtype", "shape",
 * "data_offsets": [begin, end]}, ...}; begin/end relative to the data that follows, which
 * they cover without holes), padded with spaces so the data start at a multiple of 8, then
 * the tensors' bytes, little-endian, row-major. */
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "export_common.h"
#include "model.h"

#define ST_CHUNK 4096 /* floats converted per fwrite */

/* The header JSON (padded) into t. Layer l (1..L) is torch.nn.Sequential index 2(l-1):
 * a Linear, with an activation module between two of them. */
static void header_json(ExportText *t, const ModelShape *s, const ExportMeta *m)
{
    export_text_printf(t, "{\"__metadata__\":{");
    for (size_t i = 0; i < m->n; i++) {
        if (i) export_text_printf(t, ",");
        export_text_json(t, m->key[i]);
        export_text_printf(t, ":");
        export_text_json(t, m->value[i]);
    }
    export_text_printf(t, "}");
    size_t off = 0;
    for (int l = 1; l <= s->n_layers; l++) {
        size_t out = s->sizes[l], in = s->sizes[l - 1], idx = 2 * (size_t)(l - 1);
        export_text_printf(t, ",\"%zu.weight\":{\"dtype\":\"F32\",\"shape\":[%zu,%zu],"
                              "\"data_offsets\":[%zu,%zu]}", idx, out, in, off,
                           off + out * in * 4);
        off += out * in * 4;
        export_text_printf(t, ",\"%zu.bias\":{\"dtype\":\"F32\",\"shape\":[%zu],"
                              "\"data_offsets\":[%zu,%zu]}", idx, out, off, off + out * 4);
        off += out * 4;
    }
    export_text_printf(t, "}");
    while (!t->oom && t->len % 8 != 0) export_text_printf(t, " ");
}

static void write_f32le(FILE *f, const float *v, size_t n)
{
    uint8_t buf[ST_CHUNK * 4];
    for (size_t i = 0; i < n; i += ST_CHUNK) {
        size_t m = n - i < ST_CHUNK ? n - i : ST_CHUNK;
        export_f32le(buf, v + i, m);
        if (fwrite(buf, 4, m, f) != m) return; /* ferror is checked by the caller */
    }
}

Status export_safetensors_fill(FILE *f, const ExportJob *job)
{
    const ModelFile *mf = job->mf;
    const ModelShape *s = &mf->shape;
    ExportMeta meta;
    ExportText hdr = {0};
    Status st = export_meta_init(&meta, mf, true);
    if (st != XT_OK) return st;
    header_json(&hdr, s, &meta);
    if (hdr.oom) {
        log_error("export: out of memory for the safetensors header of %s", job->model);
        st = XT_ERR_RUNTIME;
    } else if (hdr.len > EXPORT_SAFETENSORS_MAX_HEADER) {
        log_error("export: %s: the safetensors header would take %zu bytes (the normalisation "
                  "of D = %zu features is in it), over the %zu that safetensors readers accept; "
                  "export --format onnx instead, which holds it as tensors", job->model,
                  hdr.len, s->sizes[0], EXPORT_SAFETENSORS_MAX_HEADER);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) {
        uint8_t len[8];
        for (int b = 0; b < 8; b++) len[b] = (uint8_t)((uint64_t)hdr.len >> (8 * b));
        fwrite(len, 1, sizeof len, f);
        fwrite(hdr.p, 1, hdr.len, f);
        for (int l = 1; l <= s->n_layers; l++) {
            write_f32le(f, mf->params + s->w_off[l - 1], s->sizes[l] * s->sizes[l - 1]);
            write_f32le(f, mf->params + s->b_off[l - 1], s->sizes[l]);
        }
    }
    export_text_free(&hdr);
    export_meta_free(&meta);
    return st;
}
