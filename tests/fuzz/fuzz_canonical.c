/* libFuzzer harness: schema JSON text, as a schema registry or a test hands it over.
 * cv_avro_canonical_form on arbitrary text (the canonical form of a canonical form is itself),
 * then cv_avro_schema_new on what it accepted: our tree, avro-c's parser and value class. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/avro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *text)
{
    fprintf(stderr, "fuzz_canonical: %s: %s\n", what, text);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errstr[512];
    char *text = malloc(size + 1);

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    char *form = cv_avro_canonical_form(text, errstr, sizeof(errstr));
    if (form != NULL) {
        char *again = cv_avro_canonical_form(form, errstr, sizeof(errstr));
        if (again == NULL)
            die("a canonical form is refused", errstr);
        if (strcmp(again, form) != 0)
            die("the canonical form of a canonical form differs", form);
        free(again);

        struct cv_schema *s = cv_avro_schema_new(text, errstr, sizeof(errstr));
        if (s != NULL) {
            if (cv_avro_schema_fingerprint(s) != cv_avro_crc64(form, strlen(form)) ||
                strcmp(cv_avro_schema_canonical(s), form) != 0)
                die("a schema's canonical form or fingerprint differs", form);
            cv_avro_schema_destroy(s);
        }
        free(form);
    }
    free(text);
    return 0;
}
