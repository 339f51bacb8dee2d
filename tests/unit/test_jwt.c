/* Unit tests of common/src/jwt.c: RFC 7515's HS256 example, RS256 and ES256 tokens signed here
 * with libcrypto (keys made by the test, loaded from PEM and JWKS files), and the tokens an
 * attacker would send: alg none, HS256 keyed with the RSA public key, another key's kid,
 * tampered claims, wrong issuer or audience, expired, not yet valid, malformed. */
#include <check.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv/jwt.h"
#include "jwt_fixture.h"
#include "runner.h"

static char dir[] = "/tmp/cv-test-jwt-XXXXXX";
static EVP_PKEY *rsa_key, *rsa_1024, *ec_key;
static char rsa_pem[256], ec_pem[256], rsa_small_pem[256], jwks_path[256];
static char *rsa_pem_text; /* the RSA public key as PEM text: the confused HMAC key */
static const unsigned char hs_secret[] = "0123456789abcdef0123456789abcdef-local";
static const time_t NOW = 1700000000;
static const char RS_R1[] = "{\"alg\":\"RS256\",\"kid\":\"r1\"}";
static const char ES_E1[] = "{\"alg\":\"ES256\",\"kid\":\"e1\"}";

static char *bn_b64(EVP_PKEY *pkey, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    ck_assert_int_eq(EVP_PKEY_get_bn_param(pkey, param, &bn), 1);
    unsigned char buf[512];
    int len = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64url(buf, (size_t)len);
}

static void write_pem(EVP_PKEY *pkey, const char *path)
{
    BIO *bio = BIO_new_file(path, "w");
    ck_assert_ptr_nonnull(bio);
    ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, pkey), 1);
    BIO_free(bio);
}

static const char *const claims_ok =
    "{\"iss\":\"https://id.test\",\"aud\":\"conveyor\",\"sub\":\"alice\",\"exp\":1700000600}";
static const struct cv_jwt_expect expect = {
    .issuer = "https://id.test", .audience = "conveyor", .skew_s = 30, .now = NOW};

