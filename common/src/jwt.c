/* JWT verification on libcrypto: base64url, the JOSE header, one pinned algorithm per key
 * (RS256, ES256 or HS256), the signature, then the registered claims. Nothing here logs: reasons
 * go back in errstr and never quote the token or a key. */
#include "cv/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKEN_BYTES 8192
#define MAX_KEYS 64

enum jwt_alg { ALG_RS256, ALG_ES256, ALG_HS256 };
static const char *const alg_names[] = {"RS256", "ES256", "HS256"};

struct jwt_key {
    enum jwt_alg alg;
    char *kid;             /* NULL: matched by algorithm only */
    EVP_PKEY *pkey;        /* RS256, ES256 */
    unsigned char *secret; /* HS256 */
    size_t secret_len;
};

struct cv_jwt_keys {
    struct jwt_key keys[MAX_KEYS];
    size_t n;
};

struct cv_jwt_keys *cv_jwt_keys_new(void)
{
    return calloc(1, sizeof(struct cv_jwt_keys));
}

void cv_jwt_keys_destroy(struct cv_jwt_keys *keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < keys->n; i++) {
        free(keys->keys[i].kid);
        EVP_PKEY_free(keys->keys[i].pkey);
        if (keys->keys[i].secret)
            OPENSSL_cleanse(keys->keys[i].secret, keys->keys[i].secret_len);
        free(keys->keys[i].secret);
    }
    free(keys);
}

size_t cv_jwt_keys_count(const struct cv_jwt_keys *keys)
{
    return keys ? keys->n : 0;
}

/* Takes ownership of pkey and secret, also on failure. */
static int add_key(struct cv_jwt_keys *keys, enum jwt_alg alg, const char *kid, EVP_PKEY *pkey,
                   unsigned char *secret, size_t secret_len, char *errstr, size_t errstr_size)
{
    if (keys->n == MAX_KEYS) {
        snprintf(errstr, errstr_size, "more than %d keys", MAX_KEYS);
        EVP_PKEY_free(pkey);
        free(secret);
        return -1;
    }
    char *kid_copy = kid ? strdup(kid) : NULL;
    if (kid && !kid_copy) {
        snprintf(errstr, errstr_size, "out of memory");
        EVP_PKEY_free(pkey);
        free(secret);
        return -1;
    }
    struct jwt_key *k = &keys->keys[keys->n++];
    k->alg = alg;
    k->kid = kid_copy;
    k->pkey = pkey;
    k->secret = secret;
    k->secret_len = secret_len;
    return 0;
}

/* The one algorithm a public key may verify: RSA (2048 bits or more) RS256, EC P-256 ES256. */
static int pkey_alg(EVP_PKEY *pkey, enum jwt_alg *alg, char *errstr, size_t errstr_size)
{
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(pkey) < 2048) {
            snprintf(errstr, errstr_size, "RSA key shorter than 2048 bits");
            return -1;
        }
        *alg = ALG_RS256;
        return 0;
    }
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
        char group[64] = "";
        size_t len = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &len) == 1 &&
            (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
            *alg = ALG_ES256;
            return 0;
        }
        snprintf(errstr, errstr_size, "EC key not on P-256");
        return -1;
    }
    snprintf(errstr, errstr_size, "neither an RSA nor an EC public key");
    return -1;
}

int cv_jwt_keys_add_pem(struct cv_jwt_keys *keys, const char *path, const char *kid, char *errstr,
                        size_t errstr_size)
{
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        snprintf(errstr, errstr_size, "%s: cannot open", path);
        return -1;
    }
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (pkey == NULL) {
        snprintf(errstr, errstr_size, "%s: not a PEM public key", path);
        return -1;
    }
    enum jwt_alg alg;
    char why[128];
    if (pkey_alg(pkey, &alg, why, sizeof(why)) < 0) {
        snprintf(errstr, errstr_size, "%s: %s", path, why);
        EVP_PKEY_free(pkey);
        return -1;
    }
    return add_key(keys, alg, kid, pkey, NULL, 0, errstr, errstr_size);
}

