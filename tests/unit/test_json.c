/* Unit tests of the JSON validation helpers: each getter's success, absence and error cases,
 * and that every error names the exact path of the offending value. */
#include "cv/json.h"

#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

static json_t *doc;
static struct cv_json_err err;

static void setup(void)
{
    json_error_t jerr;
    /* JSON_ALLOW_NUL so that the NUL check of cv_json_get_string can be reached. */
    doc = json_loads("{\"name\":\"Ada\",\"empty\":\"\",\"nul\":\"a\\u0000b\","
                     "\"accents\":\"\xc3\xa9t\xc3\xa9\","
                     "\"qty\":3,\"big\":99999999999,\"ratio\":2.5,\"flag\":true,\"nothing\":null,"
                     "\"customer\":{\"email\":\"a@b.c\"},"
                     "\"items\":[{\"sku\":\"A-1\",\"quantity\":2},{\"sku\":\"B-2\",\"quantity\":0},"
                     "\"oops\"]}",
                     JSON_ALLOW_NUL, &jerr);
    ck_assert_msg(doc != NULL, "fixture: %s", jerr.text);
    memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
    json_decref(doc);
}

START_TEST(test_string_ok_and_bounds)
{
    const char *s = NULL;
    ck_assert_int_eq(cv_json_get_string(doc, "name", 1, 10, 1, &s, &err), 1);
    ck_assert_str_eq(s, "Ada");
    ck_assert_int_eq(cv_json_get_string(doc, "customer.email", 3, 254, 1, &s, &err), 1);
    ck_assert_str_eq(s, "a@b.c");
    /* Length counts characters, not bytes: "été" is 3 characters in 5 bytes. */
    ck_assert_int_eq(cv_json_get_string(doc, "accents", 3, 3, 1, &s, &err), 1);

    ck_assert_int_eq(cv_json_get_string(doc, "name", 4, 10, 1, &s, &err), -1);
    ck_assert_str_eq(err.field, "name");
    ck_assert_str_eq(err.detail, "expected a string of 4..10 characters, got 3");
    ck_assert_int_eq(cv_json_get_string(doc, "empty", 1, SIZE_MAX, 1, &s, &err), -1);
    ck_assert_str_eq(err.detail, "expected a string of at least 1 characters, got 0");
    ck_assert_int_eq(cv_json_get_string(doc, "name", 0, 2, 1, &s, &err), -1);
    ck_assert_str_eq(err.detail, "expected a string of at most 2 characters, got 3");
}
END_TEST

START_TEST(test_string_errors_name_path)
{
    const char *s = "untouched";
    ck_assert_int_eq(cv_json_get_string(doc, "qty", 1, 10, 1, &s, &err), -1);
    ck_assert_str_eq(err.field, "qty");
    ck_assert_str_eq(err.detail, "expected a string of 1..10 characters, got an integer");
    ck_assert_str_eq(s, "untouched");

    ck_assert_int_eq(cv_json_get_string(doc, "nul", 0, 10, 1, &s, &err), -1);
    ck_assert_str_eq(err.field, "nul");
    ck_assert_str_eq(err.detail, "must not contain NUL characters");

    ck_assert_int_eq(cv_json_get_string(doc, "items[1].quantity", 1, 10, 1, &s, &err), -1);
    ck_assert_str_eq(err.field, "items[1].quantity");
}
END_TEST

START_TEST(test_absent_optional_and_required)
{
    const char *s = "default";
    long n = 42;
    ck_assert_int_eq(cv_json_get_string(doc, "missing", 1, 10, 0, &s, &err), 0);
    ck_assert_str_eq(s, "default");
    ck_assert_int_eq(cv_json_get_int(doc, "nothing", 1, 10, 0, &n, &err), 0); /* null = absent */
    ck_assert_int_eq(n, 42);
    ck_assert_int_eq(cv_json_get_int(doc, "customer.age", 1, 10, 0, &n, &err), 0);

    ck_assert_int_eq(cv_json_get_string(doc, "missing", 1, 10, 1, &s, &err), -1);
    ck_assert_str_eq(err.field, "missing");
    ck_assert_str_eq(err.detail, "required");
    ck_assert_int_eq(cv_json_get_int(doc, "nothing", 1, 10, 1, &n, &err), -1);
    ck_assert_str_eq(err.field, "nothing");
    ck_assert_int_eq(cv_json_get_int(doc, "items[7].quantity", 1, 10, 1, &n, &err), -1);
    ck_assert_str_eq(err.field, "items[7].quantity");
    ck_assert_str_eq(err.detail, "required");
}
END_TEST

