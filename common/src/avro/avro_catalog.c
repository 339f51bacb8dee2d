/* The catalogue of every event schema compiled into the library: the .avsc files in schemas/
 * (the current versions) and in schemas/released/<release>/. A file whose record has a `metadata`
 * field is an event; the others are shared types, inlined into the events of the same directory
 * that reference them. Lookups are lock-free: entries are only appended, and published by an atomic
 * count, until cv_avro_catalog_free. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_int.h"
#include "cv/embed.h"

#define CATALOG_MAX 1024

static pthread_mutex_t catalog_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cv_schema *catalog[CATALOG_MAX];
static _Atomic size_t catalog_count;
static _Atomic int catalog_loaded;
static json_t *current_shared; /* shared types of schemas/, for cv_avro_schema_new */

static const char current_dir[] = "schemas";
static const char released_dir[] = "schemas/released/";

/* Directory part of path ("schemas/released/v1"), as length. */
static size_t dir_len(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? (size_t)(slash - path) : 0;
}

/* "current" for schemas/, the release name for schemas/released/<release>/, else NULL. */
static int origin_of(const char *path, char *origin, size_t origin_size)
{
    size_t len = dir_len(path);

    if (len == strlen(current_dir) && strncmp(path, current_dir, len) == 0) {
        snprintf(origin, origin_size, "current");
        return 0;
    }
    if (len > strlen(released_dir) && strncmp(path, released_dir, strlen(released_dir)) == 0 &&
        memchr(path + strlen(released_dir), '/', len - strlen(released_dir)) == NULL) {
        snprintf(origin, origin_size, "%.*s", (int)(len - strlen(released_dir)),
                 path + strlen(released_dir));
        return 0;
    }
    return -1;
}

static int is_event(const json_t *j)
{
    const json_t *fields = json_object_get(j, "fields");

    for (size_t i = 0; i < json_array_size(fields); i++) {
        const char *name = json_string_value(json_object_get(json_array_get(fields, i), "name"));
        if (name != NULL && strcmp(name, "metadata") == 0)
            return 1;
    }
    return 0;
}

/* The full name a top-level definition declares, malloc'd; NULL if it has no name. */
static char *declared_name(const json_t *j)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *ns = json_string_value(json_object_get(j, "namespace"));

    return name != NULL ? cv_avro_full_name(name, ns) : NULL;
}

static void catalog_clear(void)
{
    size_t count = atomic_load(&catalog_count);

    atomic_store(&catalog_count, 0);
    for (size_t i = 0; i < count; i++) {
        cv_avro_schema_destroy(catalog[i]);
        catalog[i] = NULL;
    }
    json_decref(current_shared);
    current_shared = NULL;
}

static int catalog_append(struct cv_schema *s, char *errstr, size_t errstr_size)
{
    size_t count = atomic_load(&catalog_count);

    if (count == CATALOG_MAX) {
        snprintf(errstr, errstr_size, "catalogue full (%d schemas)", CATALOG_MAX);
        cv_avro_schema_destroy(s);
        return -1;
    }
    catalog[count] = s;
    atomic_store(&catalog_count, count + 1);
    return 0;
}

/* Loads the event schemas of the directory of files[first] (the files of one directory are
 * consecutive in cv_schema_files), and sets *next to the first file after them. */
