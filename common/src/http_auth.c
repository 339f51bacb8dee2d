/* The HTTP server's gate in front of app routes: bearer token, roles, per-subject rate limit.
 * Refusals are problem+json with the RFC 6750 WWW-Authenticate challenge; the token is only
 * ever handed to the verifier, never to a log line or a reply. */
#include "cv/http_auth.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cv/metrics.h"
#include "http_int.h"

/* Token buckets, one per slot of a fixed table indexed by a hash of the subject: memory stays
 * bounded whatever subjects arrive. Two subjects sharing a slot share a bucket (rare with this
 * many slots, and it can only make the limit stricter). */
#define RATE_SLOTS 16384

struct rate_slot {
    double tokens;
    uint64_t at_ns; /* 0: never used (full) */
};

struct cv_http_auth {
    struct cv_jwt_keys *keys;
    char *issuer, *audience, *roles_claim;
    long skew_s;
    double rate_per_s, burst;
    pthread_mutex_t rate_lock;
    struct rate_slot *slots;
    struct cv_counter *refused_401, *refused_403, *refused_429;
};

unsigned cv_http_auth_role(const char *name)
{
    if (strcmp(name, "customer") == 0)
        return CV_ROLE_CUSTOMER;
    if (strcmp(name, "operator") == 0)
        return CV_ROLE_OPERATOR;
    if (strcmp(name, "auditor") == 0)
        return CV_ROLE_AUDITOR;
    return 0;
}

struct cv_http_auth *cv_http_auth_new(const struct cv_http_auth_config *cfg, char *errstr,
                                      size_t errstr_size)
{
    struct cv_http_auth *auth = calloc(1, sizeof(*auth));
    if (auth == NULL) {
        cv_jwt_keys_destroy(cfg->keys);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    auth->keys = cfg->keys;
    if (cv_jwt_keys_count(cfg->keys) == 0) {
        snprintf(errstr, errstr_size, "no verification key configured");
        goto cleanup;
    }
    if (cfg->issuer == NULL || cfg->issuer[0] == '\0' || cfg->audience == NULL ||
        cfg->audience[0] == '\0') {
        snprintf(errstr, errstr_size, "issuer and audience are required");
        goto cleanup;
    }
    auth->issuer = strdup(cfg->issuer);
    auth->audience = strdup(cfg->audience);
    auth->roles_claim = strdup(cfg->roles_claim ? cfg->roles_claim : "roles");
    auth->skew_s = cfg->skew_s;
    auth->rate_per_s = cfg->rate_per_s;
    auth->burst = cfg->burst < 1 ? 1 : cfg->burst;
    auth->slots = calloc(RATE_SLOTS, sizeof(*auth->slots));
    if (!auth->issuer || !auth->audience || !auth->roles_claim || !auth->slots) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    pthread_mutex_init(&auth->rate_lock, NULL);
    auth->refused_401 = cv_metrics_counter("http_auth_refused_total",
                                           "Requests refused by authentication or authorisation.",
                                           "status=\"401\"");
    auth->refused_403 = cv_metrics_counter("http_auth_refused_total",
                                           "Requests refused by authentication or authorisation.",
                                           "status=\"403\"");
    auth->refused_429 = cv_metrics_counter("http_auth_refused_total",
                                           "Requests refused by authentication or authorisation.",
                                           "status=\"429\"");
    return auth;
cleanup:
    cv_jwt_keys_destroy(auth->keys);
    free(auth->issuer);
    free(auth->audience);
    free(auth->roles_claim);
    free(auth->slots);
    free(auth);
    return NULL;
}

void cv_http_auth_destroy(struct cv_http_auth *auth)
{
    if (auth == NULL)
        return;
    cv_jwt_keys_destroy(auth->keys);
    pthread_mutex_destroy(&auth->rate_lock);
    free(auth->issuer);
    free(auth->audience);
    free(auth->roles_claim);
    free(auth->slots);
    free(auth);
}

const struct cv_http_principal *cv_http_principal(const struct cv_http_request *req)
{
    return req->authenticated ? &req->principal : NULL;
}

/* Roles named by the claim: an array of names or one space-separated string (OAuth "scope"). */
static unsigned claim_roles(json_t *claim)
{
    unsigned roles = 0;
    if (json_is_array(claim)) {
        size_t i;
        json_t *v;
        json_array_foreach(claim, i, v)
        {
            if (json_is_string(v))
                roles |= cv_http_auth_role(json_string_value(v));
        }
    } else if (json_is_string(claim)) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", json_string_value(claim));
        char *save = NULL;
        for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
            roles |= cv_http_auth_role(w);
    }
    return roles;
}

