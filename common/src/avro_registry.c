/* The schema registry client: two calls of the Confluent-compatible API over libcurl,
 * POST /subjects/{subject}/versions to register and GET /schemas/ids/{id} to resolve, with the
 * ids kept in the catalogue so that each is asked for once per process. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cv/avro_registry.h"

/* Largest response body read (a schema with docs is a few KiB). */
#define MAX_RESPONSE (4 * 1024 * 1024)

struct cv_avro_registry {
    char *url; /* without a trailing slash */
    char *user;
    char *password;
    char *ca_file;
    long timeout_ms;
    /* Serialises lookups, so that an id is fetched and added once. */
    pthread_mutex_t lock;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

struct cv_avro_registry *cv_avro_registry_new(const struct cv_avro_registry_conf *conf,
                                              char *errstr, size_t errstr_size)
{
    const char *url = conf->url;
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        snprintf(errstr, errstr_size, "schema registry URL must start with http:// or https://");
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "libcurl: %s", curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    struct cv_avro_registry *reg = calloc(1, sizeof(*reg));
    if (!reg) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    reg->url = strdup(url);
    reg->user = dup_or_null(conf->user);
    reg->password = dup_or_null(conf->password);
    reg->ca_file = dup_or_null(conf->ca_file);
    if (!reg->url || (!reg->user && conf->user && *conf->user) ||
        (!reg->password && conf->password && *conf->password) ||
        (!reg->ca_file && conf->ca_file && *conf->ca_file)) {
        snprintf(errstr, errstr_size, "out of memory");
        free(reg->url);
        free(reg->user);
        free(reg->password);
        free(reg->ca_file);
        free(reg);
        return NULL;
    }
    size_t n = strlen(reg->url);
    while (n > 0 && reg->url[n - 1] == '/')
        reg->url[--n] = '\0';
    reg->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 5000;
    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

void cv_avro_registry_destroy(struct cv_avro_registry *reg)
{
    if (!reg)
        return;
    pthread_mutex_destroy(&reg->lock);
    free(reg->url);
    free(reg->user);
    if (reg->password) {
        memset(reg->password, 0, strlen(reg->password));
        free(reg->password);
    }
    free(reg->ca_file);
    free(reg);
}

int cv_avro_registry_subject(const char *topic, const struct cv_schema *s, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s-%s", topic, cv_avro_schema_full_name(s));
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

struct body {
    char *data;
    size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct body *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > MAX_RESPONSE)
        return 0; /* curl fails the transfer */
    char *p = realloc(b->data, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, ptr, n);
    b->len += n;
    p[b->len] = '\0';
    b->data = p;
    return n;
}

/* One request: method GET (body NULL) or POST (body JSON). On an HTTP answer returns 0 with
 * *status and *out (the parsed JSON body or NULL; caller json_decref's). Without one (no
 * connection, timeout, TLS failure) returns -1 with errstr. */
static int request(struct cv_avro_registry *reg, const char *path, const char *body, long *status,
                   json_t **out, char *errstr, size_t errstr_size)
{
    *out = NULL;
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(errstr, errstr_size, "libcurl: cannot make a handle");
        return -1;
    }
    char *url = NULL;
    struct body b = {NULL, 0};
    struct curl_slist *headers = NULL;
    int rc = -1;
    if (asprintf(&url, "%s%s", reg->url, path) < 0) {
        url = NULL;
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    headers = curl_slist_append(headers, "Accept: application/vnd.schemaregistry.v1+json, "
                                         "application/json");
    if (body)
        headers =
            curl_slist_append(headers, "Content-Type: application/vnd.schemaregistry.v1+json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    if (reg->user) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERNAME, reg->user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, reg->password ? reg->password : "");
    }
    if (reg->ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, reg->ca_file);
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        snprintf(errstr, errstr_size, "schema registry %s: %s", reg->url, curl_easy_strerror(cc));
        goto cleanup;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    if (b.data)
        *out = json_loadb(b.data, b.len, 0, NULL);
    rc = 0;
cleanup:
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    free(url);
    free(b.data);
    return rc;
}

static int status_transient(long status)
{
    return status >= 500 || status == 408 || status == 429;
}

/* errstr for an answer without the field asked for: the registry's own message when it gave
 * one. Returns whether to try again (a 200 without the field, or a transient status). */
static int unusable_answer(const char *what, long status, const json_t *reply, const char *field,
                           char *errstr, size_t errstr_size)
{
    if (status == 200) {
        snprintf(errstr, errstr_size, "%s: the answer has no %s", what, field);
        return 1;
    }
    const char *msg = json_string_value(json_object_get(reply, "message"));
    snprintf(errstr, errstr_size, "%s: HTTP %ld%s%s", what, status, msg ? ": " : "",
             msg ? msg : "");
    return status_transient(status);
}

/* %-encodes a subject for a URL path (topics and full names are [A-Za-z0-9._-], but say so
 * nowhere in the registry's rules). */
static void path_escape(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < size; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '_' || *p == '-') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* Keeps old_id readable after s moved to another id: a copy of s with the old id. */
static void keep_old_id(const struct cv_schema *s, uint32_t old_id)
{
    char errstr[256];
    struct cv_schema *copy = cv_avro_schema_new(cv_avro_schema_json(s), errstr, sizeof(errstr));
    if (!copy)
        return;
    cv_avro_schema_set_id(copy, old_id);
    cv_avro_catalog_add(copy, errstr, sizeof(errstr));
}

int cv_avro_registry_register(struct cv_avro_registry *reg, const char *subject,
                              const struct cv_schema *s, uint32_t *id, int *transient, char *errstr,
                              size_t errstr_size)
{
    int dummy;
    if (!transient)
        transient = &dummy;
    *transient = 0;
    char escaped[768], path[832];
    path_escape(subject, escaped, sizeof(escaped));
    snprintf(path, sizeof(path), "/subjects/%s/versions", escaped);
    json_t *req = json_pack("{s:s}", "schema", cv_avro_schema_json(s));
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    long status = 0;
    json_t *reply = NULL;
    int rc = -1;
    if (request(reg, path, body, &status, &reply, errstr, errstr_size) < 0) {
        *transient = 1;
        goto cleanup;
    }
    json_t *jid = json_object_get(reply, "id");
    if (status != 200 || !json_is_integer(jid) || json_integer_value(jid) < 0 ||
        json_integer_value(jid) > UINT32_MAX) {
        char what[900];
        snprintf(what, sizeof(what), "registering %s", subject);
        *transient = unusable_answer(what, status, reply, "id", errstr, errstr_size);
        goto cleanup;
    }
    uint32_t new_id = (uint32_t)json_integer_value(jid), old_id;
    pthread_mutex_lock(&reg->lock);
    if (cv_avro_schema_get_id(s, &old_id) == 0 && old_id != new_id)
        keep_old_id(s, old_id);
    cv_avro_schema_set_id(s, new_id);
    pthread_mutex_unlock(&reg->lock);
    if (id)
        *id = new_id;
    rc = 0;
cleanup:
    json_decref(reply);
    free(body);
    return rc;
}

const struct cv_schema *cv_avro_registry_lookup(struct cv_avro_registry *reg, uint32_t id,
                                                int *transient, char *errstr, size_t errstr_size)
{
    int dummy;
    if (!transient)
        transient = &dummy;
    *transient = 0;
    pthread_mutex_lock(&reg->lock);
    const struct cv_schema *found = cv_avro_schema_by_id(id);
    json_t *reply = NULL;
    if (found)
        goto cleanup;
    char path[64];
    snprintf(path, sizeof(path), "/schemas/ids/%u", id);
    long status = 0;
    if (request(reg, path, NULL, &status, &reply, errstr, errstr_size) < 0) {
        *transient = 1;
        goto cleanup;
    }
    const char *text = json_string_value(json_object_get(reply, "schema"));
    if (status != 200 || !text) {
        char what[64];
        snprintf(what, sizeof(what), "schema id %u", id);
        *transient = unusable_answer(what, status, reply, "schema", errstr, errstr_size);
        goto cleanup;
    }
    const char *type = json_string_value(json_object_get(reply, "schemaType"));
    if (type && strcmp(type, "AVRO") != 0) {
        snprintf(errstr, errstr_size, "schema id %u is %s, not Avro", id, type);
        goto cleanup;
    }
    char err2[256];
    struct cv_schema *s = cv_avro_schema_new(text, err2, sizeof(err2));
    if (!s) {
        snprintf(errstr, errstr_size, "schema id %u: %s", id, err2);
        goto cleanup;
    }
    /* A catalogue schema with the same canonical form and no id yet takes this one. */
    const struct cv_schema *same = cv_avro_schema_by_fingerprint(cv_avro_schema_fingerprint(s));
    if (same && cv_avro_schema_get_id(same, NULL) != 0) {
        cv_avro_schema_set_id(same, id);
        cv_avro_schema_destroy(s);
        found = same;
        goto cleanup;
    }
    cv_avro_schema_set_id(s, id);
    if (cv_avro_catalog_add(s, err2, sizeof(err2)) < 0) {
        snprintf(errstr, errstr_size, "schema id %u: %s", id, err2);
        goto cleanup;
    }
    found = cv_avro_schema_by_id(id);
cleanup:
    pthread_mutex_unlock(&reg->lock);
    json_decref(reply);
    return found;
}

int cv_avro_registry_prepare(struct cv_avro_registry *reg, const void *value, size_t len,
                             int *transient, char *errstr, size_t errstr_size)
{
    const unsigned char *p = value;
    if (transient)
        *transient = 0;
    if (!p || len < CV_AVRO_CONFLUENT_HEADER || p[0] != 0)
        return 0;
    uint32_t id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (cv_avro_schema_by_id(id))
        return 0;
    return cv_avro_registry_lookup(reg, id, transient, errstr, errstr_size) ? 0 : -1;
}
