/* libFuzzer harness: a POST /orders body as the order service sees it. The bytes are parsed as
 * the HTTP layer does (jansson, duplicates rejected, any JSON value), then validated by the
 * service's own validate_order (its .c is included to reach the static function) and walked
 * with every cv_json_* getter at the paths the document holds. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "http_orders.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_NODES 256 /* paths tried per input: keeps each run short */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_order_request: %s\n", what);
    abort();
}

static void check_error(const struct cv_json_err *err)
{
    if (memchr(err->field, '\0', sizeof(err->field)) == NULL ||
        memchr(err->detail, '\0', sizeof(err->detail)) == NULL || err->detail[0] == '\0')
        die("a refusal without a message");
}

/* Code points of UTF-8 text, counted independently of json_util.c. */
static size_t code_points(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Bounds for the getters, picked by the path's length so that each path meets several. */
static const struct {
    size_t min, max;
} sizes[] = {{0, 0}, {1, 1}, {0, 64}, {1, 128}, {2, 3}, {0, SIZE_MAX}};
static const struct {
    long min, max;
} ranges[] = {{0, 0}, {1, 10000}, {LONG_MIN, LONG_MAX}, {-5, 5}, {0, 100000000L}};

/* Every getter on path, with results checked against what the path holds (v, or NULL if the
 * path is expected to lead nowhere). */
static void try_path(const json_t *root, const char *path, const json_t *v)
{
    static const char *const known[] = {"customer_id", "items", "sku", "quantity", NULL};
    struct cv_json_err err;
    size_t pick = strlen(path);
    size_t smin = sizes[pick % 6].min, smax = sizes[pick % 6].max;
    long rmin = ranges[pick % 5].min, rmax = ranges[pick % 5].max;
    int required = (int)(pick & 1), rc, b;
    const char *s;
    const json_t *j;
    long n;

    memset(&err, 0, sizeof(err));
    rc = cv_json_get_string(root, path, smin, smax, required, &s, &err);
    if (rc < 0)
        check_error(&err);
    if (rc == 1 && (!json_is_string(v) || s != json_string_value(v) || code_points(s) < smin ||
                    code_points(s) > smax || strlen(s) != json_string_length(v)))
        die("cv_json_get_string accepted a wrong value");
    memset(&err, 0, sizeof(err));
    rc = cv_json_get_int(root, path, rmin, rmax, required, &n, &err);
    if (rc < 0)
        check_error(&err);
    if (rc == 1 && (!json_is_integer(v) || n != json_integer_value(v) || n < rmin || n > rmax))
        die("cv_json_get_int accepted a wrong value");
    memset(&err, 0, sizeof(err));
    rc = cv_json_get_bool(root, path, required, &b, &err);
    if (rc < 0)
        check_error(&err);
    if (rc == 1 && (!json_is_boolean(v) || b != json_is_true(v)))
        die("cv_json_get_bool accepted a wrong value");
    memset(&err, 0, sizeof(err));
    rc = cv_json_get_array(root, path, smin, smax, required, &j, &err);
    if (rc < 0)
        check_error(&err);
    if (rc == 1 &&
        (j != v || !json_is_array(v) || json_array_size(v) < smin || json_array_size(v) > smax))
        die("cv_json_get_array accepted a wrong value");
    memset(&err, 0, sizeof(err));
    rc = cv_json_get_object(root, path, required, &j, &err);
    if (rc < 0)
        check_error(&err);
    if (rc == 1 && (j != v || !json_is_object(v)))
        die("cv_json_get_object accepted a wrong value");
    if (rc == 0 && v != NULL && !json_is_null(v))
        die("cv_json_get_object found nothing where there is a value");
    memset(&err, 0, sizeof(err));
    if (cv_json_only_fields(root, path, known, &err) < 0)
        check_error(&err);
}

/* Member names a path can spell: not empty, no '.' or '[', short enough for the path buffer. */
static int key_usable(const char *key)
{
    size_t len = strlen(key);
    return len > 0 && len < 64 && strpbrk(key, ".[") == NULL;
}

/* Tries path, and below it every member and element of v, depth first. */
static void walk(const json_t *root, char *path, size_t len, const json_t *v, int *budget)
{
    if (--*budget < 0)
        return;
    try_path(root, path, v);
    if (len + 96 > 1024)
        return;
    /* Paths that lead nowhere: past the end, a member of a non-object, an index too large. */
    snprintf(path + len, 1024 - len, "%s", "[18446744073709551616]");
    try_path(root, path, NULL);
    snprintf(path + len, 1024 - len, "%s", len ? ".absent" : "absent");
    try_path(root, path, json_is_object(v) ? json_object_get(v, "absent") : NULL);
    path[len] = '\0';
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            snprintf(path + len, 1024 - len, "[%zu]", i);
            walk(root, path, strlen(path), item, budget);
        }
    } else if (json_is_object(v)) {
        const char *key;
        json_t *member;
        json_object_foreach((json_t *)v, key, member)
        {
            if (!key_usable(key))
                continue;
            snprintf(path + len, 1024 - len, "%s%s", len ? "." : "", key);
            walk(root, path, strlen(path), member, budget);
        }
    }
    path[len] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cv_json_err err;
    json_error_t jerr;
    char path[1024] = "";
    int budget = MAX_NODES;
    long total = -1, again_total = -1;

    json_t *body =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (body == NULL)
        return 0;

    memset(&err, 0, sizeof(err));
    json_t *order = validate_order(body, &total, &err);
    if (order == NULL) {
        check_error(&err);
    } else {
        /* The normalised request is itself a valid request, normalised to itself: it is what
         * an Idempotency-Key replay is compared against. */
        json_t *again = validate_order(order, &again_total, &err);
        if (again == NULL || !json_equal(again, order) || again_total != total || total < 0)
            die("the normalised order does not validate to itself");
        json_decref(again);
        json_decref(order);
    }

    walk(body, path, 0, body, &budget);
    json_decref(body);
    return 0;
}
