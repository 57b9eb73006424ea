/* The OTLP trace request's wire format, read the way upb reads it: a reader of protobuf
 * fields, UTF-8 validation, the opentelemetry-proto schema of an ExportTraceServiceRequest
 * (`SCHEMAS`, compared with the installed descriptors by a test) and `check`, which says
 * whether upb surely reads a message as this reader does.
 *
 * Included by schemas/otlp/trace_check.c (ingest's check of what it acknowledges) and by
 * projections/otel_spans_rowbinary.c (the otel_traces transform's first pass): one schema,
 * one reading. Include Python.h before it. */

#ifndef HUTCH_TRACE_WIRE_H
#define HUTCH_TRACE_WIRE_H

#include <stdint.h>
#include <string.h>

#define FALLBACK 1 /* not read here: the caller leaves the request to upb */

/* --- wire format ---------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
} Reader;

typedef struct {
    uint32_t number;
    int wire;
    uint64_t value; /* varint and fixed fields */
    const uint8_t *data; /* length-delimited fields */
    Py_ssize_t size;
} Field;

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static inline int read_varint(Reader *r, uint64_t *out) {
    if (r->p < r->end && *r->p < 0x80) { /* most are one byte: tags, lengths, enums */
        *out = *r->p++;
        return 0;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t byte = *r->p++;
        if (shift == 63 && byte > 1) return -1; /* more than 64 bits */
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static inline uint64_t le_bytes(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* 1: a field was read; 0: the end; -1: malformed, or a group (left to upb). */
static inline __attribute__((always_inline)) int next_field(Reader *r, Field *f) {
    if (r->p >= r->end) return 0;
    uint64_t tag;
    if (read_varint(r, &tag) || tag > UINT32_MAX || (tag >> 3) == 0) return -1;
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    switch (f->wire) {
    case WIRE_VARINT:
        return read_varint(r, &f->value) ? -1 : 1;
    case WIRE_FIXED64:
        if (r->end - r->p < 8) return -1;
        f->value = le_bytes(r->p, 8);
        r->p += 8;
        return 1;
    case WIRE_FIXED32:
        if (r->end - r->p < 4) return -1;
        f->value = le_bytes(r->p, 4);
        r->p += 4;
        return 1;
    case WIRE_LEN: {
        uint64_t n;
        if (read_varint(r, &n) || n > (uint64_t)(r->end - r->p)) return -1;
        f->data = r->p;
        f->size = (Py_ssize_t)n;
        r->p += n;
        return 1;
    }
    default:
        return -1;
    }
}

static int utf8_valid(const uint8_t *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + i, 8);
            if (!(word & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F)) return 0;
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F)) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* --- the schema the first pass checks ------------------------------------------------ */

typedef enum { K_VARINT, K_FIXED64, K_FIXED32, K_BYTES, K_STRING, K_MESSAGE } Kind;

typedef enum {
    M_REQUEST,
    M_RESOURCE_SPANS,
    M_RESOURCE,
    M_ENTITY_REF,
    M_SCOPE_SPANS,
    M_SCOPE,
    M_SPAN,
    M_EVENT,
    M_LINK,
    M_STATUS,
    M_KEY_VALUE,
    M_ANY_VALUE,
    M_ARRAY_VALUE,
    M_KEY_VALUE_LIST,
    M_COUNT
} MessageId;

typedef struct {
    uint32_t number;
    Kind kind;
    int repeated; /* or, for a oneof member, merged by upb and read by Python (AnyValue) */
    MessageId message;
} FieldSpec;

typedef struct {
    const char *name;
    const FieldSpec *fields;
    int count;
} Schema;

#define SCALAR(n, k) {n, k, 0, M_COUNT}
#define LIST(n, k) {n, k, 1, M_COUNT}
#define ONE(n, m) {n, K_MESSAGE, 0, m}
#define MANY(n, m) {n, K_MESSAGE, 1, m}

static const FieldSpec REQUEST_FIELDS[] = {MANY(1, M_RESOURCE_SPANS)};
static const FieldSpec RESOURCE_SPANS_FIELDS[] = {
    ONE(1, M_RESOURCE), MANY(2, M_SCOPE_SPANS), SCALAR(3, K_STRING)};
static const FieldSpec RESOURCE_FIELDS[] = {
    MANY(1, M_KEY_VALUE), SCALAR(2, K_VARINT), MANY(3, M_ENTITY_REF)};
static const FieldSpec ENTITY_REF_FIELDS[] = {
    SCALAR(1, K_STRING), SCALAR(2, K_STRING), LIST(3, K_STRING), LIST(4, K_STRING)};
static const FieldSpec SCOPE_SPANS_FIELDS[] = {
    ONE(1, M_SCOPE), MANY(2, M_SPAN), SCALAR(3, K_STRING)};
static const FieldSpec SCOPE_FIELDS[] = {
    SCALAR(1, K_STRING), SCALAR(2, K_STRING), MANY(3, M_KEY_VALUE), SCALAR(4, K_VARINT)};
static const FieldSpec SPAN_FIELDS[] = {
    SCALAR(1, K_BYTES),   SCALAR(2, K_BYTES),   SCALAR(3, K_STRING),  SCALAR(4, K_BYTES),
    SCALAR(5, K_STRING),  SCALAR(6, K_VARINT),  SCALAR(7, K_FIXED64), SCALAR(8, K_FIXED64),
    MANY(9, M_KEY_VALUE), SCALAR(10, K_VARINT), MANY(11, M_EVENT),    SCALAR(12, K_VARINT),
    MANY(13, M_LINK),     SCALAR(14, K_VARINT), ONE(15, M_STATUS),    SCALAR(16, K_FIXED32)};
static const FieldSpec EVENT_FIELDS[] = {
    SCALAR(1, K_FIXED64), SCALAR(2, K_STRING), MANY(3, M_KEY_VALUE), SCALAR(4, K_VARINT)};
static const FieldSpec LINK_FIELDS[] = {
    SCALAR(1, K_BYTES),   SCALAR(2, K_BYTES),  SCALAR(3, K_STRING),
    MANY(4, M_KEY_VALUE), SCALAR(5, K_VARINT), SCALAR(6, K_FIXED32)};
static const FieldSpec STATUS_FIELDS[] = {SCALAR(2, K_STRING), SCALAR(3, K_VARINT)};
static const FieldSpec KEY_VALUE_FIELDS[] = {
    SCALAR(1, K_STRING), ONE(2, M_ANY_VALUE), SCALAR(3, K_VARINT)}; /* 3: key_strindex */
static const FieldSpec ANY_VALUE_FIELDS[] = {
    SCALAR(1, K_STRING),  SCALAR(2, K_VARINT),    SCALAR(3, K_VARINT),
    SCALAR(4, K_FIXED64), MANY(5, M_ARRAY_VALUE), MANY(6, M_KEY_VALUE_LIST),
    SCALAR(7, K_BYTES),   SCALAR(8, K_VARINT)}; /* 8: string_value_strindex */
static const FieldSpec ARRAY_VALUE_FIELDS[] = {MANY(1, M_ANY_VALUE)};
static const FieldSpec KEY_VALUE_LIST_FIELDS[] = {MANY(1, M_KEY_VALUE)};

#define SCHEMA(name, fields) {name, fields, (int)(sizeof(fields) / sizeof(fields[0]))}

static const Schema SCHEMAS[M_COUNT] = {
    SCHEMA("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest", REQUEST_FIELDS),
    SCHEMA("opentelemetry.proto.trace.v1.ResourceSpans", RESOURCE_SPANS_FIELDS),
    SCHEMA("opentelemetry.proto.resource.v1.Resource", RESOURCE_FIELDS),
    SCHEMA("opentelemetry.proto.common.v1.EntityRef", ENTITY_REF_FIELDS),
    SCHEMA("opentelemetry.proto.trace.v1.ScopeSpans", SCOPE_SPANS_FIELDS),
    SCHEMA("opentelemetry.proto.common.v1.InstrumentationScope", SCOPE_FIELDS),
    SCHEMA("opentelemetry.proto.trace.v1.Span", SPAN_FIELDS),
    SCHEMA("opentelemetry.proto.trace.v1.Span.Event", EVENT_FIELDS),
    SCHEMA("opentelemetry.proto.trace.v1.Span.Link", LINK_FIELDS),
    SCHEMA("opentelemetry.proto.trace.v1.Status", STATUS_FIELDS),
    SCHEMA("opentelemetry.proto.common.v1.KeyValue", KEY_VALUE_FIELDS),
    SCHEMA("opentelemetry.proto.common.v1.AnyValue", ANY_VALUE_FIELDS),
    SCHEMA("opentelemetry.proto.common.v1.ArrayValue", ARRAY_VALUE_FIELDS),
    SCHEMA("opentelemetry.proto.common.v1.KeyValueList", KEY_VALUE_LIST_FIELDS),
};

#define MAX_FIELD 16
static const FieldSpec *FIELD_BY_NUMBER[M_COUNT][MAX_FIELD + 1]; /* filled at import */

static void index_fields(void) {
    for (int m = 0; m < M_COUNT; m++)
        for (int i = 0; i < SCHEMAS[m].count; i++)
            FIELD_BY_NUMBER[m][SCHEMAS[m].fields[i].number] = &SCHEMAS[m].fields[i];
}

static const int WIRE_OF_KIND[] = {WIRE_VARINT, WIRE_FIXED64, WIRE_FIXED32,
                                   WIRE_LEN,    WIRE_LEN,     WIRE_LEN};

/* 0: upb reads this message as the second pass does; FALLBACK otherwise (also past `limit`
 * nested messages). */
static int check(const uint8_t *data, Py_ssize_t size, MessageId id, int depth, int limit) {
    if (depth > limit) return FALLBACK;
    uint64_t singular_seen = 0;
    Reader r = {data, data + size};
    Field f;
    int more;
    while ((more = next_field(&r, &f)) == 1) {
        const FieldSpec *spec = f.number <= MAX_FIELD ? FIELD_BY_NUMBER[id][f.number] : NULL;
        if (spec == NULL) continue; /* unknown to the schema: upb keeps it unread */
        if (WIRE_OF_KIND[spec->kind] != f.wire) return FALLBACK;
        if (spec->kind == K_STRING && !utf8_valid(f.data, f.size)) return FALLBACK;
        if (spec->kind == K_MESSAGE) {
            if (!spec->repeated) {
                uint64_t bit = 1ULL << (f.number & 63);
                if (singular_seen & bit) return FALLBACK;
                singular_seen |= bit;
            }
            int rc = check(f.data, f.size, spec->message, depth + 1, limit);
            if (rc) return rc;
        }
    }
    return more < 0 ? FALLBACK : 0;
}

#endif
