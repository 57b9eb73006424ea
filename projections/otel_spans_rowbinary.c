/* otel_traces rows, compiled: an ExportTraceServiceRequest's protobuf bytes in, the rows of
 * projections/otel_traces.py (COLUMNS order) out in ClickHouse's RowBinary format.
 *
 * Why C: the Python transform spends ~16 µs a span reading fields through upb objects, and
 * the projector's target is 5 µs a span all told. This reads the wire format once, writes
 * RowBinary (which the engine parses several times faster than JSON), and creates no Python
 * object per span.
 *
 * It must give exactly the Python transform's rows (tests/test_otel_spans_rowbinary.py
 * checks both on the same requests). To keep that true without re-implementing protobuf,
 * it only decodes what it is sure upb reads the same way:
 *   - a first pass checks the whole request against the opentelemetry-proto schema
 *     (`SCHEMAS`, compared with the installed descriptors by a test): every known string
 *     field is valid UTF-8, every varint and length in range, every known field has its
 *     wire type, no singular message field appears twice (upb would merge the two);
 *   - anything else (groups, merges, wrong wire types, deep nesting) makes `rows` return
 *     None, and the caller runs the Python transform on that request.
 * Attribute values other than strings, integers and booleans (doubles, bytes, arrays,
 * maps: the rare ones) are turned into text by the Python function the caller passes, given
 * the encoded KeyValue: the Python transform's own AsString() on the same bytes.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FAILED (-1) /* a Python exception is set */
#define MAX_DEPTH 200 /* nested messages: a guard for the stack only. Values nested deeper
                        * than upb takes (100) fail in value_text, as in Python. */