int cv_jwt_keys_add_hs256(struct cv_jwt_keys *keys, const unsigned char *secret, size_t len,
                          const char *kid, char *errstr, size_t errstr_size)
{
    if (len < 32) {
        snprintf(errstr, errstr_size, "HS256 secret shorter than 32 bytes");
        return -1;
    }
    unsigned char *copy = malloc(len);
    if (copy == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    memcpy(copy, secret, len);
    return add_key(keys, ALG_HS256, kid, NULL, copy, len, errstr, errstr_size);
}

/* ---- base64url (RFC 4648 section 5, no padding) ---- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes len characters of s into a malloc'd buffer (caller frees, NUL-terminated for JSON);
 * NULL for a character outside the alphabet or an impossible length. */
static unsigned char *b64url_decode(const char *s, size_t len, size_t *out_len)
{
    if (len % 4 == 1)
        return NULL;
    unsigned char *out = malloc(len * 3 / 4 + 3);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) { /* non-canonical trailing bits */
        free(out);
        return NULL;
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

/* ---- JWKS ---- */

static BIGNUM *jwk_bn(json_t *jwk, const char *name)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    size_t len;
    unsigned char *raw = s ? b64url_decode(s, strlen(s), &len) : NULL;
    if (raw == NULL)
        return NULL;
    BIGNUM *bn = BN_bin2bn(raw, (int)len, NULL);
    free(raw);
    return bn;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *jwk_rsa(json_t *jwk)
{
    BIGNUM *n = jwk_bn(jwk, "n"), *e = jwk_bn(jwk, "e");
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
        pkey = pkey_from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *jwk_ec(json_t *jwk)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    const char *xs = json_string_value(json_object_get(jwk, "x"));
    const char *ys = json_string_value(json_object_get(jwk, "y"));
    if (crv == NULL || strcmp(crv, "P-256") != 0 || xs == NULL || ys == NULL)
        return NULL;
    size_t xl = 0, yl = 0;
    unsigned char *x = b64url_decode(xs, strlen(xs), &xl);
    unsigned char *y = b64url_decode(ys, strlen(ys), &yl);
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (x && y && xl == 32 && yl == 32 && bld) {
        unsigned char point[65];
        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1, x, 32);
        memcpy(point + 33, y, 32);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ==
                1 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) ==
                1)
            pkey = pkey_from_params("EC", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

int cv_jwt_keys_add_jwks(struct cv_jwt_keys *keys, const char *path, char *errstr,
                         size_t errstr_size)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(errstr, errstr_size, "%s: not JSON (line %d)", path, jerr.line);
        return -1;
    }
    int rc = -1;
    json_t *arr = json_object_get(doc, "keys");
    if (!json_is_array(arr)) {
        snprintf(errstr, errstr_size, "%s: no \"keys\" array", path);
        goto cleanup;
    }
    size_t i;
    json_t *jwk;
    json_array_foreach(arr, i, jwk)
    {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *use = json_string_value(json_object_get(jwk, "use"));
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        const char *alg = json_string_value(json_object_get(jwk, "alg"));
        if (kty == NULL || (use && strcmp(use, "sig") != 0))
            continue;
        EVP_PKEY *pkey = NULL;
        if (strcmp(kty, "RSA") == 0)
            pkey = jwk_rsa(jwk);
        else if (strcmp(kty, "EC") == 0)
            pkey = jwk_ec(jwk);
        else
            continue; /* "oct" keys never come from a published key set */
        enum jwt_alg a;
        char why[128] = "unusable key";
        if (pkey == NULL || pkey_alg(pkey, &a, why, sizeof(why)) < 0) {
            snprintf(errstr, errstr_size, "%s: key %zu: %s", path, i, why);
            EVP_PKEY_free(pkey);
            goto cleanup;
        }
        if (alg && strcmp(alg, alg_names[a]) != 0) {
            snprintf(errstr, errstr_size, "%s: key %zu: alg %s does not fit its key type", path, i,
                     alg_names[a]);
            EVP_PKEY_free(pkey);
            goto cleanup;
        }
        if (add_key(keys, a, kid, pkey, NULL, 0, errstr, errstr_size) < 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    json_decref(doc);
    return rc;
}

/* ---- verification ---- */

static int verify_hs256(const struct jwt_key *k, const char *data, size_t len,
                        const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)data, len, mac,
             &mac_len) == NULL)
        return 0;
    return sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
}

/* JWS ES256 signatures are R || S (32 bytes each); libcrypto wants DER. */
static int verify_pkey(const struct jwt_key *k, const char *data, size_t len,
                       const unsigned char *sig, size_t sig_len)
{
    unsigned char *der = NULL;
    int ok = 0;
    if (k->alg == ALG_ES256) {
        if (sig_len != 64)
            return 0;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
        if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return 0;
        }
        int der_len = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (der_len <= 0)
            return 0;
        sig = der;
        sig_len = (size_t)der_len;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
        EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)data, len) == 1)
        ok = 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok;
}