static void reply_401(struct cv_http_auth *auth, struct cv_http_response *resp, const char *error,
                      const char *detail)
{
    char challenge[256];
    if (error)
        snprintf(challenge, sizeof(challenge),
                 "Bearer realm=\"conveyor\", error=\"%s\", error_description=\"%s\"", error,
                 detail);
    else
        snprintf(challenge, sizeof(challenge), "Bearer realm=\"conveyor\"");
    cv_http_reply_problem(resp, 401, NULL, detail, NULL);
    cv_http_reply_header(resp, "WWW-Authenticate", challenge);
    cv_counter_add(auth->refused_401, 1);
}

/* Takes one token from the subject's bucket: 0, or -1 with the seconds until one is back. */
static int rate_take(struct cv_http_auth *auth, const char *sub, long *retry_after_s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sub; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    uint64_t now = cv_http_now_ns();
    int rc = 0;
    pthread_mutex_lock(&auth->rate_lock);
    struct rate_slot *s = &auth->slots[h % RATE_SLOTS];
    if (s->at_ns == 0) {
        s->tokens = auth->burst;
    } else {
        s->tokens += (double)(now - s->at_ns) / 1e9 * auth->rate_per_s;
        if (s->tokens > auth->burst)
            s->tokens = auth->burst;
    }
    s->at_ns = now;
    if (s->tokens >= 1) {
        s->tokens -= 1;
    } else {
        *retry_after_s = (long)ceil((1 - s->tokens) / auth->rate_per_s);
        if (*retry_after_s < 1)
            *retry_after_s = 1;
        rc = -1;
    }
    pthread_mutex_unlock(&auth->rate_lock);
    return rc;
}

int cv_http_auth_check(struct cv_http_auth *auth, struct cv_http_request *req,
                       struct cv_http_response *resp, unsigned access)
{
    if (auth == NULL || (access & CV_HTTP_OPEN))
        return 0;
    const char *header = cv_http_header(req, "Authorization");
    if (header == NULL) {
        reply_401(auth, resp, NULL, "a bearer token is required");
        return -1;
    }
    if (strncasecmp(header, "Bearer ", 7) != 0) {
        reply_401(auth, resp, "invalid_request", "the Authorization scheme must be Bearer");
        return -1;
    }
    const char *token = header + 7;
    while (*token == ' ')
        token++;
    struct cv_jwt_expect expect = {
        .issuer = auth->issuer, .audience = auth->audience, .skew_s = auth->skew_s};
    char why[128];
    json_t *claims = cv_jwt_verify(auth->keys, token, &expect, why, sizeof(why));
    if (claims == NULL) {
        reply_401(auth, resp, "invalid_token", why);
        return -1;
    }
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    unsigned roles = claim_roles(json_object_get(claims, auth->roles_claim));
    if (strcmp(auth->roles_claim, "scope") != 0)
        roles |= claim_roles(json_object_get(claims, "scope"));
    if (sub == NULL || strlen(sub) == 0 || strlen(sub) >= sizeof(req->principal_sub)) {
        json_decref(claims);
        reply_401(auth, resp, "invalid_token", "sub must be a string of 1 to 255 bytes");
        return -1;
    }
    snprintf(req->principal_sub, sizeof(req->principal_sub), "%s", sub);
    json_decref(claims);
    req->principal.sub = req->principal_sub;
    req->principal.roles = roles;
    req->authenticated = 1;
    if ((roles & access & CV_ROLES_ANY) == 0) {
        cv_http_reply_problem(resp, 403, NULL, "the token does not grant this operation", NULL);
        cv_http_reply_header(resp, "WWW-Authenticate",
                             "Bearer realm=\"conveyor\", error=\"insufficient_scope\"");
        cv_counter_add(auth->refused_403, 1);
        return -1;
    }
    long retry_after;
    if ((access & CV_HTTP_RATE_LIMITED) && auth->rate_per_s > 0 &&
        rate_take(auth, req->principal_sub, &retry_after) < 0) {
        char value[32];
        snprintf(value, sizeof(value), "%ld", retry_after);
        cv_http_reply_problem(resp, 429, NULL, "rate limit of this caller reached", NULL);
        cv_http_reply_header(resp, "Retry-After", value);
        cv_counter_add(auth->refused_429, 1);
        return -1;
    }
    return 0;
}