/* --- output --------------------------------------------------------------------------- */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_room(Buf *b, Py_ssize_t more) {
    if (b->len + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + more) cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int put(Buf *b, const void *src, Py_ssize_t n) {
    if (n == 0) return 0; /* src may be NULL then, which memcpy does not allow */
    if (buf_room(b, n)) return FAILED;
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static inline int put_varint(Buf *b, uint64_t v) {
    if (buf_room(b, 10)) return FAILED;
    while (v >= 0x80) {
        b->data[b->len++] = (char)(v | 0x80);
        v >>= 7;
    }
    b->data[b->len++] = (char)v;
    return 0;
}

static inline int put_string(Buf *b, const void *s, Py_ssize_t n) {
    if (put_varint(b, (uint64_t)n)) return FAILED;
    return put(b, s, n);
}

static inline int put_u64(Buf *b, uint64_t v) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
    return put(b, le, 8);
}

/* DateTime64(9): nanoseconds as Int64, clamped as otel_common.datetime64_9 clamps. */
static inline int put_datetime64(Buf *b, uint64_t nanos) {
    return put_u64(b, nanos > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : nanos);
}

/* Room for one more item in a growing array of `size`-byte items. */
static int room_for_one(void **items, Py_ssize_t len, Py_ssize_t *cap, size_t size) {
    if (len < *cap) return 0;
    Py_ssize_t more = *cap ? *cap * 2 : 16;
    void *grown = PyMem_Realloc(*items, (size_t)more * size);
    if (grown == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    *items = grown;
    *cap = more;
    return 0;
}

/* 2n lowercase hex digits of n bytes. */
static void hex_into(char *out, const uint8_t *bytes, Py_ssize_t n) {
    static const char digits[] = "0123456789abcdef";
    for (Py_ssize_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
}

static int put_hex(Buf *b, const uint8_t *id, Py_ssize_t n) {
    if (put_varint(b, (uint64_t)(2 * n)) || buf_room(b, 2 * n)) return FAILED;
    hex_into(b->data + b->len, id, n);
    b->len += 2 * n;
    return 0;
}

static int all_zero(const uint8_t *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* otel_common.hex_id: hex when the id has its size and is not all zero, else "". */
static int put_optional_id(Buf *b, const uint8_t *id, Py_ssize_t n, Py_ssize_t size) {
    if (n == size && !all_zero(id, n)) return put_hex(b, id, n);
    return put_varint(b, 0);
}

#include "trace_wire.h"

/* --- attributes ----------------------------------------------------------------------- */

typedef struct {
    const uint8_t *key;
    Py_ssize_t key_size;
    const char *value; /* NULL: the text is in `digits` */
    Py_ssize_t value_size;
    Py_ssize_t order; /* position in the list: of a repeated key, the last one wins */
    char digits[24];
} Pair;

typedef struct {
    Pair *items;
    Py_ssize_t len, cap;
} Pairs;

typedef struct {
    PyObject *value_text; /* Python: encoded KeyValue -> AsString() of its value */
    PyObject *keep; /* the texts it returned, alive until the rows are written */
} Context;

static inline const char *pair_value(const Pair *p) {
    return p->value != NULL ? p->value : p->digits;
}

static int compare_pairs(const void *a, const void *b) {
    const Pair *x = a, *y = b;
    Py_ssize_t n = x->key_size < y->key_size ? x->key_size : y->key_size;
    int c = memcmp(x->key, y->key, (size_t)n); /* UTF-8 byte order is code point order */
    if (c) return c;
    if (x->key_size != y->key_size) return x->key_size < y->key_size ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
}

/* Append a KeyValue's (key, AsString(value)). */
static int add_pair(Pairs *pairs, const uint8_t *data, Py_ssize_t size, Context *ctx) {
    if (room_for_one((void **)&pairs->items, pairs->len, &pairs->cap, sizeof(Pair))) return FAILED;
    Pair *pair = &pairs->items[pairs->len];
    pair->key = (const uint8_t *)"";
    pair->key_size = 0;
    pair->value = "";
    pair->value_size = 0;
    pair->order = pairs->len;
    const uint8_t *any = NULL;
    Py_ssize_t any_size = 0;
    Reader r = {data, data + size};
    Field f;
    while (next_field(&r, &f) == 1) {
        if (f.number == 1) {
            pair->key = f.data;
            pair->key_size = f.size;
        } else if (f.number == 2) {
            any = f.data;
            any_size = f.size;
        }
    }
    if (any != NULL) {
        /* AnyValue's oneof (every field of it): the last member on the wire is the value. */
        Field last = {0};
        r = (Reader){any, any + any_size};
        while (next_field(&r, &f) == 1)
            if (f.number <= MAX_FIELD && FIELD_BY_NUMBER[M_ANY_VALUE][f.number] != NULL) last = f;
        if (last.number == 1) {
            pair->value = (const char *)last.data;
            pair->value_size = last.size;
        } else if (last.number == 2) {
            pair->value = last.value ? "true" : "false";
            pair->value_size = last.value ? 4 : 5;
        } else if (last.number == 3) {
            pair->value = NULL;
            pair->value_size =
                snprintf(pair->digits, sizeof pair->digits, "%lld", (long long)(int64_t)last.value);
        } else if (last.number != 0) {
            /* The whole KeyValue, parsed by upb from its own start as the Python transform
             * parses span attributes: the same nesting limit applies. */
            PyObject *raw = PyBytes_FromStringAndSize((const char *)data, size);
            if (raw == NULL) return FAILED;
            PyObject *text = PyObject_CallOneArg(ctx->value_text, raw);
            Py_DECREF(raw);
            if (text == NULL) return FAILED;
            int kept = PyList_Append(ctx->keep, text);
            Py_DECREF(text); /* the list holds it */
            if (kept) return FAILED;
            pair->value = PyUnicode_AsUTF8AndSize(text, &pair->value_size);
            if (pair->value == NULL) return FAILED;
        }
    }
    pairs->len++;
    return 0;
}

static void sort_pairs(Pair *items, Py_ssize_t n) {
    if (n > 24) {
        qsort(items, (size_t)n, sizeof(Pair), compare_pairs);
        return;
    }
    for (Py_ssize_t i = 1; i < n; i++) { /* insertion sort: attribute lists are short */
        Pair item = items[i];
        Py_ssize_t j = i;
        while (j > 0 && compare_pairs(&items[j - 1], &item) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = item;
    }
}

static inline int same_key(const Pair *a, const Pair *b) {
    return a->key_size == b->key_size && !memcmp(a->key, b->key, (size_t)a->key_size);
}

/* Write pairs[from:] as a Map(String, String), keys sorted, the last of a repeated key
 * winning, and drop them from the list. */
static int put_map(Buf *b, Pairs *pairs, Py_ssize_t from) {
    Pair *items = pairs->items + from;
    Py_ssize_t n = pairs->len - from;
    pairs->len = from;
    sort_pairs(items, n);
    Py_ssize_t distinct = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (i + 1 == n || !same_key(&items[i], &items[i + 1])) distinct++;
    if (put_varint(b, (uint64_t)distinct)) return FAILED;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + 1 < n && same_key(&items[i], &items[i + 1])) continue;
        if (put_string(b, items[i].key, items[i].key_size) ||
            put_string(b, pair_value(&items[i]), items[i].value_size))
            return FAILED;
    }
    return 0;
}

/* The Map of a message's KeyValue field `number`. */
static int put_attributes(Buf *b, const uint8_t *data, Py_ssize_t size, uint32_t number,
                          Pairs *pairs, Context *ctx) {
    Py_ssize_t from = pairs->len;
    Reader r = {data, data + size};
    Field f;
    while (next_field(&r, &f) == 1)
        if (f.number == number && add_pair(pairs, f.data, f.size, ctx)) return FAILED;
    return put_map(b, pairs, from);
}

/* --- spans ---------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *data;
    Py_ssize_t size;
} Slice;

typedef struct {
    Slice *items;
    Py_ssize_t len, cap;
} Slices;

static int add_slice(Slices *s, const uint8_t *data, Py_ssize_t size) {
    if (room_for_one((void **)&s->items, s->len, &s->cap, sizeof(Slice))) return FAILED;
    s->items[s->len++] = (Slice){data, size};
    return 0;
}

typedef struct {
    uint8_t id[16];
    uint64_t first, last;
} TraceBounds;

typedef struct {
    Buf rows;
    Pairs pairs;
    Slices events, links;
    Buf resource_map, service;
    TraceBounds *traces;
    Py_ssize_t trace_count, trace_cap;
    Py_ssize_t span_count;
    const char *app;
    Py_ssize_t app_size;
    Context ctx;
} Work;

static const char *const SPAN_KINDS[] = {"Unspecified", "Internal", "Server",
                                         "Client",      "Producer", "Consumer"};
static const char *const STATUS_CODES[] = {"Unset", "Ok", "Error"};

static int put_name(Buf *b, uint64_t value, const char *const *names, int count) {
    int32_t code = (int32_t)(uint32_t)value; /* an enum is an int32 on the wire */
    const char *name = code >= 0 && code < count ? names[code] : "";
    return put_string(b, name, (Py_ssize_t)strlen(name));
}

static int note_trace(Work *w, const uint8_t *trace_id, uint64_t start) {
    for (Py_ssize_t i = w->trace_count - 1; i >= 0; i--) {
        TraceBounds *t = &w->traces[i];
        if (!memcmp(t->id, trace_id, 16)) {
            if (start < t->first) t->first = start;
            if (start > t->last) t->last = start;
            return 0;
        }
    }
    if (room_for_one((void **)&w->traces, w->trace_count, &w->trace_cap, sizeof(TraceBounds)))
        return FAILED;
    TraceBounds *t = &w->traces[w->trace_count++];
    memcpy(t->id, trace_id, 16);
    t->first = t->last = start;
    return 0;
}

static int put_events(Work *w) {
    Buf *b = &w->rows;
    Reader r;
    Field f;
    if (put_varint(b, (uint64_t)w->events.len)) return FAILED;
    for (Py_ssize_t i = 0; i < w->events.len; i++) {
        uint64_t time = 0;
        r = (Reader){w->events.items[i].data, w->events.items[i].data + w->events.items[i].size};
        while (next_field(&r, &f) == 1)
            if (f.number == 1) time = f.value;
        if (put_datetime64(b, time)) return FAILED;
    }
    if (put_varint(b, (uint64_t)w->events.len)) return FAILED;
    for (Py_ssize_t i = 0; i < w->events.len; i++) {
        Slice name = {(const uint8_t *)"", 0};
        r = (Reader){w->events.items[i].data, w->events.items[i].data + w->events.items[i].size};
        while (next_field(&r, &f) == 1)
            if (f.number == 2) name = (Slice){f.data, f.size};
        if (put_string(b, name.data, name.size)) return FAILED;
    }
    if (put_varint(b, (uint64_t)w->events.len)) return FAILED;
    for (Py_ssize_t i = 0; i < w->events.len; i++) {
        Slice event = w->events.items[i];
        if (put_attributes(b, event.data, event.size, 3, &w->pairs, &w->ctx)) return FAILED;
    }
    return 0;
}

static int put_links(Work *w) {
    Buf *b = &w->rows;
    Py_ssize_t n = w->links.len;
    /* Links.TraceId, Links.SpanId, Links.TraceState: one pass per column. */
    for (uint32_t column = 1; column <= 3; column++) {
        if (put_varint(b, (uint64_t)n)) return FAILED;
        for (Py_ssize_t i = 0; i < n; i++) {
            Slice value = {(const uint8_t *)"", 0};
            Reader r = {w->links.items[i].data, w->links.items[i].data + w->links.items[i].size};
            Field f;
            while (next_field(&r, &f) == 1)
                if (f.number == column) value = (Slice){f.data, f.size};
            int rc = column == 1   ? put_optional_id(b, value.data, value.size, 16)
                     : column == 2 ? put_optional_id(b, value.data, value.size, 8)
                                   : put_string(b, value.data, value.size);
            if (rc) return FAILED;
        }
    }
    if (put_varint(b, (uint64_t)n)) return FAILED;
    for (Py_ssize_t i = 0; i < n; i++) {
        Slice link = w->links.items[i];
        if (put_attributes(b, link.data, link.size, 4, &w->pairs, &w->ctx)) return FAILED;
    }
    return 0;
}

static int put_span(Work *w, const uint8_t *data, Py_ssize_t size, Slice scope_name,
                    Slice scope_version) {
    Slice trace_id = {NULL, 0}, span_id = {NULL, 0}, parent = {NULL, 0};
    Slice trace_state = {(const uint8_t *)"", 0}, name = {(const uint8_t *)"", 0};
    Slice status = {NULL, 0};
    uint64_t kind = 0, start = 0, end = 0;
    Py_ssize_t attributes_from = w->pairs.len;
    w->events.len = w->links.len = 0;
    Reader r = {data, data + size};
    Field f;
    while (next_field(&r, &f) == 1) {
        switch (f.number) {
        case 1: trace_id = (Slice){f.data, f.size}; break;
        case 2: span_id = (Slice){f.data, f.size}; break;
        case 3: trace_state = (Slice){f.data, f.size}; break;
        case 4: parent = (Slice){f.data, f.size}; break;
        case 5: name = (Slice){f.data, f.size}; break;
        case 6: kind = f.value; break;
        case 7: start = f.value; break;
        case 8: end = f.value; break;
        case 9:
            if (add_pair(&w->pairs, f.data, f.size, &w->ctx)) return FAILED;
            break;
        case 11:
            if (add_slice(&w->events, f.data, f.size)) return FAILED;
            break;
        case 13:
            if (add_slice(&w->links, f.data, f.size)) return FAILED;
            break;
        case 15: status = (Slice){f.data, f.size}; break;
        default: break;
        }
    }
    /* ingest/otlp_rules.span_problem: both ids required, not all zero. */
    if (trace_id.size != 16 || all_zero(trace_id.data, 16) || span_id.size != 8 ||
        all_zero(span_id.data, 8)) {
        w->pairs.len = attributes_from; /* not a row */
        return 0;
    }
    uint64_t status_code = 0;
    Slice status_message = {(const uint8_t *)"", 0};
    r = (Reader){status.data, status.data + status.size};
    while (status.data != NULL && next_field(&r, &f) == 1) {
        if (f.number == 2) status_message = (Slice){f.data, f.size};
        else if (f.number == 3) status_code = f.value;
    }
    Buf *b = &w->rows;
    if (put_string(b, w->app, w->app_size) || put_datetime64(b, start) ||
        put_hex(b, trace_id.data, 16) || put_hex(b, span_id.data, 8) ||
        put_optional_id(b, parent.data, parent.size, 8) ||
        put_string(b, trace_state.data, trace_state.size) || put_string(b, name.data, name.size) ||
        put_name(b, kind, SPAN_KINDS, 6) || put_string(b, w->service.data, w->service.len) ||
        put(b, w->resource_map.data, w->resource_map.len) ||
        put_string(b, scope_name.data, scope_name.size) ||
        put_string(b, scope_version.data, scope_version.size) ||
        put_map(b, &w->pairs, attributes_from) ||
        put_u64(b, end > start ? end - start : 0) || /* the exporter's uint64 would wrap */
        put_name(b, status_code, STATUS_CODES, 3) ||
        put_string(b, status_message.data, status_message.size) || put_events(w) || put_links(w))
        return FAILED;
    w->span_count++;
    return note_trace(w, trace_id.data, start);
}

/* The resource's Map, and its service.name as the Python transform's dict gives it. */
static int take_resource(Work *w, const uint8_t *data, Py_ssize_t size) {
    w->resource_map.len = w->service.len = 0;
    Py_ssize_t from = w->pairs.len;
    Reader r = {data, data + size};
    Field f;
    while (data != NULL && next_field(&r, &f) == 1)
        if (f.number == 1 && add_pair(&w->pairs, f.data, f.size, &w->ctx)) return FAILED;
    for (Py_ssize_t i = from; i < w->pairs.len; i++) {
        const Pair *p = &w->pairs.items[i];
        if (p->key_size == 12 && !memcmp(p->key, "service.name", 12)) {
            w->service.len = 0;
            if (put(&w->service, pair_value(p), p->value_size)) return FAILED;
        }
    }
    return put_map(&w->resource_map, &w->pairs, from);
}

static int put_scope_spans(Work *w, const uint8_t *data, Py_ssize_t size) {
    Slice scope = {NULL, 0};
    Reader r = {data, data + size};
    Field f;
    while (next_field(&r, &f) == 1)
        if (f.number == 1) scope = (Slice){f.data, f.size};
    Slice scope_name = {(const uint8_t *)"", 0}, scope_version = {(const uint8_t *)"", 0};
    r = (Reader){scope.data, scope.data + scope.size};
    while (scope.data != NULL && next_field(&r, &f) == 1) {
        if (f.number == 1) scope_name = (Slice){f.data, f.size};
        else if (f.number == 2) scope_version = (Slice){f.data, f.size};
    }
    r = (Reader){data, data + size};
    while (next_field(&r, &f) == 1)
        if (f.number == 2 && put_span(w, f.data, f.size, scope_name, scope_version))
            return FAILED;
    return 0;
}

static int put_request(Work *w, const uint8_t *data, Py_ssize_t size) {
    Reader r = {data, data + size};
    Field f;
    while (next_field(&r, &f) == 1) {
        if (f.number != 1) continue;
        Slice resource = {NULL, 0};
        Reader inner = {f.data, f.data + f.size};
        Field g;
        while (next_field(&inner, &g) == 1)
            if (g.number == 1) resource = (Slice){g.data, g.size};
        if (take_resource(w, resource.data, resource.size)) return FAILED;
        inner = (Reader){f.data, f.data + f.size};
        while (next_field(&inner, &g) == 1)
            if (g.number == 2 && put_scope_spans(w, g.data, g.size)) return FAILED;
    }
    return 0;
}

static PyObject *trace_list(const Work *w) {
    PyObject *list = PyList_New(w->trace_count);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < w->trace_count; i++) {
        const TraceBounds *t = &w->traces[i];
        char hex[32];
        hex_into(hex, t->id, 16);
        PyObject *item = Py_BuildValue("(s#KK)", hex, (Py_ssize_t)32,
                                       (unsigned long long)t->first, (unsigned long long)t->last);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *rows(PyObject *self, PyObject *args) {
    Py_buffer payload;
    PyObject *app, *value_text, *out;
    if (!PyArg_ParseTuple(args, "y*UOY:rows", &payload, &app, &value_text, &out)) return NULL;
    PyObject *result = NULL;
    Work w = {0};
    const uint8_t *data = payload.buf;
    w.app = PyUnicode_AsUTF8AndSize(app, &w.app_size);
    if (w.app == NULL) goto done;
    int rc = check(data, payload.len, M_REQUEST, 0, MAX_DEPTH);
    if (rc == FALLBACK) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    w.ctx.value_text = value_text;
    w.ctx.keep = PyList_New(0);
    if (w.ctx.keep == NULL || put_request(&w, data, payload.len)) goto done;
    PyObject *traces = trace_list(&w);
    if (traces == NULL) goto done;
    /* Appended only now that the whole request is read: a failure leaves `out` as it was. */
    Py_ssize_t before = PyByteArray_GET_SIZE(out);
    if (PyByteArray_Resize(out, before + w.rows.len)) {
        Py_DECREF(traces);
        goto done;
    }
    if (w.rows.len) memcpy(PyByteArray_AS_STRING(out) + before, w.rows.data, (size_t)w.rows.len);
    result = Py_BuildValue("(nN)", w.span_count, traces);
done:
    PyBuffer_Release(&payload);
    Py_XDECREF(w.ctx.keep);
    PyMem_Free(w.rows.data);
    PyMem_Free(w.pairs.items);
    PyMem_Free(w.events.items);
    PyMem_Free(w.links.items);
    PyMem_Free(w.resource_map.data);
    PyMem_Free(w.service.data);
    PyMem_Free(w.traces);
    return result;
}

/* --- rows sorted as the table sorts them -------------------------------------------- */

/* One row of `rows` output, found again: where it is, and its otel_traces sort key
 * (App, ServiceName, SpanName, toDateTime(Timestamp)). */
typedef struct {
    Py_ssize_t start, end, order;
    Slice app, service, name;
    uint64_t second, hash;
    Py_ssize_t slot; /* in rank_names' table */
    Py_ssize_t rank; /* of (app, service, name) among the distinct ones */
} RowKey;

static int skip_string(Reader *r, Slice *out) {
    uint64_t n;
    if (read_varint(r, &n) || n > (uint64_t)(r->end - r->p)) return -1;
    if (out) *out = (Slice){r->p, (Py_ssize_t)n};
    r->p += n;
    return 0;
}

static int skip_fixed(Reader *r, Py_ssize_t n, uint64_t *out) {
    if (r->end - r->p < n) return -1;
    if (out) *out = le_bytes(r->p, (int)n);
    r->p += n;
    return 0;
}

static int skip_map(Reader *r) {
    uint64_t n;
    if (read_varint(r, &n)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (skip_string(r, NULL) || skip_string(r, NULL)) return -1;
    return 0;
}

/* An Array of `kind`: 's' String, '8' 8 bytes, 'm' Map(String, String). */
static int skip_array(Reader *r, char kind) {
    uint64_t n;
    if (read_varint(r, &n)) return -1;
    for (uint64_t i = 0; i < n; i++) {
        int rc = kind == 's' ? skip_string(r, NULL) : kind == '8' ? skip_fixed(r, 8, NULL) : skip_map(r);
        if (rc) return -1;
    }
    return 0;
}

/* The columns of a row in COLUMNS order, as put_span writes them. */
static int read_row(Reader *r, RowKey *key) {
    uint64_t nanos;
    if (skip_string(r, &key->app) || skip_fixed(r, 8, &nanos)) return -1;
    key->second = nanos / 1000000000ULL;
    for (int i = 0; i < 4; i++) /* TraceId, SpanId, ParentSpanId, TraceState */
        if (skip_string(r, NULL)) return -1;
    if (skip_string(r, &key->name) || skip_string(r, NULL) || skip_string(r, &key->service) ||
        skip_map(r) || skip_string(r, NULL) || skip_string(r, NULL) || skip_map(r) ||
        skip_fixed(r, 8, NULL) || skip_string(r, NULL) || skip_string(r, NULL) ||
        skip_array(r, '8') || skip_array(r, 's') || skip_array(r, 'm') || skip_array(r, 's') ||
        skip_array(r, 's') || skip_array(r, 's') || skip_array(r, 'm'))
        return -1;
    return 0;
}

static inline int compare_slices(Slice a, Slice b) {
    int c = memcmp(a.data, b.data, (size_t)(a.size < b.size ? a.size : b.size));
    if (c) return c;
    return a.size < b.size ? -1 : (a.size > b.size);
}

static int compare_names(const void *a, const void *b) {
    const RowKey *x = *(const RowKey *const *)a, *y = *(const RowKey *const *)b;
    int c;
    if ((c = compare_slices(x->app, y->app))) return c;
    if ((c = compare_slices(x->service, y->service))) return c;
    return compare_slices(x->name, y->name);
}

static int compare_rows(const void *a, const void *b) {
    const RowKey *x = *(const RowKey *const *)a, *y = *(const RowKey *const *)b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    if (x->second != y->second) return x->second < y->second ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order); /* the same order every time */
}

static uint64_t fnv1a(uint64_t h, Slice s) {
    for (Py_ssize_t i = 0; i < s.size; i++) h = (h ^ s.data[i]) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL; /* a separator: ("ab", "c") differs from ("a", "bc") */
}

static int same_names(const RowKey *x, const RowKey *y) {
    return x->hash == y->hash && !compare_slices(x->app, y->app) &&
           !compare_slices(x->service, y->service) && !compare_slices(x->name, y->name);
}

/* Rank each row's (app, service, name) among the distinct ones: a block has few, so they are
 * compared as strings once each, and the rows then as integers. */
static int rank_names(RowKey *keys, Py_ssize_t count) {
    Py_ssize_t capacity = 16;
    while (capacity < 2 * count) capacity *= 2;
    RowKey **table = PyMem_Calloc((size_t)capacity, sizeof(RowKey *));
    RowKey **distinct = PyMem_Malloc((size_t)count * sizeof(RowKey *));
    if (table == NULL || distinct == NULL) {
        PyMem_Free(table);
        PyMem_Free(distinct);
        PyErr_NoMemory();
        return FAILED;
    }
    Py_ssize_t found = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        RowKey *k = &keys[i];
        k->hash = fnv1a(fnv1a(fnv1a(0xcbf29ce484222325ULL, k->app), k->service), k->name);
        Py_ssize_t slot = (Py_ssize_t)(k->hash & (uint64_t)(capacity - 1));
        while (table[slot] != NULL && !same_names(table[slot], k)) slot = (slot + 1) & (capacity - 1);
        if (table[slot] == NULL) {
            table[slot] = k;
            distinct[found++] = k;
        }
        k->slot = slot;
    }
    qsort(distinct, (size_t)found, sizeof(RowKey *), compare_names);
    for (Py_ssize_t n = 0; n < found; n++) distinct[n]->rank = n;
    for (Py_ssize_t i = 0; i < count; i++) keys[i].rank = table[keys[i].slot]->rank;
    PyMem_Free(table);
    PyMem_Free(distinct);
    return 0;
}

static PyObject *sorted_rows(PyObject *self, PyObject *args) {
    Py_buffer rows;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "y*n:sorted_rows", &rows, &count)) return NULL;
    PyObject *result = NULL;
    RowKey *keys = PyMem_Malloc((size_t)(count > 0 ? count : 1) * sizeof(RowKey));
    RowKey **order = PyMem_Malloc((size_t)(count > 0 ? count : 1) * sizeof(RowKey *));
    if (keys == NULL || order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Reader r = {rows.buf, (const uint8_t *)rows.buf + rows.len};
    for (Py_ssize_t i = 0; i < count; i++) {
        keys[i].start = r.p - (const uint8_t *)rows.buf;
        keys[i].order = i;
        if (read_row(&r, &keys[i])) {
            PyErr_Format(PyExc_ValueError, "row %zd of %zd is not an otel_traces row", i, count);
            goto done;
        }
        keys[i].end = r.p - (const uint8_t *)rows.buf;
        order[i] = &keys[i];
    }
    if (r.p != r.end) {
        PyErr_SetString(PyExc_ValueError, "bytes left after the last otel_traces row");
        goto done;
    }
    if (count > 1) {
        if (rank_names(keys, count)) goto done;
        qsort(order, (size_t)count, sizeof(RowKey *), compare_rows); /* moves pointers only */
    }
    result = PyBytes_FromStringAndSize(NULL, rows.len);
    if (result == NULL) goto done;
    char *out = PyBytes_AS_STRING(result);
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t size = order[i]->end - order[i]->start;
        memcpy(out, (const char *)rows.buf + order[i]->start, (size_t)size);
        out += size;
    }
done:
    PyMem_Free(order);
    PyMem_Free(keys);
    PyBuffer_Release(&rows);
    return result;
}

static PyMethodDef METHODS[] = {
    {"rows", rows, METH_VARARGS,
     "rows(payload, app, value_text, out) -> (spans, [(trace_id, first, last)]) | None\n\n"
     "Append the otel_traces rows of an ExportTraceServiceRequest to the bytearray `out`, or\n"
     "append nothing and answer None for an encoding only upb reads right (the caller then\n"
     "runs the Python transform). value_text(encoded KeyValue) -> AsString() of its value."},
    {"sorted_rows", sorted_rows, METH_VARARGS,
     "sorted_rows(rowbinary, count) -> rowbinary\n\n"
     "`rows` output (of one or more requests) ordered by the otel_traces sort key, which\n"
     "spares the engine sorting each block; rows with equal keys keep their order."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, .m_name = "otel_spans_rowbinary",
    .m_doc = "otel_traces rows as RowBinary, compiled.", .m_size = -1, .m_methods = METHODS};

PyMODINIT_FUNC PyInit_otel_spans_rowbinary(void) {
    index_fields();
    return PyModule_Create(&MODULE);
}
