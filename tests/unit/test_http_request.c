/* Unit tests of http_request.c: bounded body accumulation (chunked too), JSON bodies with their
 * problem replies, and the accessors for path parameters, query and headers. */
#include "http_fixture.h"
#include "runner.h"

/* Sends body as HTTP chunks of chunk bytes each, then the last chunk. */
static int send_chunked(struct conn *c, const char *body, size_t len, size_t chunk)
{
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        char size_line[32];
        snprintf(size_line, sizeof(size_line), "%zx\r\n", n);
        if (conn_send(c, size_line, strlen(size_line)) < 0 || conn_send(c, body + off, n) < 0 ||
            conn_send(c, "\r\n", 2) < 0)
            return -1;
    }
    return conn_send(c, "0\r\n\r\n", 5);
}

START_TEST(test_chunked_bodies)
{
    const char *hdr = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct reply r;

    /* Under the limit: accumulated across chunks. */
    char body[1600];
    memset(body, 'y', sizeof(body));
    struct conn *c = conn_open();
    conn_send_str(c, hdr);
    ck_assert_int_eq(send_chunked(c, body, 1000, 100), 0);
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"length\":1000,\"head\":\"yyyyyyyy\"}\n");
    reply_free(&r);
    conn_close(c);

    /* Over it without a Content-Length: 413 once the body has been read (and dropped). */
    c = conn_open();
    conn_send_str(c, hdr);
    ck_assert_int_eq(send_chunked(c, body, sizeof(body), 400), 0);
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    json_t *p = expect_problem(&r, 413);
    ck_assert_str_eq(reply_header(&r, "Connection"), "close");
    json_decref(p);
    reply_free(&r);
    conn_close(c);

    /* A body that goes on far past the limit: the connection is dropped without a reply. */
    size_t huge_len = 512 * 1024;
    char *huge = malloc(huge_len);
    memset(huge, 'z', huge_len);
    c = conn_open();
    conn_send_str(c, hdr);
    send_chunked(c, huge, huge_len, 16 * 1024); /* may fail midway: the server stops reading */
    ck_assert_int_eq(read_reply(c, &r, 0), -1);
    reply_free(&r);
    conn_close(c);
    free(huge);
}
END_TEST

START_TEST(test_json_body_errors)
{
    struct reply r;
    /* Wrong or missing media type. */
    post("/orders", "text/plain", "{}", &r);
    json_t *p = expect_problem(&r, 415);
    ck_assert_str_eq(jstr(p, "title"), "Unsupported Media Type");
    json_decref(p);
    reply_free(&r);
    post("/orders", NULL, "{}", &r);
    ck_assert_int_eq(r.status, 415);
    reply_free(&r);
    post("/orders", "application/jsonp", "{}", &r);
    ck_assert_int_eq(r.status, 415);
    reply_free(&r);

    /* Malformed: line and column. */
    post("/orders", "application/json", "{\"sku\": \"A\",\n  }", &r);
    p = expect_problem(&r, 400);
    ck_assert_str_eq(jstr(p, "title"), "Malformed JSON");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "line")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "column")), 3);
    ck_assert_msg(strncmp(jstr(p, "detail"), "line 2, column 3: ", 18) == 0, "%s",
                  jstr(p, "detail"));
    json_decref(p);
    reply_free(&r);

    /* Valid JSON, not an object. */
    post("/orders", "application/json", "[1]", &r);
    p = expect_problem(&r, 400);
    ck_assert_str_eq(jstr(p, "detail"), "expected a JSON object, got an array");
    json_decref(p);
    reply_free(&r);

    /* Empty body. */
    post("/orders", "application/json", "", &r);
    p = expect_problem(&r, 400);
    ck_assert_str_eq(jstr(p, "detail"), "the request body is empty");
    json_decref(p);
    reply_free(&r);
}
END_TEST

START_TEST(test_json_body_ok_and_validation)
{
    struct reply r;
    post("/orders", "Application/JSON; charset=utf-8", "{\"sku\":\"A-1\",\"quantity\":3}", &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(reply_header(&r, "Content-Type"), "application/json");
    ck_assert_str_eq(reply_header(&r, "Location"), "/orders/1");
    ck_assert_str_eq(r.body, "{\"sku\":\"A-1\",\"quantity\":3}\n");
    reply_free(&r);

    post("/orders", "application/json", "{\"sku\":\"A-1\",\"quantity\":0}", &r);
    json_t *p = expect_problem(&r, 422);
    ck_assert_str_eq(jstr(p, "title"), "Invalid order");
    ck_assert_str_eq(jstr(p, "field"), "quantity");
    ck_assert_str_eq(jstr(p, "detail"), "expected an integer in 1..100, got 0");
    json_t *param = json_array_get(json_object_get(p, "invalid-params"), 0);
    ck_assert_str_eq(jstr(param, "name"), "quantity");
    ck_assert_str_eq(jstr(param, "reason"), "expected an integer in 1..100, got 0");
    json_decref(p);
    reply_free(&r);

    /* Duplicate keys are rejected as malformed. */
    post("/orders", "application/json", "{\"sku\":\"A\",\"sku\":\"B\",\"quantity\":1}", &r);
    ck_assert_int_eq(r.status, 400);
    reply_free(&r);
}
END_TEST

START_TEST(test_params_query_headers)
{
    struct reply r;
    roundtrip("GET /orders/abc-1?verbose=yes&x=a%20b+c HTTP/1.1\r\nHost: t\r\n"
              "x-trace: t-1\r\n\r\n",
              &r);
    ck_assert_int_eq(r.status, 200);
    json_t *v = reply_json(&r);
    ck_assert_str_eq(jstr(v, "id"), "abc-1");
    ck_assert_str_eq(jstr(v, "verbose"), "yes");
    ck_assert_str_eq(jstr(v, "x"), "a b c");
    ck_assert_str_eq(jstr(v, "trace"), "t-1"); /* looked up as X-Trace */
    ck_assert_str_eq(jstr(v, "method"), "GET");
    ck_assert_str_eq(jstr(v, "path"), "/orders/abc-1");
    json_decref(v);
    reply_free(&r);

    /* Absent query and header are NULL; a percent-encoded segment is decoded. */
    roundtrip("GET /orders/caf%C3%A9 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    v = reply_json(&r);
    ck_assert_str_eq(jstr(v, "id"), "caf\xc3\xa9");
    ck_assert(json_is_null(json_object_get(v, "verbose")));
    ck_assert(json_is_null(json_object_get(v, "trace")));
    json_decref(v);
    reply_free(&r);

    roundtrip("POST /orders/o-9/cancel HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(r.body, "{\"id\":\"o-9\",\"cancelled\":true}\n");
    reply_free(&r);
}
END_TEST

static Suite *http_request_suite(void)
{
    Suite *s = suite_create("http_request");
    TCase *tc = tcase_create("request");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_chunked_bodies);
    tcase_add_test(tc, test_json_body_errors);
    tcase_add_test(tc, test_json_body_ok_and_validation);
    tcase_add_test(tc, test_params_query_headers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(http_request_suite());
}