static int load_dir(size_t first, size_t *next, char *errstr, size_t errstr_size)
{
    const char *dir = cv_schema_files[first].path;
    size_t len = dir_len(dir), end, i;
    json_t *shared = json_object(), **docs;
    char origin[32];
    int rc = -1;

    for (end = first;
         cv_schema_files[end].path != NULL && dir_len(cv_schema_files[end].path) == len &&
         strncmp(cv_schema_files[end].path, dir, len) == 0;
         end++)
        ;
    *next = end;
    docs = calloc(end - first + 1, sizeof(*docs)); /* + 1: never a zero-size allocation */
    if (shared == NULL || docs == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    if (origin_of(dir, origin, sizeof(origin)) != 0) {
        snprintf(errstr, errstr_size, "%s: schemas live in schemas/ or schemas/released/NAME/",
                 dir);
        goto cleanup;
    }
    /* First pass: parse, and collect the shared types by full name. */
    for (i = first; i < end; i++) {
        const struct cv_embedded_file *f = &cv_schema_files[i];
        json_error_t jerr;
        char *full;

        docs[i - first] = json_loadb(f->data, f->size, JSON_ALLOW_NUL, &jerr);
        if (docs[i - first] == NULL) {
            snprintf(errstr, errstr_size, "%s:%d: %s", f->path, jerr.line, jerr.text);
            goto cleanup;
        }
        full = declared_name(docs[i - first]);
        if (full == NULL) {
            snprintf(errstr, errstr_size, "%s: not a named schema", f->path);
            goto cleanup;
        }
        if (!is_event(docs[i - first]) && json_object_set(shared, full, docs[i - first]) != 0) {
            free(full);
            snprintf(errstr, errstr_size, "out of memory");
            goto cleanup;
        }
        free(full);
    }
    /* Second pass: build the events. */
    for (i = first; i < end; i++) {
        const char *path = cv_schema_files[i].path;
        const char *base = path + len + 1;
        char reason[512];
        struct cv_schema *s;

        if (!is_event(docs[i - first]))
            continue;
        s = cv_avro_schema_build(docs[i - first], shared, origin, reason, sizeof(reason));
        if (s == NULL) {
            snprintf(errstr, errstr_size, "%s: %s", path, reason);
            goto cleanup;
        }
        if (strncmp(base, s->type, strlen(s->type)) != 0 ||
            strcmp(base + strlen(s->type), ".avsc") != 0) {
            snprintf(errstr, errstr_size, "%s: declares %s; the file must be named %s.avsc", path,
                     s->full_name, s->type);
            cv_avro_schema_destroy(s);
            goto cleanup;
        }
        for (size_t k = 0; k < atomic_load(&catalog_count); k++) {
            if (strcmp(catalog[k]->origin, origin) == 0 &&
                strcmp(catalog[k]->full_name, s->full_name) == 0) {
                snprintf(errstr, errstr_size, "%s: %s is defined twice", path, s->full_name);
                cv_avro_schema_destroy(s);
                goto cleanup;
            }
        }
        if (catalog_append(s, errstr, errstr_size) != 0)
            goto cleanup;
    }
    if (strcmp(origin, "current") == 0) {
        json_decref(current_shared);
        current_shared = json_incref(shared);
    }
    rc = 0;
cleanup:
    for (i = first; docs != NULL && i < end; i++)
        json_decref(docs[i - first]);
    free(docs);
    json_decref(shared);
    return rc;
}

int cv_avro_catalog_load(char *errstr, size_t errstr_size)
{
    size_t i, next;
    int rc = 0;

    pthread_mutex_lock(&catalog_lock);
    if (atomic_load(&catalog_loaded))
        goto cleanup;
    /* The current versions first, so that lookups meet them before any release. */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (i = 0; cv_schema_files[i].path != NULL && rc == 0; i = next) {
            const char *path = cv_schema_files[i].path;
            int current = dir_len(path) == strlen(current_dir) &&
                          strncmp(path, current_dir, strlen(current_dir)) == 0;
            next = i + 1;
            if (current == (pass == 0))
                rc = load_dir(i, &next, errstr, errstr_size);
        }
    }
    if (rc == 0 && atomic_load(&catalog_count) == 0) {
        snprintf(errstr, errstr_size, "no event schema is embedded");
        rc = -1;
    }
    if (rc != 0)
        catalog_clear();
    else
        atomic_store(&catalog_loaded, 1);
cleanup:
    pthread_mutex_unlock(&catalog_lock);
    return rc;
}

void cv_avro_catalog_free(void)
{
    pthread_mutex_lock(&catalog_lock);
    catalog_clear();
    atomic_store(&catalog_loaded, 0);
    pthread_mutex_unlock(&catalog_lock);
}

int cv_avro_catalog_add(struct cv_schema *s, char *errstr, size_t errstr_size)
{
    int rc;

    if (s == NULL) {
        snprintf(errstr, errstr_size, "no schema");
        return -1;
    }
    pthread_mutex_lock(&catalog_lock);
    if (!atomic_load(&catalog_loaded)) {
        snprintf(errstr, errstr_size, "the catalogue is not loaded");
        cv_avro_schema_destroy(s);
        rc = -1;
    } else {
        snprintf(s->origin, sizeof(s->origin), "added");
        rc = catalog_append(s, errstr, errstr_size);
    }
    pthread_mutex_unlock(&catalog_lock);
    return rc;
}

size_t cv_avro_catalog_count(void)
{
    return atomic_load(&catalog_count);
}

const struct cv_schema *cv_avro_catalog_get(size_t i)
{
    return i < atomic_load(&catalog_count) ? catalog[i] : NULL;
}

const json_t *cv_avro_catalog_shared(void)
{
    return atomic_load(&catalog_loaded) ? current_shared : NULL;
}

const struct cv_schema *cv_avro_schema_by_type(const char *type)
{
    size_t count = atomic_load(&catalog_count);
    int full;

    if (type == NULL)
        return NULL;
    full = strchr(type, '.') != NULL;
    for (size_t i = 0; i < count; i++) {
        const struct cv_schema *s = catalog[i];
        if (strcmp(s->origin, "current") == 0 && strcmp(full ? s->full_name : s->type, type) == 0)
            return s;
    }
    return NULL;
}

const struct cv_schema *cv_avro_schema_by_fingerprint(uint64_t fp)
{
    size_t count = atomic_load(&catalog_count);

    for (size_t i = 0; i < count; i++)
        if (catalog[i]->fingerprint == fp)
            return catalog[i];
    return NULL;
}

const struct cv_schema *cv_avro_schema_by_id(uint32_t confluent_id)
{
    size_t count = atomic_load(&catalog_count);

    for (size_t i = 0; i < count; i++) {
        uint32_t id;
        if (cv_avro_schema_get_id(catalog[i], &id) == 0 && id == confluent_id)
            return catalog[i];
    }
    return NULL;
}
