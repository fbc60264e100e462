/* claim_internal.h - shared between claim_core's own sources; not public API. */
#ifndef CLAIM_INTERNAL_H
#define CLAIM_INTERNAL_H

#include <stddef.h>

#include "claim/claim.h"

/* "<base><path>" with base checked (http:// or https://, a host, no spaces or
 * controls) and its trailing '/' dropped. Returns the length or -1. */
int claim_url_with_path(char *buf, size_t cap, const char *base, const char *path);

/* Logs through port->log (if any). Messages are built from fixed text and
 * numbers only: never from the token, the secret, a body or a URL. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void claim_say(const claim_port_t *port, claim_log_level_t level, const char *fmt, ...);

#endif