static int check_claims(json_t *claims, const struct cv_jwt_expect *expect, char *errstr,
                        size_t errstr_size)
{
    time_t now = expect->now ? expect->now : time(NULL);
    json_t *exp = json_object_get(claims, "exp");
    json_t *nbf = json_object_get(claims, "nbf");
    if (!json_is_number(exp)) {
        snprintf(errstr, errstr_size, "no exp claim");
        return -1;
    }
    if ((double)now > json_number_value(exp) + (double)expect->skew_s) {
        snprintf(errstr, errstr_size, "expired");
        return -1;
    }
    if (nbf &&
        (!json_is_number(nbf) || (double)now + (double)expect->skew_s < json_number_value(nbf))) {
        snprintf(errstr, errstr_size, "not valid yet (nbf)");
        return -1;
    }
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    if (expect->issuer && (iss == NULL || strcmp(iss, expect->issuer) != 0)) {
        snprintf(errstr, errstr_size, "wrong issuer");
        return -1;
    }
    if (expect->audience) {
        json_t *aud = json_object_get(claims, "aud");
        int found = json_is_string(aud) && strcmp(json_string_value(aud), expect->audience) == 0;
        size_t i;
        json_t *a;
        if (json_is_array(aud)) {
            json_array_foreach(aud, i, a)
            {
                if (json_is_string(a) && strcmp(json_string_value(a), expect->audience) == 0)
                    found = 1;
            }
        }
        if (!found) {
            snprintf(errstr, errstr_size, "wrong audience");
            return -1;
        }
    }
    return 0;
}

static json_t *decode_json_part(const char *s, size_t len)
{
    size_t raw_len;
    unsigned char *raw = b64url_decode(s, len, &raw_len);
    if (raw == NULL)
        return NULL;
    json_t *v = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *cv_jwt_verify(const struct cv_jwt_keys *keys, const char *token,
                      const struct cv_jwt_expect *expect, char *errstr, size_t errstr_size)
{
    json_t *header = NULL, *claims = NULL;
    unsigned char *sig = NULL;
    size_t len = strnlen(token, MAX_TOKEN_BYTES + 1);
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (len > MAX_TOKEN_BYTES || dot2 == NULL ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        snprintf(errstr, errstr_size, "malformed token");
        goto cleanup;
    }
    header = decode_json_part(token, (size_t)(dot1 - token));
    claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    size_t sig_len = 0;
    sig = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig_len);
    if (header == NULL || claims == NULL || sig == NULL) {
        snprintf(errstr, errstr_size, "malformed token");
        goto cleanup;
    }
    const char *alg = json_string_value(json_object_get(header, "alg"));
    const char *kid = json_string_value(json_object_get(header, "kid"));
    if (json_object_get(header, "crit")) { /* no extension is understood here (RFC 7515 4.1.11) */
        snprintf(errstr, errstr_size, "unsupported crit header");
        goto cleanup;
    }
    int tried = 0, verified = 0;
    for (size_t i = 0; i < keys->n && !verified; i++) {
        const struct jwt_key *k = &keys->keys[i];
        if (kid && (k->kid == NULL || strcmp(kid, k->kid) != 0))
            continue;
        if (alg == NULL || strcmp(alg, alg_names[k->alg]) != 0)
            continue; /* the key's algorithm is pinned: "none" or a confused alg never matches */
        tried = 1;
        size_t signed_len = (size_t)(dot2 - token);
        verified = k->alg == ALG_HS256 ? verify_hs256(k, token, signed_len, sig, sig_len)
                                       : verify_pkey(k, token, signed_len, sig, sig_len);
    }
    if (!tried) {
        snprintf(errstr, errstr_size, "no key accepts this token's algorithm%s",
                 kid ? " and key id" : "");
        goto cleanup;
    }
    if (!verified) {
        snprintf(errstr, errstr_size, "bad signature");
        goto cleanup;
    }
    if (check_claims(claims, expect, errstr, errstr_size) < 0)
        goto cleanup;
    json_decref(header);
    free(sig);
    return claims;
cleanup:
    json_decref(header);
    json_decref(claims);
    free(sig);
    return NULL;
}
