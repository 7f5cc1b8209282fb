/* The triage hot paths in C (optional: handlers/triage.py and
 * handlers/triage_model.py fall back to Python when this module is not built).
 *
 * - Lexicon(freq, total).cut(text): jieba's accurate mode without HMM,
 *   `jieba.Tokenizer.lcut(text, HMM=False)`, over a snapshot of a tokenizer's
 *   dictionary: the same blocks, the same DAG, the same dynamic programme
 *   (ties go to the longer word), the same gluing of single letters and
 *   digits. tests/test_triage_speedups.py checks the tokens are identical.
 * - GramIndex(keys).rows(text): the rows of the model's sorted n-gram keys that
 *   a report's character 1-3-grams hit, as handlers/triage_model.gram_keys
 *   computes them, each row once, in key order.
 * - fold_full_width(text): the first step of config.keywords.normalize.
 * - mark_tokens(tokens, memo, skip, keep): the classifier's Classifier._marked.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* -- the dictionary: an open-addressing table of words and their prefixes -- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
#define STACK_CHARS 512

typedef struct {
    uint64_t hash; /* 0: empty slot */
    uint32_t start; /* the word's characters: pool[start .. start + len) */
    uint32_t len;
    double logp; /* log(freq) - log(total); NAN for a prefix that is not a word */
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *slots;
    size_t mask;
    Py_UCS4 *pool;
    size_t pool_used;
    size_t pool_size;
    double unknown; /* a character the dictionary lacks: log(1) - log(total) */
} Lexicon;

static inline uint64_t
extend_hash(uint64_t h, Py_UCS4 c)
{
    return (h ^ (uint64_t)c) * FNV_PRIME;
}

static inline size_t
slot_of(uint64_t h, size_t mask)
{
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (size_t)h & mask;
}

static inline uint64_t
nonzero(uint64_t h)
{
    return h ? h : 1;
}

static const Entry *
find(const Lexicon *lex, uint64_t h, const Py_UCS4 *chars, Py_ssize_t len)
{
    h = nonzero(h);
    size_t i = slot_of(h, lex->mask);
    for (;;) {
        const Entry *e = &lex->slots[i];
        if (e->hash == 0)
            return NULL;
        if (e->hash == h && e->len == (uint32_t)len &&
            memcmp(lex->pool + e->start, chars, (size_t)len * sizeof(Py_UCS4)) == 0)
            return e;
        i = (i + 1) & lex->mask;
    }
}

/* Adds a word the table does not hold yet (the keys of a dict are distinct). */
static int
insert(Lexicon *lex, const Py_UCS4 *chars, Py_ssize_t len, double logp)
{
    uint64_t h = FNV_OFFSET;
    for (Py_ssize_t i = 0; i < len; i++)
        h = extend_hash(h, chars[i]);
    h = nonzero(h);
    size_t i = slot_of(h, lex->mask);
    while (lex->slots[i].hash != 0)
        i = (i + 1) & lex->mask;
    if (lex->pool_used + (size_t)len > lex->pool_size || lex->pool_used + (size_t)len > UINT32_MAX) {
        PyErr_SetString(PyExc_MemoryError, "lexicon pool exhausted");
        return -1;
    }
    Entry *e = &lex->slots[i];
    e->hash = h;
    e->start = (uint32_t)lex->pool_used;
    e->len = (uint32_t)len;
    e->logp = logp;
    memcpy(lex->pool + lex->pool_used, chars, (size_t)len * sizeof(Py_UCS4));
    lex->pool_used += (size_t)len;
    return 0;
}

