/* The end of every test program's main: runs a Check suite and turns its failures into the
 * exit status. Header-only: each test is one program. */
#ifndef CV_RUNNER_H
#define CV_RUNNER_H

#include <check.h>
#include <stdlib.h>

/* Runs s (the runner frees it); EXIT_FAILURE if any test failed. */
static inline int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
