/* port_posix.h - claim_port_t for Linux: libcurl, libmosquitto, CLOCK_MONOTONIC. */
#ifndef PORT_POSIX_H
#define PORT_POSIX_H

#include "claim/claim.h"

typedef struct {
    int verbose;       /* log level threshold: 0 = errors/warnings/info, 1 = + debug */
    int quiet;         /* 1 = no log lines at all */
    uint32_t rng;      /* xorshift32 state */
} posix_port_ctx_t;

/* Initialises libcurl and libmosquitto (once per process) and fills *port. */
int posix_port_init(claim_port_t *port, posix_port_ctx_t *ctx);
void posix_port_cleanup(void);

#endif