static struct cv_jwt_keys *keys_all(void)
{
    char errstr[256];
    struct cv_jwt_keys *keys = cv_jwt_keys_new();
    ck_assert_int_eq(cv_jwt_keys_add_jwks(keys, jwks_path, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(cv_jwt_keys_add_pem(keys, rsa_pem, NULL, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(
        cv_jwt_keys_add_hs256(keys, hs_secret, sizeof(hs_secret) - 1, NULL, errstr, sizeof(errstr)),
        0);
    return keys;
}

/* Verifies; returns 1 if accepted, else 0 with the reason in why. */
static int accepted(struct cv_jwt_keys *keys, const char *token, const struct cv_jwt_expect *e,
                    char *why, size_t why_size)
{
    json_t *claims = cv_jwt_verify(keys, token, e, why, why_size);
    json_decref(claims);
    return claims != NULL;
}

static void setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa_1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ck_assert(rsa_key && rsa_1024 && ec_key);
    snprintf(rsa_pem, sizeof(rsa_pem), "%s/rsa.pem", dir);
    snprintf(ec_pem, sizeof(ec_pem), "%s/ec.pem", dir);
    snprintf(rsa_small_pem, sizeof(rsa_small_pem), "%s/rsa1024.pem", dir);
    snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", dir);
    write_pem(rsa_key, rsa_pem);
    write_pem(ec_key, ec_pem);
    write_pem(rsa_1024, rsa_small_pem);
    FILE *f = fopen(rsa_pem, "r");
    rsa_pem_text = calloc(1, 4096);
    ck_assert_uint_gt(fread(rsa_pem_text, 1, 4095, f), 0);
    fclose(f);
    char *n = bn_b64(rsa_key, OSSL_PKEY_PARAM_RSA_N, 0);
    char *e = bn_b64(rsa_key, OSSL_PKEY_PARAM_RSA_E, 0);
    char *x = bn_b64(ec_key, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    char *y = bn_b64(ec_key, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    f = fopen(jwks_path, "w");
    fprintf(f,
            "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"alg\":\"RS256\","
            "\"n\":\"%s\",\"e\":\"%s\"},"
            "{\"kty\":\"EC\",\"kid\":\"e1\",\"use\":\"sig\",\"crv\":\"P-256\","
            "\"x\":\"%s\",\"y\":\"%s\"},"
            "{\"kty\":\"oct\",\"kid\":\"skipped\",\"k\":\"AAAA\"},"
            "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
            n, e, x, y);
    fclose(f);
    free(n);
    free(e);
    free(x);
    free(y);
}

static void teardown(void)
{
    unlink(rsa_pem);
    unlink(ec_pem);
    unlink(rsa_small_pem);
    unlink(jwks_path);
    rmdir(dir);
    strcpy(dir, "/tmp/cv-test-jwt-XXXXXX");
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(rsa_1024);
    EVP_PKEY_free(ec_key);
    free(rsa_pem_text);
}

START_TEST(test_rfc7515_hs256_example)
{
    /* RFC 7515 appendix A.1: the example JWS and its key. */
    static const char token[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    static const unsigned char k[] = {
        3,   35,  53, 75,  43,  15, 165, 188, 131, 126, 6,   101, 119, 123, 166, 143,
        90,  179, 40, 230, 240, 84, 201, 40,  169, 15,  132, 178, 210, 80,  46,  191,
        211, 251, 90, 146, 210, 6,  71,  239, 150, 138, 180, 195, 119, 98,  61,  34,
        61,  46,  33, 114, 5,   46, 79,  8,   192, 205, 154, 245, 103, 208, 128, 163};
    char why[128];
    struct cv_jwt_keys *keys = cv_jwt_keys_new();
    ck_assert_int_eq(cv_jwt_keys_add_hs256(keys, k, sizeof(k), NULL, why, sizeof(why)), 0);
    struct cv_jwt_expect e = {.issuer = "joe", .now = 1300819000};
    json_t *claims = cv_jwt_verify(keys, token, &e, why, sizeof(why));
    ck_assert_msg(claims != NULL, "%s", why);
    ck_assert(json_is_true(json_object_get(claims, "http://example.com/is_root")));
    json_decref(claims);
    e.now = 1300819380 + 31;
    ck_assert(!accepted(keys, token, &e, why, sizeof(why)));
    ck_assert_str_eq(why, "expired");
    e.skew_s = 60;
    ck_assert(accepted(keys, token, &e, why, sizeof(why)));
    e.issuer = "jane";
    ck_assert(!accepted(keys, token, &e, why, sizeof(why)));
    ck_assert_str_eq(why, "wrong issuer");
    cv_jwt_keys_destroy(keys);
}
END_TEST

START_TEST(test_each_algorithm)
{
    struct cv_jwt_keys *keys = keys_all();
    char why[128];
    char *rs = make_token(RS_R1, claims_ok, "RS256", rsa_key, NULL, 0);
    char *rs_nokid = make_token("{\"alg\":\"RS256\"}", claims_ok, "RS256", rsa_key, NULL, 0);
    char *es = make_token(ES_E1, claims_ok, "ES256", ec_key, NULL, 0);
    char *hs = make_token("{\"alg\":\"HS256\"}", claims_ok, "HS256", NULL, hs_secret,
                          sizeof(hs_secret) - 1);
    ck_assert_msg(accepted(keys, rs, &expect, why, sizeof(why)), "RS256: %s", why);
    ck_assert_msg(accepted(keys, rs_nokid, &expect, why, sizeof(why)), "RS256: %s", why);
    ck_assert_msg(accepted(keys, es, &expect, why, sizeof(why)), "ES256: %s", why);
    ck_assert_msg(accepted(keys, hs, &expect, why, sizeof(why)), "HS256: %s", why);
    /* Only the PEM ES256 key, no kid. */
    struct cv_jwt_keys *ec_only = cv_jwt_keys_new();
    ck_assert_int_eq(cv_jwt_keys_add_pem(ec_only, ec_pem, NULL, why, sizeof(why)), 0);
    char *es_nokid = make_token("{\"alg\":\"ES256\"}", claims_ok, "ES256", ec_key, NULL, 0);
    ck_assert_msg(accepted(ec_only, es_nokid, &expect, why, sizeof(why)), "%s", why);
    ck_assert(!accepted(ec_only, rs_nokid, &expect, why, sizeof(why)));
    cv_jwt_keys_destroy(ec_only);
    free(rs);
    free(rs_nokid);
    free(es);
    free(es_nokid);
    free(hs);
    cv_jwt_keys_destroy(keys);
}
END_TEST

START_TEST(test_forgeries)
{
    struct cv_jwt_keys *keys = keys_all();
    char why[128];
    /* alg none, with and without a kid. */
    char *none = make_token("{\"alg\":\"none\"}", claims_ok, "none", NULL, NULL, 0);
    ck_assert(!accepted(keys, none, &expect, why, sizeof(why)));
    ck_assert_str_eq(why, "no key accepts this token's algorithm");
    char *none_kid =
        make_token("{\"alg\":\"none\",\"kid\":\"r1\"}", claims_ok, "none", NULL, NULL, 0);
    ck_assert(!accepted(keys, none_kid, &expect, why, sizeof(why)));
    /* HS256 keyed with the RSA public key's PEM text: against the RSA key by kid, and without a
     * kid (then only the real HS256 secret is tried). */
    char *confused = make_token("{\"alg\":\"HS256\",\"kid\":\"r1\"}", claims_ok, "HS256", NULL,
                                (unsigned char *)rsa_pem_text, strlen(rsa_pem_text));
    ck_assert(!accepted(keys, confused, &expect, why, sizeof(why)));
    ck_assert_str_eq(why, "no key accepts this token's algorithm and key id");
    char *confused2 = make_token("{\"alg\":\"HS256\"}", claims_ok, "HS256", NULL,
                                 (unsigned char *)rsa_pem_text, strlen(rsa_pem_text));
    ck_assert(!accepted(keys, confused2, &expect, why, sizeof(why)));
    ck_assert_str_eq(why, "bad signature");
    /* An RS256 token naming the EC key's kid; a kid nobody has. */
    char *wrong_kid =
        make_token("{\"alg\":\"RS256\",\"kid\":\"e1\"}", claims_ok, "RS256", rsa_key, NULL, 0);
    ck_assert(!accepted(keys, wrong_kid, &expect, why, sizeof(why)));
    char *unknown_kid =
        make_token("{\"alg\":\"RS256\",\"kid\":\"zz\"}", claims_ok, "RS256", rsa_key, NULL, 0);
    ck_assert(!accepted(keys, unknown_kid, &expect, why, sizeof(why)));
    /* Claims changed after signing. */
    char *rs = make_token(RS_R1, claims_ok, "RS256", rsa_key, NULL, 0);
    char *other = make_token("{\"alg\":\"RS256\",\"kid\":\"r1\"}",
                             "{\"iss\":\"https://id.test\",\"aud\":\"conveyor\",\"sub\":\"bob\","
                             "\"exp\":1700000600}",
                             "RS256", rsa_key, NULL, 0);
    char *dot1 = strchr(rs, '.'), *dot2 = strrchr(rs, '.');
    char *odot1 = strchr(other, '.'), *odot2 = strrchr(other, '.');
    char spliced[4096];
    snprintf(spliced, sizeof(spliced), "%.*s%.*s%s", (int)(dot1 - rs), rs, (int)(odot2 - odot1),
             odot1, dot2);
    ck_assert(!accepted(keys, spliced, &expect, why, sizeof(why)));
    ck_assert_str_eq(why, "bad signature");
    /* A crit header names an extension nobody here understands: refused. */
    char *crit = make_token("{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"x\"],\"x\":1}",
                            claims_ok, "RS256", rsa_key, NULL, 0);
    ck_assert(!accepted(keys, crit, &expect, why, sizeof(why)));
    free(none);
    free(none_kid);
    free(confused);
    free(confused2);
    free(wrong_kid);
    free(unknown_kid);
    free(rs);
    free(other);
    free(crit);
    cv_jwt_keys_destroy(keys);
}
END_TEST

START_TEST(test_claims)
{
    struct cv_jwt_keys *keys = keys_all();
    char why[128];
    static const struct {
        const char *claims;
        int ok;
        const char *why;
    } cases[] = {
        {"{\"iss\":\"https://id.test\",\"aud\":\"conveyor\",\"exp\":1699999980}", 1, NULL},
        {"{\"iss\":\"https://id.test\",\"aud\":\"conveyor\",\"exp\":1699999960}", 0, "expired"},
        {"{\"iss\":\"https://id.test\",\"aud\":\"conveyor\"}", 0, "no exp claim"},
        {"{\"iss\":\"https://id.test\",\"aud\":\"conveyor\",\"exp\":\"soon\"}", 0, "no exp claim"},
        {"{\"iss\":\"https://id.test\",\"aud\":\"conveyor\",\"exp\":1700000600,\"nbf\":1700000020}",
         1, NULL},
        {"{\"iss\":\"https://id.test\",\"aud\":\"conveyor\",\"exp\":1700000600,\"nbf\":1700000040}",
         0, "not valid yet (nbf)"},
        {"{\"iss\":\"https://other\",\"aud\":\"conveyor\",\"exp\":1700000600}", 0, "wrong issuer"},
        {"{\"aud\":\"conveyor\",\"exp\":1700000600}", 0, "wrong issuer"},
        {"{\"iss\":\"https://id.test\",\"aud\":\"billing\",\"exp\":1700000600}", 0,
         "wrong audience"},
        {"{\"iss\":\"https://id.test\",\"aud\":[\"billing\",\"conveyor\"],\"exp\":1700000600}", 1,
         NULL},
        {"{\"iss\":\"https://id.test\",\"aud\":[\"billing\"],\"exp\":1700000600}", 0,
         "wrong audience"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = make_token("{\"alg\":\"HS256\"}", cases[i].claims, "HS256", NULL, hs_secret,
                             sizeof(hs_secret) - 1);
        int ok = accepted(keys, t, &expect, why, sizeof(why));
        ck_assert_msg(ok == cases[i].ok, "case %zu: %s", i, ok ? "accepted" : why);
        if (!ok)
            ck_assert_str_eq(why, cases[i].why);
        free(t);
    }
    cv_jwt_keys_destroy(keys);
}
END_TEST

START_TEST(test_malformed)
{
    struct cv_jwt_keys *keys = keys_all();
    char why[128];
    char *good = make_token("{\"alg\":\"HS256\"}", claims_ok, "HS256", NULL, hs_secret,
                            sizeof(hs_secret) - 1);
    ck_assert(accepted(keys, good, &expect, why, sizeof(why)));
    char buf[4096];
    const char *bad[] = {"", ".", "..", "a.b", "a.b.c.d", "!!.##.$$"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert(!accepted(keys, bad[i], &expect, why, sizeof(why)));
        ck_assert_str_eq(why, "malformed token");
    }
    snprintf(buf, sizeof(buf), "%s.x", good); /* four parts */
    ck_assert(!accepted(keys, buf, &expect, why, sizeof(why)));
    snprintf(buf, sizeof(buf), "%s=", good); /* padding is not base64url */
    ck_assert(!accepted(keys, buf, &expect, why, sizeof(why)));
    char *dup = make_token("{\"alg\":\"HS256\",\"alg\":\"none\"}", claims_ok, "HS256", NULL,
                           hs_secret, sizeof(hs_secret) - 1);
    ck_assert(!accepted(keys, dup, &expect, why, sizeof(why)));
    ck_assert_str_eq(why, "malformed token");
    char *array = make_token("[1]", claims_ok, "HS256", NULL, hs_secret, sizeof(hs_secret) - 1);
    ck_assert(!accepted(keys, array, &expect, why, sizeof(why)));
    char *huge = calloc(1, 9000);
    memset(huge, 'A', 8999);
    ck_assert(!accepted(keys, huge, &expect, why, sizeof(why)));
    free(huge);
    free(dup);
    free(array);
    free(good);
    cv_jwt_keys_destroy(keys);
}
END_TEST

START_TEST(test_key_loading)
{
    char why[256];
    struct cv_jwt_keys *keys = cv_jwt_keys_new();
    ck_assert_int_eq(cv_jwt_keys_add_pem(keys, rsa_small_pem, NULL, why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "RSA key shorter than 2048 bits"));
    ck_assert_int_eq(cv_jwt_keys_add_pem(keys, "/nonexistent.pem", NULL, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "/nonexistent.pem: cannot open");
    ck_assert_int_eq(cv_jwt_keys_add_pem(keys, jwks_path, NULL, why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "not a PEM public key"));
    ck_assert_int_eq(
        cv_jwt_keys_add_hs256(keys, (const unsigned char *)"short", 5, NULL, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "HS256 secret shorter than 32 bytes");
    ck_assert_int_eq(cv_jwt_keys_add_jwks(keys, jwks_path, why, sizeof(why)), 0);
    ck_assert_uint_eq(cv_jwt_keys_count(keys), 2); /* oct and enc keys skipped */
    ck_assert_int_eq(cv_jwt_keys_add_jwks(keys, rsa_pem, why, sizeof(why)), -1);
    cv_jwt_keys_destroy(keys);
    cv_jwt_keys_destroy(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("jwt");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rfc7515_hs256_example);
    tcase_add_test(tc, test_each_algorithm);
    tcase_add_test(tc, test_forgeries);
    tcase_add_test(tc, test_claims);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_key_loading);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
