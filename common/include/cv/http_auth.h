/* Bearer-token authentication of the HTTP API (RFC 6750): the JWT of the Authorization header
 * is verified (cv/jwt.h), its roles read from a claim, and the route's access decides: 401 with
 * WWW-Authenticate without a valid token, 403 without the role, 429 with Retry-After past the
 * caller's rate limit on CV_HTTP_RATE_LIMITED routes. Replies are problem+json; no token, key
 * or secret is ever logged. */
#ifndef CV_HTTP_AUTH_H
#define CV_HTTP_AUTH_H

#include <stddef.h>

#include "cv/http.h"
#include "cv/jwt.h"

struct cv_http_auth_config {
    struct cv_jwt_keys *keys; /* taken, also on failure */
    const char *issuer;       /* required "iss" */
    const char *audience;     /* required in "aud" */
    long skew_s;              /* leeway on exp and nbf */
    const char *roles_claim;  /* array of role names, or a space-separated string (default
                                 "roles"; "scope" also read) */
    double rate_per_s;        /* CV_HTTP_RATE_LIMITED requests per subject and second (0: none) */
    double burst;             /* how many may come at once (at least 1) */
};

/* Returns the authenticator (copies the strings), or NULL with the reason in errstr. */
struct cv_http_auth *cv_http_auth_new(const struct cv_http_auth_config *cfg, char *errstr,
                                      size_t errstr_size);
void cv_http_auth_destroy(struct cv_http_auth *auth);

/* Role name ("customer", "operator", "auditor") to its CV_ROLE_* bit, 0 if unknown. */
unsigned cv_http_auth_role(const char *name);

#endif