static void
Lexicon_dealloc(Lexicon *self)
{
    PyMem_Free(self->slots);
    PyMem_Free(self->pool);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Lexicon_init(Lexicon *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"freq", "total", NULL};
    PyObject *freq;
    double total;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!d", kwlist, &PyDict_Type, &freq, &total))
        return -1;
    if (!(total > 0)) {
        PyErr_SetString(PyExc_ValueError, "total must be positive");
        return -1;
    }
    if (self->slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a Lexicon is built once");
        return -1;
    }
    Py_ssize_t n = PyDict_Size(freq);
    size_t cap = 1024;
    while (cap < (size_t)n * 2)
        cap <<= 1;
    size_t chars = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(freq, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "dictionary words must be str");
            return -1;
        }
        chars += (size_t)PyUnicode_GET_LENGTH(key);
    }
    self->slots = PyMem_Calloc(cap, sizeof(Entry));
    self->pool = PyMem_Malloc((chars ? chars : 1) * sizeof(Py_UCS4));
    if (self->slots == NULL || self->pool == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = cap - 1;
    self->pool_size = chars;
    double logtotal = log(total);
    self->unknown = -logtotal;
    Py_UCS4 stack[STACK_CHARS];
    pos = 0;
    while (PyDict_Next(freq, &pos, &key, &value)) {
        Py_ssize_t len = PyUnicode_GET_LENGTH(key);
        if (len == 0)
            continue;
        double f = PyFloat_AsDouble(value);
        if (f == -1.0 && PyErr_Occurred())
            return -1;
        Py_UCS4 *buf = len <= STACK_CHARS ? stack : PyUnicode_AsUCS4Copy(key);
        if (buf == NULL)
            return -1;
        if (buf == stack && PyUnicode_AsUCS4(key, stack, STACK_CHARS, 0) == NULL)
            return -1;
        /* jieba: a word has a frequency; a prefix of words only is stored with 0 */
        int failed = insert(self, buf, len, f > 0 ? log(f) - logtotal : NAN);
        if (buf != stack)
            PyMem_Free(buf);
        if (failed)
            return -1;
    }
    return 0;
}

/* -- segmentation -------------------------------------------------------- */

/* jieba's re_han_default: [\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-] */
static inline int
in_block(Py_UCS4 c)
{
    return (c >= 0x4E00 && c <= 0x9FD5) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '#' || c == '&' || c == '.' || c == '_' ||
           c == '%' || c == '-';
}

/* jieba's re_eng: a single letter or digit is glued to its neighbours */
static inline int
ascii_alnum(Py_UCS4 c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int
append_slice(PyObject *out, PyObject *text, Py_ssize_t start, Py_ssize_t end)
{
    PyObject *word = PyUnicode_Substring(text, start, end);
    if (word == NULL)
        return -1;
    int rc = PyList_Append(out, word);
    Py_DECREF(word);
    return rc;
}

/* get_DAG + calc + __cut_DAG_NO_HMM over chars[0, n), which start at `offset` in text */
static int
cut_block(const Lexicon *lex, const Py_UCS4 *chars, Py_ssize_t n, PyObject *text, Py_ssize_t offset,
          PyObject *out, double *best, Py_ssize_t *next)
{
    best[n] = 0.0;
    for (Py_ssize_t k = n - 1; k >= 0; k--) {
        uint64_t h = FNV_OFFSET;
        Py_ssize_t bend = -1;
        double bscore = 0.0;
        for (Py_ssize_t i = k; i < n; i++) {
            h = extend_hash(h, chars[i]);
            const Entry *e = find(lex, h, chars + k, i - k + 1);
            if (e == NULL)
                break;
            if (!isnan(e->logp)) {
                double score = e->logp + best[i + 1];
                if (bend < 0 || score >= bscore) { /* ties go to the longer word */
                    bscore = score;
                    bend = i + 1;
                }
            }
        }
        if (bend < 0) {
            bscore = best[k + 1] + lex->unknown;
            bend = k + 1;
        }
        best[k] = bscore;
        next[k] = bend;
    }
    Py_ssize_t x = 0, glued = -1;
    while (x < n) {
        Py_ssize_t y = next[x];
        if (y - x == 1 && ascii_alnum(chars[x])) {
            if (glued < 0)
                glued = x;
        }
        else {
            if (glued >= 0 && append_slice(out, text, offset + glued, offset + x) < 0)
                return -1;
            glued = -1;
            if (append_slice(out, text, offset + x, offset + y) < 0)
                return -1;
        }
        x = y;
    }
    if (glued >= 0 && append_slice(out, text, offset + glued, offset + n) < 0)
        return -1;
    return 0;
}

static PyObject *
Lexicon_cut(Lexicon *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "cut() needs a str");
        return NULL;
    }
    if (self->slots == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Lexicon not initialised");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_UCS4 *chars = PyUnicode_AsUCS4Copy(text);
    double *best = PyMem_Malloc((size_t)(n + 1) * sizeof(double));
    Py_ssize_t *next = PyMem_Malloc((size_t)(n + 1) * sizeof(Py_ssize_t));
    PyObject *out = PyList_New(0);
    if (chars == NULL || best == NULL || next == NULL || out == NULL) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        goto fail;
    }
    Py_ssize_t i = 0;
    while (i < n) {
        if (in_block(chars[i])) {
            Py_ssize_t j = i + 1;
            while (j < n && in_block(chars[j]))
                j++;
            if (cut_block(self, chars + i, j - i, text, i, out, best, next) < 0)
                goto fail;
            i = j;
        }
        else {
            /* jieba's re_skip: "\r\n" is one token, every other character its own */
            Py_ssize_t j = (chars[i] == '\r' && i + 1 < n && chars[i + 1] == '\n') ? i + 2 : i + 1;
            if (append_slice(out, text, i, j) < 0)
                goto fail;
            i = j;
        }
    }
    PyMem_Free(chars);
    PyMem_Free(best);
    PyMem_Free(next);
    return out;
