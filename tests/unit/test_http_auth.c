/* Unit tests of common/src/http_auth.c through a real server on 127.0.0.1: routes open, by
 * role and rate limited; 401 with its RFC 6750 challenge, 403, 429 with Retry-After; the
 * principal the handler sees. Tokens are HS256, signed here. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cv/http.h"
#include "cv/http_auth.h"
#include "jwt_fixture.h"
#include "runner.h"

static const unsigned char secret[] = "unit-test-secret-of-at-least-32-bytes!";

static void whoami(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    const struct cv_http_principal *who = cv_http_principal(req);
    cv_http_reply_json(resp, 200,
                       json_pack("{s:s?, s:i}", "sub", who ? who->sub : NULL, "roles",
                                 who ? (int)who->roles : -1));
}

static const struct cv_http_route routes[] = {
    {"GET", "/open", whoami, CV_HTTP_OPEN},
    {"GET", "/mine", whoami, CV_ROLE_CUSTOMER},
    {"PUT", "/stock", whoami, CV_ROLE_OPERATOR},
    {"POST", "/orders", whoami, CV_ROLE_CUSTOMER | CV_HTTP_RATE_LIMITED},
};

static struct cv_http_server *srv;
static struct cv_http_auth *auth;
static int port;

/* An HS256 token for sub with roles (a JSON array text) and exp now + ttl. Caller frees. */
static char *token(const char *sub, const char *roles, long ttl)
{
    char claims[512];
    snprintf(claims, sizeof(claims),
             "{\"iss\":\"unit\",\"aud\":\"conveyor\",\"sub\":\"%s\",\"roles\":%s,\"exp\":%ld}", sub,
             roles, (long)time(NULL) + ttl);
    return make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, "HS256", NULL, secret,
                      sizeof(secret) - 1);
}

/* Sends one request (Connection: close) and returns the whole reply (caller frees). */
static char *request(const char *method, const char *path, const char *bearer)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[4096];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s"
                     "Content-Length: 0\r\n\r\n",
                     method, path, bearer ? "Authorization: Bearer " : "", bearer ? bearer : "",
                     bearer ? "\r\n" : "");
    ck_assert_int_eq(send(fd, req, (size_t)n, 0), n);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = recv(fd, buf + len, cap - len - 1, 0)) > 0)
        len += (size_t)got;
    buf[len] = 0;
    close(fd);
    return buf;
}

static int status_of(const char *reply)
{
    int status = 0;
    sscanf(reply, "HTTP/1.1 %d", &status);
    return status;
}

static void setup(void)
{
    char errstr[256];
    struct cv_jwt_keys *keys = cv_jwt_keys_new();
    ck_assert_int_eq(
        cv_jwt_keys_add_hs256(keys, secret, sizeof(secret) - 1, NULL, errstr, sizeof(errstr)), 0);
    struct cv_http_auth_config ac = {.keys = keys,
                                     .issuer = "unit",
                                     .audience = "conveyor",
                                     .skew_s = 5,
                                     .rate_per_s = 0.5,
                                     .burst = 3};
    auth = cv_http_auth_new(&ac, errstr, sizeof(errstr));
    ck_assert_msg(auth != NULL, "%s", errstr);
    struct cv_http_config cfg = {.bind_address = "127.0.0.1", .threads = 2, .auth = auth};
    srv = cv_http_server_new(&cfg, routes, sizeof(routes) / sizeof(routes[0]), NULL, NULL, errstr,
                             sizeof(errstr));
    ck_assert_msg(srv != NULL, "%s", errstr);
    port = cv_http_server_port(srv);
}

static void teardown(void)
{
    cv_http_server_destroy(srv);
    cv_http_auth_destroy(auth);
}

START_TEST(test_open_and_builtin_routes)
{
    char *r = request("GET", "/open", NULL);
    ck_assert_int_eq(status_of(r), 200);
    ck_assert_ptr_nonnull(strstr(r, "\"roles\":-1")); /* no principal on an open route */
    free(r);
    r = request("GET", "/healthz", NULL);
    ck_assert_int_eq(status_of(r), 200);
    free(r);
}
END_TEST

