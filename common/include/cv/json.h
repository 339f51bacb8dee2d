/* Typed, bounded reads of fields from a parsed JSON request (jansson), each producing a precise
 * problem that names the offending field, so that HTTP handlers stay short:
 *
 *     struct cv_json_err err;
 *     const char *sku;
 *     long qty;
 *     if (cv_json_get_string(body, "items[3].sku", 1, 64, 1, &sku, &err) < 0 ||
 *         cv_json_get_int(body, "items[3].quantity", 1, 1000, 1, &qty, &err) < 0)
 *         return cv_http_reply_problem(resp, 400, "Invalid order", err.detail, err.field);
 */
#ifndef CV_JSON_H
#define CV_JSON_H

#include <jansson.h>
#include <stddef.h>

/* field: the path of the offending value, e.g. "items[3].quantity" ("" for the document root);
 * detail: what is wrong with it, e.g. "expected an integer in 1..1000, got 0". */
struct cv_json_err {
    char field[128];
    char detail[256];
};

/* Every getter takes a path into obj: member names separated by '.', array elements as [n],
 * e.g. "customer.email" or "items[3].quantity" (member names themselves cannot contain '.' or
 * '['). A JSON null (or a NULL obj) counts as absent.
 *
 * Returns 1 when the value is present and valid (*out set), 0 when it is absent and !required
 * (*out untouched: set the default first), or -1 with err filled in (*out untouched): absent
 * and required, wrong type, out of bounds, or a parent on the path that is not an object/array.
 * Returned pointers borrow from obj and live as long as it does. */

/* A string of min_len..max_len characters (Unicode code points, not bytes) that contains no
 * NUL character. */
int cv_json_get_string(const json_t *obj, const char *path, size_t min_len, size_t max_len,
                       int required, const char **out, struct cv_json_err *err);

/* An integer (not a real like 2.0) in min..max. */
int cv_json_get_int(const json_t *obj, const char *path, long min, long max, int required,
                    long *out, struct cv_json_err *err);

/* true or false. */
int cv_json_get_bool(const json_t *obj, const char *path, int required, int *out,
                     struct cv_json_err *err);

/* An array of min_items..max_items elements. */
int cv_json_get_array(const json_t *obj, const char *path, size_t min_items, size_t max_items,
                      int required, const json_t **out, struct cv_json_err *err);

/* An object. */
int cv_json_get_object(const json_t *obj, const char *path, int required, const json_t **out,
                       struct cv_json_err *err);

/* Rejects members of the object at path that are not in known (a NULL-terminated list), naming
 * the first unknown one as path.member. Returns 0, or -1 with err filled in (also when path does
 * not lead to an object). */
int cv_json_only_fields(const json_t *obj, const char *path, const char *const *known,
                        struct cv_json_err *err);

/* Fills err (field copied from path, detail printf-formatted) for checks of the caller's own;
 * returns -1 so that it can end a validation function. */
int cv_json_error_set(struct cv_json_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Serializes value compactly ({"a":1}), members in insertion order. Returns a NUL-terminated
 * string the caller frees with free(), or NULL on failure. */
char *cv_json_dumps_compact(const json_t *value);

/* 1 if len bytes are text a jsonb string can hold: well-formed UTF-8 without NUL. */
int cv_json_is_text(const void *bytes, size_t len);

/* Lower-case hex of len bytes, NUL-terminated; caller frees. NULL if out of memory. */
char *cv_hex_encode(const void *bytes, size_t len);

/* bytes as a JSON value jsonb accepts: a string when cv_json_is_text, else {"hex": "..."}.
 * New reference, NULL if out of memory. */
json_t *cv_json_bytes(const void *bytes, size_t len);

/* Replaces, in every string inside value (a top-level string itself is left alone), each NUL
 * character by the six characters \u0000, which jsonb accepts. Returns how many strings
 * changed. Object keys are not touched (our Avro decoder refuses NUL in map keys). */
size_t cv_json_escape_nul(json_t *value);

#endif