fail:
    PyMem_Free(chars);
    PyMem_Free(best);
    PyMem_Free(next);
    Py_XDECREF(out);
    return NULL;
}

static PyMethodDef Lexicon_methods[] = {
    {"cut", (PyCFunction)Lexicon_cut, METH_O,
     "cut(text) -> list[str]: jieba's Tokenizer.lcut(text, HMM=False) over this dictionary"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LexiconType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "handlers._speedups.Lexicon",
    .tp_basicsize = sizeof(Lexicon),
    .tp_dealloc = (destructor)Lexicon_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lexicon(freq, total): a snapshot of a jieba dictionary (word -> frequency, 0 for a prefix)",
    .tp_methods = Lexicon_methods,
    .tp_init = (initproc)Lexicon_init,
    .tp_new = PyType_GenericNew,
};

/* -- the model's n-grams ------------------------------------------------- */

#define SHIFT 21

/* The model's n-gram keys (handlers/triage_model.gram_key: code points, 21 bits
 * each, so every key is positive) -> their rows, in an open-addressing table. */
typedef struct {
    int64_t key; /* 0: empty */
    int64_t row;
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    size_t mask;
    Py_ssize_t count;
    uint32_t *stamps; /* stamps[row] == stamp: row already taken for this text */
    uint32_t stamp;
} GramIndex;

static inline size_t
key_slot(int64_t key, size_t mask)
{
    uint64_t h = (uint64_t)key;
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
    return (size_t)h & mask;
}

static void
GramIndex_dealloc(GramIndex *self)
{
    PyMem_Free(self->slots);
    PyMem_Free(self->stamps);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
GramIndex_init(GramIndex *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"keys", NULL};
    Py_buffer view;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*", kwlist, &view))
        return -1;
    int rc = -1;
    if (self->slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a GramIndex is built once");
        goto done;
    }
    if (view.itemsize != 8 || view.len % 8 != 0 || view.len / 8 >= UINT32_MAX) {
        PyErr_SetString(PyExc_TypeError, "keys must be a buffer of int64");
        goto done;
    }
    const int64_t *keys = (const int64_t *)view.buf;
    Py_ssize_t count = view.len / 8;
    size_t cap = 1024;
    while (cap < (size_t)count * 2)
        cap <<= 1;
    self->slots = PyMem_Calloc(cap, sizeof(Slot));
    self->stamps = PyMem_Calloc((size_t)(count ? count : 1), sizeof(uint32_t));
    if (self->slots == NULL || self->stamps == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    self->mask = cap - 1;
    self->count = count;
    for (Py_ssize_t row = 0; row < count; row++) {
        int64_t key = keys[row];
        if (key <= 0) {
            PyErr_SetString(PyExc_ValueError, "n-gram keys are positive");
            goto done;
        }
        size_t i = key_slot(key, self->mask);
        while (self->slots[i].key != 0 && self->slots[i].key != key)
            i = (i + 1) & self->mask;
        self->slots[i].key = key;
        self->slots[i].row = row;
    }
    rc = 0;
done:
    PyBuffer_Release(&view);
    return rc;
}

static inline int64_t
row_of(const GramIndex *index, int64_t key)
{
    size_t i = key_slot(key, index->mask);
    for (;;) {
        const Slot *slot = &index->slots[i];
        if (slot->key == key)
            return slot->row;
        if (slot->key == 0)
            return -1;
        i = (i + 1) & index->mask;
    }
}

/* handlers/triage_model: n-grams stay inside runs of CJK, a-z and "0" (every
 * run of digits reads as one "0") */
static inline int
kept(Py_UCS4 c)
{
    return (c >= 0x4E00 && c <= 0x9FD5) || (c >= 'a' && c <= 'z') || c == '0';
}

/* Sorts a[0, n) (rows < 2**32) in 8-bit passes through tmp; returns where the
 * sorted rows are (a or tmp). A few hundred rows: ~5x faster than qsort. */
static uint32_t *
radix_sort(uint32_t *a, uint32_t *tmp, Py_ssize_t n, uint32_t largest)
{
    for (int shift = 0; shift < 32 && (largest >> shift) != 0; shift += 8) {
        Py_ssize_t counts[257] = {0};
        for (Py_ssize_t i = 0; i < n; i++)
            counts[((a[i] >> shift) & 0xFF) + 1]++;
        for (int b = 0; b < 256; b++)
            counts[b + 1] += counts[b];
        for (Py_ssize_t i = 0; i < n; i++)
            tmp[counts[(a[i] >> shift) & 0xFF]++] = a[i];
        uint32_t *swap = a;
        a = tmp;
        tmp = swap;
    }
    return a;
}

static PyObject *
GramIndex_rows(GramIndex *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "rows() needs a str");
        return NULL;
    }
    if (self->slots == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "GramIndex not initialised");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_UCS4 *codes = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Py_UCS4));
    uint32_t *rows = PyMem_Malloc((size_t)(6 * n + 2) * sizeof(uint32_t)); /* found, then the sort's spare */
    PyObject *result = NULL;
    if (codes == NULL || rows == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (++self->stamp == 0) { /* wrapped: forget every old stamp */
        memset(self->stamps, 0, (size_t)self->count * sizeof(uint32_t));
        self->stamp = 1;
    }
    Py_ssize_t m = 0;
    int in_digits = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        int digit = c >= '0' && c <= '9';
        if (!(digit && in_digits)) /* a run of digits is one "0" */
            codes[m++] = digit ? '0' : c;
        in_digits = digit;
    }
    Py_ssize_t found = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        int64_t key = 0;
        for (Py_ssize_t j = i; j < m && j < i + 3 && kept(codes[j]); j++) {
            key = (key << SHIFT) | (int64_t)codes[j];
            int64_t row = row_of(self, key);
            if (row >= 0 && self->stamps[row] != self->stamp) {
                self->stamps[row] = self->stamp;
                rows[found++] = (uint32_t)row;
            }
        }
    }
    const uint32_t *sorted = radix_sort(rows, rows + 3 * n + 1, found, (uint32_t)self->count);
    result = PyBytes_FromStringAndSize(NULL, found * (Py_ssize_t)sizeof(int64_t));
    if (result != NULL) {
        int64_t *out = (int64_t *)PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < found; i++)
            out[i] = sorted[i];
    }
