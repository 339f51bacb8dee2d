/* Inside the Avro module: our own tree of a schema (avro-c keeps neither defaults, aliases nor
 * logical types, and its resolution is unsafe), the schema object, and the pieces the module's
 * files share. Nothing here is part of the library's API. */
#ifndef CV_AVRO_INT_H
#define CV_AVRO_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <avro.h>
#include <jansson.h>

#include "cv/avro.h"

/* Deepest nesting of schema JSON, schema tree and data accepted (records, arrays, maps, unions). */
#define CV_AVRO_MAX_DEPTH 64

enum cv_avro_kind {
    CV_AVRO_NULL,
    CV_AVRO_BOOLEAN,
    CV_AVRO_INT,
    CV_AVRO_LONG,
    CV_AVRO_FLOAT,
    CV_AVRO_DOUBLE,
    CV_AVRO_BYTES,
    CV_AVRO_STRING,
    CV_AVRO_RECORD,
    CV_AVRO_ENUM,
    CV_AVRO_ARRAY,
    CV_AVRO_MAP,
    CV_AVRO_UNION,
    CV_AVRO_FIXED
};

struct cv_avro_node;

struct cv_avro_field {
    char *name;
    char **aliases; /* NULL-terminated, or NULL */
    struct cv_avro_node *type;
    json_t *dflt; /* the default in the event JSON shape (bytes as base64), or NULL if none */
};

/* One schema node. Named types are shared by reference, so a tree may have cycles: nodes are
 * owned by the tree's allocation list, never by their parents. */
struct cv_avro_node {
    enum cv_avro_kind kind;
    char *full_name;              /* record, enum, fixed: "conveyor.OrderItem" */
    const char *short_name;       /* inside full_name: "OrderItem" */
    char **aliases;               /* named types: full names, NULL-terminated, or NULL */
    int is_uuid;                  /* string with logicalType uuid */
    struct cv_avro_field *fields; /* record */
    size_t nfields;
    char **symbols; /* enum */
    size_t nsymbols;
    long enum_default;              /* index of the enum's default symbol, or -1 */
    struct cv_avro_node *items;     /* array items, map values */
    struct cv_avro_node **branches; /* union */
    size_t nbranches;
    size_t fixed_size;
    size_t min_size; /* fewest bytes a value of this node encodes to */
    int size_state;  /* min_size: 0 not computed, 1 being computed, 2 done */
    struct cv_avro_node *next_alloc;
};

struct cv_avro_tree {
    struct cv_avro_node *root;
    struct cv_avro_node *nodes; /* allocation list */
};

/* avro_parse.c: schema text as JSON (any value: a schema may be a bare "string"). NULL with
 * errstr set. */
json_t *cv_avro_json_load(const char *text, char *errstr, size_t errstr_size);

/* avro_parse.c: builds the tree of a self-contained schema JSON (named types defined before
 * use), checking names, defaults and nesting. 0, or -1 with errstr; the tree is empty then.
 * With CV_AVRO_PARSE_NO_DEFAULTS, defaults are ignored rather than checked (canonical form:
 * Avro's own test vectors hold defaults of the wrong type). */
#define CV_AVRO_PARSE_NO_DEFAULTS 1
int cv_avro_tree_parse(const json_t *json, int flags, struct cv_avro_tree *tree, char *errstr,
                       size_t errstr_size);
void cv_avro_tree_free(struct cv_avro_tree *tree);
/* "int", "record", ... */
const char *cv_avro_kind_name(enum cv_avro_kind kind);
/* The full name of name in namespace ns: name itself when it already has a dot or ns is NULL or
 * "" (the null namespace), else "ns.name". malloc'd; NULL when out of memory. The one place the
 * Avro code joins names (parser, schema builder and catalog alike). */
char *cv_avro_full_name(const char *name, const char *ns);

/* avro_canonical.c: Parsing Canonical Form of a tree; malloc'd, NULL if out of memory. */
char *cv_avro_tree_canonical(const struct cv_avro_node *root);

struct cv_schema {
    struct cv_avro_tree tree;
    avro_schema_t avro;
    avro_value_iface_t *iface;
    char *json;      /* the schema JSON, shared types inlined, docs and defaults kept */
    char *canonical; /* Parsing Canonical Form */
    uint64_t fingerprint;
    const char *full_name; /* the root's full name, or the primitive's name */
    const char *type;      /* short name */
    char origin[32];
    _Atomic uint64_t registry_id; /* 0: none; else (1 << 32) | id */
};

/* avro_schema.c: builds a schema from JSON, first inlining the named types it references but
 * does not define from shared (an object of full name -> schema JSON; may be NULL). */
struct cv_schema *cv_avro_schema_build(const json_t *json, const json_t *shared, const char *origin,
                                       char *errstr, size_t errstr_size);

/* avro_catalog.c: the current shared types (full name -> JSON), NULL if not loaded. */
const json_t *cv_avro_catalog_shared(void);

/* A field path for error messages: "items[2].quantity". */
struct cv_avro_path {
    char text[256];
    size_t len;
    int depth; /* nesting of the value being converted, bounded like the walker's */
};

/* Cuts the path back to a length saved before descending. */
static inline void cv_avro_path_reset(struct cv_avro_path *path, size_t len)
{
    path->len = len;
    path->text[len] = '\0';
}

void cv_avro_path_field(struct cv_avro_path *path, const char *name);
void cv_avro_path_index(struct cv_avro_path *path, size_t index);
void cv_avro_path_key(struct cv_avro_path *path, const char *key);
void cv_avro_path_suffix(struct cv_avro_path *path, const char *suffix); /* "[]", as is */
/* Formats "path: message" (just the message at the root) into errstr. */
void cv_avro_path_error(const struct cv_avro_path *path, char *errstr, size_t errstr_size,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* avro_json.c: event JSON -> avro value. Checks j against node n, applies defaults, and writes
 * it into value (value NULL: only checks). 0, or -1 with "path: reason" in errstr. */
int cv_avro_json_to_value(const struct cv_avro_node *n, const json_t *j, avro_value_t *value,
                          struct cv_avro_path *path, char *errstr, size_t errstr_size);
/* Base64 (RFC 4648, padded). encode: malloc'd NUL-terminated text, NULL if out of memory.
 * decode: malloc'd bytes (at least 1 byte allocated) and *out_len, or NULL if not base64. */
char *cv_avro_base64_encode(const unsigned char *data, size_t len);
unsigned char *cv_avro_base64_decode(const char *text, size_t text_len, size_t *out_len);

/* avro_walk.c: checks that body holds one value of node n, every length within bounds, strings
 * UTF-8, indexes in range, nesting and element counts bounded; sets *consumed to its length.
 * After this succeeds avro-c can decode the same bytes without failing. */
int cv_avro_walk(const struct cv_avro_node *n, const unsigned char *body, size_t len,
                 size_t *consumed, char *errstr, size_t errstr_size);

/* avro_resolve.c: avro value written with writer node w -> JSON shaped for reader node r. New
 * reference, or NULL with "path: reason" in errstr. */
json_t *cv_avro_value_to_json(const struct cv_avro_node *w, avro_value_t *value,
                              const struct cv_avro_node *r, struct cv_avro_path *path, char *errstr,
                              size_t errstr_size);

#endif
