/* Files compiled into a binary at build time (schemas, SQL migrations) by common/tools/embed.sh.
 * Each array ends with an entry whose path is NULL; data is NUL-terminated. */
#ifndef CV_EMBED_H
#define CV_EMBED_H

#include <stddef.h>

struct cv_embedded_file {
    const char *path; /* path relative to the repository root, e.g. "schemas/OrderPlaced.avsc" */
    const char *data; /* contents, NUL-terminated */
    size_t size;      /* contents length without the terminating NUL */
};

/* Every schema under schemas/ (current and released versions), built into libconveyor. */
extern const struct cv_embedded_file cv_schema_files[];
extern const size_t cv_schema_files_count;

/* SQL migrations every service runs first (outbox, processed events), from common/sql/. */
extern const struct cv_embedded_file cv_common_migrations[];
extern const size_t cv_common_migrations_count;

/* The service's own SQL migrations, from services/<name>/sql/, linked into each binary. */
extern const struct cv_embedded_file cv_service_migrations[];
extern const size_t cv_service_migrations_count;

/* The service's seed data, from the JSON files of services/<name>/seed/ (empty for most services).
 */
extern const struct cv_embedded_file cv_service_seed[];
extern const size_t cv_service_seed_count;

/* The service's OpenAPI document, docs/openapi/<name>.json (one entry), served at /openapi.json. */
extern const struct cv_embedded_file cv_service_openapi[];
extern const size_t cv_service_openapi_count;

#endif