done:
    PyMem_Free(codes);
    PyMem_Free(rows);
    return result;
}

static PyMethodDef GramIndex_methods[] = {
    {"rows", (PyCFunction)GramIndex_rows, METH_O,
     "rows(text) -> bytes: the distinct rows (int64, ascending) that text's character 1-3-grams hit"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GramIndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "handlers._speedups.GramIndex",
    .tp_basicsize = sizeof(GramIndex),
    .tp_dealloc = (destructor)GramIndex_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "GramIndex(keys): the model's sorted int64 n-gram keys, for looking up a report's n-grams",
    .tp_methods = GramIndex_methods,
    .tp_init = (initproc)GramIndex_init,
    .tp_new = PyType_GenericNew,
};

/* -- normalisation ------------------------------------------------------- */

/* config.keywords.normalize's first step: full-width ASCII forms (U+FF01-FF5E)
 * and the ideographic space, as NFKC maps them. str.translate looks every CJK
 * character up in a dict: ~15 us per 200 characters, this ~1 us. */
static PyObject *
fold_full_width(PyObject *Py_UNUSED(module), PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "fold_full_width() needs a str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t first = -1;
    for (Py_ssize_t i = 0; i < n && kind != PyUnicode_1BYTE_KIND; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if ((c >= 0xFF01 && c <= 0xFF5E) || c == 0x3000) {
            first = i;
            break;
        }
    }
    if (first < 0)
        return Py_NewRef(text);
    Py_UCS4 *chars = PyUnicode_AsUCS4Copy(text);
    if (chars == NULL)
        return NULL;
    for (Py_ssize_t i = first; i < n; i++) {
        Py_UCS4 c = chars[i];
        if (c >= 0xFF01 && c <= 0xFF5E)
            chars[i] = c - 0xFEE0;
        else if (c == 0x3000)
            chars[i] = ' ';
    }
    PyObject *out = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, chars, n);
    PyMem_Free(chars);
    return out;
}

