/* Tokens signed by the tests themselves, as an identity provider would: base64url and
 * header.claims.signature with HS256 (a shared secret), RS256 or ES256 (a key of libcrypto).
 * Header-only, for the tests of jwt.c and of the HTTP server's bearer authentication. */
#ifndef CV_JWT_FIXTURE_H
#define CV_JWT_FIXTURE_H

#include <check.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* base64url without padding (RFC 7515). Caller frees. */
static char *b64url(const unsigned char *data, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len * 4 / 3 + 4);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = abc[(acc << (6 - bits)) & 63];
    out[o] = 0;
    return out;
}

static char *b64url_str(const char *s)
{
    return b64url((const unsigned char *)s, strlen(s));
}

/* header.claims.signature; alg "RS256"/"ES256" sign with pkey, "HS256" with key/key_len,
 * anything else gets sig_override (may be ""). Caller frees. */
static char *make_token(const char *header, const char *claims, const char *alg, EVP_PKEY *pkey,
                        const unsigned char *key, size_t key_len)
{
    char *h = b64url_str(header), *c = b64url_str(claims);
    char *signing = malloc(strlen(h) + strlen(c) + 2);
    sprintf(signing, "%s.%s", h, c);
    unsigned char sig[1024];
    size_t sig_len = 0;
    if (strcmp(alg, "HS256") == 0) {
        unsigned len = 0;
        HMAC(EVP_sha256(), key, (int)key_len, (unsigned char *)signing, strlen(signing), sig, &len);
        sig_len = len;
    } else if (strcmp(alg, "RS256") == 0 || strcmp(alg, "ES256") == 0) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char der[1024];
        size_t der_len = sizeof(der);
        ck_assert_int_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
        ck_assert_int_eq(
            EVP_DigestSign(md, der, &der_len, (unsigned char *)signing, strlen(signing)), 1);
        EVP_MD_CTX_free(md);
        if (strcmp(alg, "RS256") == 0) {
            memcpy(sig, der, der_len);
            sig_len = der_len;
        } else { /* DER to JOSE's R || S */
            const unsigned char *p = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            sig_len = 64;
        }
    }
    char *s = b64url(sig, sig_len);
    char *token = malloc(strlen(signing) + strlen(s) + 2);
    sprintf(token, "%s.%s", signing, s);
    free(h);
    free(c);
    free(signing);
    free(s);
    return token;
}

#endif
