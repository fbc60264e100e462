/*
 * claim_port.h - the only way claim_core reaches the outside world.
 *
 * Plain C99. An implementation exists for ESP-IDF (components/claim_port_idf),
 * for Linux (host/sim/port_posix.c) and as a scripted fake (host/test).
 *
 * Every call is blocking and must return within the timeout it is given
 * (plus a small, bounded overrun such as a DNS lookup); the core owns retries,
 * backoff and the overall deadline. None of these callbacks may log the token,
 * the secret or the request body.
 */
#ifndef CLAIM_PORT_H
#define CLAIM_PORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Outcome of one transport operation. */
typedef enum {
    CLAIM_IO_OK = 0,      /* HTTP: a response was received (see status). MQTT: PUBACK received. */
    CLAIM_IO_TIMEOUT,     /* nothing (or not everything) arrived within timeout_ms */
    CLAIM_IO_UNREACHABLE, /* DNS, TCP or TLS failure: the peer could not be reached */
    CLAIM_IO_REFUSED,     /* MQTT only: CONNACK with a non-zero return code (see connack_rc) */
    CLAIM_IO_ERROR        /* anything else (out of memory, bad URI, protocol error, ...) */
} claim_io_t;

/* One request header; name and value are NUL-terminated and contain no CR/LF. */
typedef struct {
    const char *name;
    const char *value;
} claim_header_t;

/* What an HTTP port reports back. The core zeroes it before every call. */
typedef struct {
    int status;            /* HTTP status code, 0 if no response */
    char retry_after[32];  /* raw value of a Retry-After response header ("" if none; truncated is fine) */
    int body_truncated;    /* http_get: the body was longer than body_cap - 1 bytes */
} claim_http_response_t;

typedef enum {
    CLAIM_LOG_ERROR = 0,
    CLAIM_LOG_WARN,
    CLAIM_LOG_INFO,
    CLAIM_LOG_DEBUG
} claim_log_level_t;

typedef struct claim_port {
    void *ctx; /* passed back to every callback */

    /* POST body (Content-Type: application/json) to url with the given extra
     * headers. Must not follow redirects. */
    claim_io_t (*http_post)(void *ctx, const char *url,
                            const claim_header_t *headers, size_t n_headers,
                            const char *body, size_t body_len,
                            uint32_t timeout_ms, claim_http_response_t *resp);

    /* Optional (may be NULL: no claim-status look-up, see claim_check()).
     * GET url with the given extra headers (and Accept: application/json).
     * Stores at most body_cap - 1 bytes of the response body in body, always
     * NUL-terminated, sets *body_len to the number stored and
     * resp->body_truncated when more arrived. Must not follow redirects. */
    claim_io_t (*http_get)(void *ctx, const char *url,
                           const claim_header_t *headers, size_t n_headers,
                           char *body, size_t body_cap, size_t *body_len,
                           uint32_t timeout_ms, claim_http_response_t *resp);

    /* Connect to broker_uri (MQTT 3.1.1, clean session) with username (the
     * device access token, no password), publish payload to topic at QoS 1,
     * wait for the PUBACK, disconnect. Everything within timeout_ms.
     * On CLAIM_IO_REFUSED set *connack_rc to the CONNACK return code (1..5). */
    claim_io_t (*mqtt_publish)(void *ctx, const char *broker_uri, const char *username,
                               const char *topic, const char *payload, size_t payload_len,
                               uint32_t timeout_ms, int *connack_rc);

    uint64_t (*now_ms)(void *ctx);            /* monotonic milliseconds */
    void (*sleep_ms)(void *ctx, uint32_t ms); /* block for ms milliseconds */
    uint32_t (*random_u32)(void *ctx);        /* jitter and idempotency key; need not be crypto-grade */

    /* Optional (may be NULL). Messages never contain the token or the secret. */
    void (*log)(void *ctx, claim_log_level_t level, const char *msg);
} claim_port_t;

#ifdef __cplusplus
}
#endif

#endif /* CLAIM_PORT_H */
