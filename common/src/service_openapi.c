/* GET /openapi.json: the service's OpenAPI document, compiled into the binary from
 * docs/openapi/<name>.json so that the document served is the one of the build. */
#include <stdlib.h>
#include <string.h>

#include "cv/embed.h"
#include "cv/http.h"
#include "service_int.h"

static void handle_openapi(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    (void)req;
    (void)app;
    const struct cv_embedded_file *doc = &cv_service_openapi[0];
    if (doc->path == NULL) {
        cv_http_reply_problem(resp, 404, "Not Found", "this service has no OpenAPI document", NULL);
        return;
    }
    cv_http_reply_text(resp, 200, "application/json", doc->data, doc->size);
}

struct cv_http_route *cv_service_routes_with_openapi(const struct cv_http_route *routes, size_t n,
                                                     size_t *nout)
{
    struct cv_http_route *all = calloc(n + 1, sizeof(*all));
    if (all == NULL)
        return NULL;
    if (n > 0)
        memcpy(all, routes, n * sizeof(*all));
    all[n].method = "GET";
    all[n].pattern = "/openapi.json";
    all[n].handler = handle_openapi;
    all[n].access = CV_HTTP_OPEN; /* describes the API, as /metrics describes the process */
    *nout = n + 1;
    return all;
}