START_TEST(test_401_challenges)
{
    char *r = request("GET", "/mine", NULL);
    ck_assert_int_eq(status_of(r), 401);
    ck_assert_ptr_nonnull(strstr(r, "WWW-Authenticate: Bearer realm=\"conveyor\"\r\n"));
    ck_assert_ptr_nonnull(strstr(r, "application/problem+json"));
    free(r);
    char *expired = token("alice", "[\"customer\"]", -60);
    r = request("GET", "/mine", expired);
    ck_assert_int_eq(status_of(r), 401);
    ck_assert_ptr_nonnull(strstr(r, "error=\"invalid_token\", error_description=\"expired\""));
    ck_assert_ptr_null(strstr(r, expired)); /* the token is not echoed */
    free(r);
    free(expired);
    r = request("GET", "/mine", "not-a-jwt");
    ck_assert_int_eq(status_of(r), 401);
    ck_assert_ptr_nonnull(strstr(r, "error_description=\"malformed token\""));
    free(r);
}
END_TEST

START_TEST(test_roles_and_principal)
{
    char *alice = token("alice", "[\"customer\"]", 600);
    char *r = request("GET", "/mine", alice);
    ck_assert_int_eq(status_of(r), 200);
    ck_assert_ptr_nonnull(strstr(r, "{\"sub\":\"alice\",\"roles\":1}"));
    free(r);
    r = request("PUT", "/stock", alice);
    ck_assert_int_eq(status_of(r), 403);
    ck_assert_ptr_nonnull(strstr(r, "error=\"insufficient_scope\""));
    free(r);
    char *op = token("op", "[\"operator\",\"auditor\",\"janitor\"]", 600);
    r = request("PUT", "/stock", op);
    ck_assert_int_eq(status_of(r), 200);
    ck_assert_ptr_nonnull(strstr(r, "\"roles\":6"));
    free(r);
    free(alice);
    free(op);
}
END_TEST

START_TEST(test_rate_limit)
{
    /* burst 3, then one every 2 s: the fourth at once is 429 with Retry-After 1 or 2. */
    char *t = token("hasty", "[\"customer\"]", 600);
    char *other = token("calm", "[\"customer\"]", 600);
    for (int i = 0; i < 3; i++) {
        char *r = request("POST", "/orders", t);
        ck_assert_int_eq(status_of(r), 200);
        free(r);
    }
    char *r = request("POST", "/orders", t);
    ck_assert_int_eq(status_of(r), 429);
    const char *ra = strstr(r, "Retry-After: ");
    ck_assert_ptr_nonnull(ra);
    int secs = atoi(ra + strlen("Retry-After: "));
    ck_assert(secs >= 1 && secs <= 2);
    free(r);
    r = request("GET", "/mine", t); /* other routes are not limited */
    ck_assert_int_eq(status_of(r), 200);
    free(r);
    r = request("POST", "/orders", other); /* nor other subjects */
    ck_assert_int_eq(status_of(r), 200);
    free(r);
    free(t);
    free(other);
}
END_TEST

START_TEST(test_config_refused)
{
    char errstr[256];
    struct cv_http_auth_config ac = {.keys = cv_jwt_keys_new(), .issuer = "i", .audience = "a"};
    ck_assert_ptr_null(cv_http_auth_new(&ac, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "no verification key configured");
    ck_assert_uint_eq(cv_http_auth_role("operator"), CV_ROLE_OPERATOR);
    ck_assert_uint_eq(cv_http_auth_role("root"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_auth");
    TCase *tc = tcase_create("http_auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_open_and_builtin_routes);
    tcase_add_test(tc, test_401_challenges);
    tcase_add_test(tc, test_roles_and_principal);
    tcase_add_test(tc, test_rate_limit);
    tcase_add_test(tc, test_config_refused);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