START_TEST(test_int)
{
    long n = 0;
    ck_assert_int_eq(cv_json_get_int(doc, "items[0].quantity", 1, 1000, 1, &n, &err), 1);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(cv_json_get_int(doc, "big", LONG_MIN, LONG_MAX, 1, &n, &err), 1);
    ck_assert_int_eq(n, 99999999999L);

    ck_assert_int_eq(cv_json_get_int(doc, "items[1].quantity", 1, 1000, 1, &n, &err), -1);
    ck_assert_str_eq(err.field, "items[1].quantity");
    ck_assert_str_eq(err.detail, "expected an integer in 1..1000, got 0");
    ck_assert_int_eq(cv_json_get_int(doc, "ratio", 1, 1000, 1, &n, &err), -1);
    ck_assert_str_eq(err.field, "ratio");
    ck_assert_str_eq(err.detail, "expected an integer in 1..1000, got 2.5");
    ck_assert_int_eq(cv_json_get_int(doc, "name", 1, 1000, 1, &n, &err), -1);
    ck_assert_str_eq(err.detail, "expected an integer in 1..1000, got a string");
    ck_assert_int_eq(cv_json_get_int(doc, "big", 0, 100, 1, &n, &err), -1);
    ck_assert_str_eq(err.detail, "expected an integer in 0..100, got 99999999999");
}
END_TEST

START_TEST(test_bool)
{
    int b = 0;
    ck_assert_int_eq(cv_json_get_bool(doc, "flag", 1, &b, &err), 1);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(cv_json_get_bool(doc, "qty", 1, &b, &err), -1);
    ck_assert_str_eq(err.field, "qty");
    ck_assert_str_eq(err.detail, "expected true or false, got an integer");
}
END_TEST

START_TEST(test_array_and_object)
{
    const json_t *items = NULL, *customer = NULL;
    ck_assert_int_eq(cv_json_get_array(doc, "items", 1, 100, 1, &items, &err), 1);
    ck_assert_uint_eq(json_array_size(items), 3);
    ck_assert_int_eq(cv_json_get_array(doc, "items", 1, 2, 1, &items, &err), -1);
    ck_assert_str_eq(err.field, "items");
    ck_assert_str_eq(err.detail, "expected an array of 1..2 items, got 3");
    ck_assert_int_eq(cv_json_get_array(doc, "customer", 0, 2, 1, &items, &err), -1);
    ck_assert_str_eq(err.detail, "expected an array of at most 2 items, got an object");

    ck_assert_int_eq(cv_json_get_object(doc, "customer", 1, &customer, &err), 1);
    ck_assert_ptr_eq(customer, json_object_get(doc, "customer"));
    ck_assert_int_eq(cv_json_get_object(doc, "items[2]", 1, &customer, &err), -1);
    ck_assert_str_eq(err.field, "items[2]");
    ck_assert_str_eq(err.detail, "expected an object, got a string");
    /* The root itself. */
    ck_assert_int_eq(cv_json_get_object(doc, "", 1, &customer, &err), 1);
    ck_assert_ptr_eq(customer, doc);
}
END_TEST

START_TEST(test_wrong_parent_names_the_parent)
{
    const char *s;
    /* items[2] is a string, so items[2].sku cannot exist: the problem is items[2]. */
    ck_assert_int_eq(cv_json_get_string(doc, "items[2].sku", 1, 10, 1, &s, &err), -1);
    ck_assert_str_eq(err.field, "items[2]");
    ck_assert_str_eq(err.detail, "expected an object, got a string");
    ck_assert_int_eq(cv_json_get_string(doc, "name[0]", 1, 10, 1, &s, &err), -1);
    ck_assert_str_eq(err.field, "name");
    ck_assert_str_eq(err.detail, "expected an array, got a string");
    ck_assert_int_eq(cv_json_get_string(doc, "customer[0]", 1, 10, 1, &s, &err), -1);
    ck_assert_str_eq(err.field, "customer");
    ck_assert_str_eq(err.detail, "expected an array, got an object");
}
END_TEST

START_TEST(test_only_fields)
{
    static const char *const item_fields[] = {"sku", "quantity", NULL};
    static const char *const top_fields[] = {"name", NULL};
    ck_assert_int_eq(cv_json_only_fields(doc, "items[0]", item_fields, &err), 0);
    ck_assert_int_eq(cv_json_only_fields(doc, "", top_fields, &err), -1);
    ck_assert_str_eq(err.field, "empty");
    ck_assert_str_eq(err.detail, "unknown field");
    static const char *const just_sku[] = {"sku", NULL};
    ck_assert_int_eq(cv_json_only_fields(doc, "items[1]", just_sku, &err), -1);
    ck_assert_str_eq(err.field, "items[1].quantity");
    ck_assert_int_eq(cv_json_only_fields(doc, "items[2]", just_sku, &err), -1);
    ck_assert_str_eq(err.field, "items[2]");
    ck_assert_str_eq(err.detail, "expected an object, got a string");
}
END_TEST