/* -- the classifier's token entries --------------------------------------- */

/* [(pos, token, memo[token]) for pos, token in enumerate(tokens)
 *  if memo[token] is not skip or token in keep], or None when a token is not in
 * memo yet (the caller fills the memo and asks again). */
static PyObject *
mark_tokens(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *tokens, *memo, *skip, *keep = Py_None;
    if (!PyArg_ParseTuple(args, "O!O!O|O", &PyList_Type, &tokens, &PyDict_Type, &memo, &skip, &keep))
        return NULL;
    if (keep != Py_None && !PyDict_Check(keep)) {
        PyErr_SetString(PyExc_TypeError, "keep must be a dict or None");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t pos = 0; pos < PyList_GET_SIZE(tokens); pos++) {
        /* held: hashing a token that is not an exact str may run Python code */
        PyObject *token = Py_NewRef(PyList_GET_ITEM(tokens, pos));
        PyObject *entry = Py_XNewRef(PyDict_GetItemWithError(memo, token));
        int wanted = 0; /* 1: in the result; -1: error */
        if (entry != NULL)
            wanted = entry != skip ? 1 : (keep != Py_None ? PyDict_Contains(keep, token) : 0);
        int failed = (entry == NULL && PyErr_Occurred() != NULL) || wanted < 0;
        PyObject *item = NULL;
        if (!failed && wanted) {
            item = Py_BuildValue("(nOO)", pos, token, entry);
            failed = item == NULL || PyList_Append(out, item) < 0;
        }
        Py_XDECREF(item);
        Py_XDECREF(entry);
        Py_DECREF(token);
        if (failed) {
            Py_DECREF(out);
            return NULL;
        }
        if (entry == NULL) { /* not in memo yet */
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
    }
    return out;
}

static PyMethodDef module_methods[] = {
    {"mark_tokens", mark_tokens, METH_VARARGS,
     "mark_tokens(tokens, memo, skip, keep=None) -> list | None: the (pos, token, memo[token]) that are "
     "not `skip` (or are in `keep`); None when a token is not in memo"},
    {"fold_full_width", fold_full_width, METH_O,
     "fold_full_width(text) -> str: U+FF01-FF5E to ASCII, U+3000 to a space (as NFKC does)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "handlers._speedups",
    .m_doc = "The triage hot paths in C (optional; the Python code is the reference).",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
add_type(PyObject *module, PyTypeObject *type, const char *name)
{
    if (PyType_Ready(type) < 0)
        return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(module, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL)
        return NULL;
    if (add_type(module, &LexiconType, "Lexicon") < 0 || add_type(module, &GramIndexType, "GramIndex") < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
