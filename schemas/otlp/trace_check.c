/* What ingest acknowledges of an OTLP trace request, compiled: `readable` says yes only to
 * a request upb surely reads (schemas/otlp/trace_wire.h), so ingest can skip upb's full
 * read for it; anything else is left to upb (schemas/otlp/decoding.py). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "trace_wire.h"

#define READABLE_DEPTH 64 /* well inside upb's limit (100), whichever way it counts */

static PyObject *readable(PyObject *self, PyObject *args) {
    Py_buffer payload;
    if (!PyArg_ParseTuple(args, "y*:readable", &payload)) return NULL;
    int rc = check(payload.buf, payload.len, M_REQUEST, 0, READABLE_DEPTH);
    PyBuffer_Release(&payload);
    return PyBool_FromLong(rc == 0);
}

static const char *const KIND_NAMES[] = {"varint", "fixed64", "fixed32", "bytes", "string"};

static PyObject *known_fields(PyObject *self, PyObject *unused) {
    PyObject *messages = PyDict_New();
    if (messages == NULL) return NULL;
    for (int m = 0; m < M_COUNT; m++) {
        PyObject *fields = PyDict_New();
        if (fields == NULL || PyDict_SetItemString(messages, SCHEMAS[m].name, fields)) {
            Py_XDECREF(fields);
            Py_DECREF(messages);
            return NULL;
        }
        Py_DECREF(fields);
        for (int i = 0; i < SCHEMAS[m].count; i++) {
            const FieldSpec *spec = &SCHEMAS[m].fields[i];
            const char *kind = spec->kind == K_MESSAGE ? SCHEMAS[spec->message].name
                                                       : KIND_NAMES[spec->kind];
            PyObject *key = PyLong_FromUnsignedLong(spec->number);
            PyObject *value = Py_BuildValue("(sO)", kind, spec->repeated ? Py_True : Py_False);
            int failed = key == NULL || value == NULL || PyDict_SetItem(fields, key, value);
            Py_XDECREF(key);
            Py_XDECREF(value);
            if (failed) {
                Py_DECREF(messages);
                return NULL;
            }
        }
    }
    return messages;
}

static PyMethodDef METHODS[] = {
    {"readable", readable, METH_VARARGS,
     "readable(payload) -> bool\n\n"
     "True when upb surely reads the ExportTraceServiceRequest: well-formed, UTF-8 in every\n"
     "string field, every known field of its wire type, nested at most 64 deep. False says\n"
     "nothing: the caller asks upb itself."},
    {"known_fields", known_fields, METH_NOARGS,
     "known_fields() -> {message: {number: (kind, repeated)}}: the schema the check reads."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, .m_name = "trace_check",
    .m_doc = "Which OTLP trace requests upb surely reads, compiled.", .m_size = -1,
    .m_methods = METHODS};

PyMODINIT_FUNC PyInit_trace_check(void) {
    index_fields();
    return PyModule_Create(&MODULE);
}