START_TEST(test_error_set_and_null_err)
{
    ck_assert_int_eq(cv_json_error_set(&err, "items[0].sku", "unknown SKU %s", "A-1"), -1);
    ck_assert_str_eq(err.field, "items[0].sku");
    ck_assert_str_eq(err.detail, "unknown SKU A-1");
    /* err may be NULL when the caller only wants the verdict. */
    long n;
    ck_assert_int_eq(cv_json_get_int(doc, "name", 0, 1, 1, &n, NULL), -1);
    ck_assert_int_eq(cv_json_get_int(doc, "items[2].x", 0, 1, 1, &n, NULL), -1);
}
END_TEST

START_TEST(test_dumps_compact)
{
    json_t *v = json_pack("{s:i, s:[s, b]}", "b", 1, "a", "x", 0);
    char *text = cv_json_dumps_compact(v);
    ck_assert_str_eq(text, "{\"b\":1,\"a\":[\"x\",false]}");
    free(text);
    json_decref(v);
}
END_TEST

START_TEST(test_bad_path_aborts)
{
    long n;
    cv_json_get_int(doc, "items[x]", 0, 1, 1, &n, &err);
}
END_TEST

/* Bytes on their way into jsonb: text only when UTF-8 without NUL, else hex. */
START_TEST(test_bytes_for_jsonb)
{
    ck_assert(cv_json_is_text("plain", 5));
    ck_assert(cv_json_is_text("\xc3\xa9t\xc3\xa9", 5));
    ck_assert(cv_json_is_text("", 0));
    ck_assert(!cv_json_is_text("a\0b", 3));             /* NUL */
    ck_assert(!cv_json_is_text("\xff\xfe", 2));         /* not UTF-8 */
    ck_assert(!cv_json_is_text("\xc0\xaf", 2));         /* overlong */
    ck_assert(!cv_json_is_text("\xed\xa0\x80", 3));     /* surrogate */
    ck_assert(!cv_json_is_text("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    ck_assert(!cv_json_is_text("\xc3", 1));             /* cut short */
    json_t *v = cv_json_bytes("a\0\xff", 3);
    ck_assert_str_eq(json_string_value(json_object_get(v, "hex")), "6100ff");
    json_decref(v);
    v = cv_json_bytes("ok", 2);
    ck_assert_str_eq(json_string_value(v), "ok");
    json_decref(v);
    char *hex = cv_hex_encode("\x01\xab", 2);
    ck_assert_str_eq(hex, "01ab");
    free(hex);
}
END_TEST

/* NUL characters inside strings, at any depth, become the text \u0000 jsonb accepts. */
START_TEST(test_escape_nul)
{
    json_t *nested =
        json_pack("{s:s%, s:[s, s%], s:{s:s%}, s:i}", "a", "x\0y", (size_t)3, "list", "clean", "\0",
                  (size_t)1, "obj", "deep", "p\0q\0", (size_t)4, "n", 1);
    ck_assert_uint_eq(cv_json_escape_nul(nested), 3);
    char *text = json_dumps(nested, JSON_COMPACT);
    ck_assert_str_eq(text, "{\"a\":\"x\\\\u0000y\",\"list\":[\"clean\",\"\\\\u0000\"],"
                           "\"obj\":{\"deep\":\"p\\\\u0000q\\\\u0000\"},\"n\":1}");
    free(text);
    ck_assert_uint_eq(cv_json_escape_nul(nested), 0);
    json_decref(nested);
}
END_TEST

static Suite *json_suite(int with_misuse)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("getters");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_string_ok_and_bounds);
    tcase_add_test(tc, test_string_errors_name_path);
    tcase_add_test(tc, test_absent_optional_and_required);
    tcase_add_test(tc, test_int);
    tcase_add_test(tc, test_bool);
    tcase_add_test(tc, test_array_and_object);
    tcase_add_test(tc, test_wrong_parent_names_the_parent);
    tcase_add_test(tc, test_only_fields);
    tcase_add_test(tc, test_error_set_and_null_err);
    tcase_add_test(tc, test_dumps_compact);
    tcase_add_test(tc, test_bytes_for_jsonb);
    tcase_add_test(tc, test_escape_nul);
    if (with_misuse)
        tcase_add_test_raise_signal(tc, test_bad_path_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Under CK_FORK=no an abort would end the whole run: leave that test out. */
    const char *fork_env = getenv("CK_FORK");
    return tu_run_suite(json_suite(!(fork_env && strcmp(fork_env, "no") == 0)));
}
