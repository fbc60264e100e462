/* main.c - runs every test table; the last line is "N passed, M failed". */
#include <stdio.h>

#include "check.h"

int g_test_failed;

extern const test_case_t build_tests[];
extern const test_case_t flow_tests[];
extern const test_case_t status_tests[];
extern const test_case_t util_tests[];
extern const test_case_t port_tests[];

int main(void)
{
    const test_case_t *const tables[] = {build_tests, flow_tests, status_tests, util_tests, port_tests};
    size_t t;
    int passed = 0, failed = 0;
    for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        const test_case_t *tc;
        for (tc = tables[t]; tc->name != NULL; tc++) {
            g_test_failed = 0;
            tc->fn();
            if (g_test_failed) {
                failed++;
                printf("FAIL %s\n", tc->name);
            } else {
                passed++;
                printf("ok   %s\n", tc->name);
            }
            fflush(stdout);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
