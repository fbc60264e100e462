/* check.h - a tiny test harness: CHECK() records a failure and carries on. */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>
#include <string.h>

extern int g_test_failed; /* set by CHECK in the running test */

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            g_test_failed = 1;                                                   \
            fprintf(stderr, "    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                       \
    do {                                                                         \
        long long va_ = (long long)(a), vb_ = (long long)(b);                    \
        if (va_ != vb_) {                                                        \
            g_test_failed = 1;                                                   \
            fprintf(stderr, "    %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
                    #a, va_, #b, vb_);                                           \
        }                                                                        \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                       \
    do {                                                                         \
        const char *sa_ = (a), *sb_ = (b);                                       \
        if (sa_ == NULL || sb_ == NULL || strcmp(sa_, sb_) != 0) {               \
            g_test_failed = 1;                                                   \
            fprintf(stderr, "    %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
                    #a, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");             \
        }                                                                        \
    } while (0)

typedef struct {
    const char *name;
    void (*fn)(void);
} test_case_t;

#endif
