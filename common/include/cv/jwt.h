/* JSON Web Token verification (RFC 7519 with JWS compact serialisation, RFC 7515): RS256,
 * ES256 and HS256 signatures checked with OpenSSL's libcrypto against keys loaded from PEM
 * files, a JWKS file or an HS256 secret. Each key accepts exactly one algorithm, fixed when it
 * is loaded: a token naming another one (alg "none", or HS256 against an RSA key) is refused. */
#ifndef CV_JWT_H
#define CV_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

struct cv_jwt_keys;

struct cv_jwt_keys *cv_jwt_keys_new(void);
void cv_jwt_keys_destroy(struct cv_jwt_keys *keys);

/* Adds the public key of a PEM file (RSA: RS256; EC P-256: ES256), matched by kid when kid is
 * not NULL. 0, or -1 with the reason in errstr (never the key's contents). */
int cv_jwt_keys_add_pem(struct cv_jwt_keys *keys, const char *path, const char *kid, char *errstr,
                        size_t errstr_size);
/* Adds the RSA and P-256 keys of a JWKS file ({"keys": [{"kty", "kid", "alg"?, "use"?, ...}]});
 * keys of other types or uses are skipped. 0, or -1 with the reason in errstr. */
int cv_jwt_keys_add_jwks(struct cv_jwt_keys *keys, const char *path, char *errstr,
                         size_t errstr_size);
/* Adds an HS256 secret (copied; at least 32 bytes). 0, or -1 with the reason in errstr. */
int cv_jwt_keys_add_hs256(struct cv_jwt_keys *keys, const unsigned char *secret, size_t len,
                          const char *kid, char *errstr, size_t errstr_size);
size_t cv_jwt_keys_count(const struct cv_jwt_keys *keys);

/* What a verified token must also satisfy. */
struct cv_jwt_expect {
    const char *issuer;   /* "iss" must equal it */
    const char *audience; /* "aud" (a string or an array) must contain it */
    long skew_s;          /* leeway on exp and nbf */
    time_t now;           /* 0: time(NULL) */
};

/* Verifies token's signature with the key its header's kid names (or, without kid, each key of
 * the header's algorithm), then iss, aud, exp (required) and nbf; sub and the other claims are
 * the caller's to check. Returns the claims (caller decrefs), or NULL with the reason in errstr
 * ("expired", "bad signature", ...: never the token itself). */
json_t *cv_jwt_verify(const struct cv_jwt_keys *keys, const char *token,
                      const struct cv_jwt_expect *expect, char *errstr, size_t errstr_size);

#endif
