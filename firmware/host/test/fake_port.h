/* fake_port.h - a scripted claim_port_t with a fake clock and a call recorder. */
#ifndef FAKE_PORT_H
#define FAKE_PORT_H

#include "claim/claim.h"

#define FAKE_MAX_STEPS 64
#define FAKE_MAX_CALLS 128

typedef struct {
    claim_io_t io;
    int status;              /* HTTP status when io == CLAIM_IO_OK */
    const char *retry_after; /* NULL = no header */
    uint32_t takes_ms;       /* fake time the call takes (capped at its timeout) */
} fake_http_step_t;

typedef struct {
    claim_io_t io;
    int connack;             /* when io == CLAIM_IO_REFUSED */
    uint32_t takes_ms;
} fake_mqtt_step_t;

typedef struct {
    char url[CLAIM_URL_MAX];
    char body[CLAIM_BODY_MAX];
    size_t body_len;
    size_t n_headers;
    char hname[4][32];
    char hval[4][CLAIM_TOKEN_MAX + 1];
    uint32_t timeout_ms;
    uint64_t at_ms;
} fake_http_call_t;

typedef struct {
    char uri[128];
    char username[CLAIM_TOKEN_MAX + 1];
    char topic[64];
    char payload[CLAIM_BODY_MAX];
    size_t payload_len;
    uint32_t timeout_ms;
    uint64_t at_ms;
} fake_mqtt_call_t;

typedef struct {
    claim_io_t io;
    int status;
    const char *body;        /* response body (NULL = empty) */
    uint32_t takes_ms;
} fake_get_step_t;

typedef struct {
    char url[CLAIM_URL_MAX];
    size_t n_headers;
    char hname[4][32];
    char hval[4][CLAIM_TOKEN_MAX + 1];
    size_t body_cap;
    uint32_t timeout_ms;
    uint64_t at_ms;
} fake_get_call_t;

typedef struct {
    fake_get_step_t get[FAKE_MAX_STEPS];
    size_t n_get;
    fake_get_call_t get_calls[FAKE_MAX_CALLS];
    size_t n_get_calls;
    fake_http_step_t http[FAKE_MAX_STEPS];
    size_t n_http;
    fake_mqtt_step_t mqtt[FAKE_MAX_STEPS];
    size_t n_mqtt;
    uint32_t rnd[FAKE_MAX_STEPS];
    size_t n_rnd; /* 0: random_u32 returns rnd_default */
    uint32_t rnd_default;

    uint64_t now;
    uint64_t start;

    /* recorded */
    fake_http_call_t http_calls[FAKE_MAX_CALLS];
    size_t n_http_calls;
    fake_mqtt_call_t mqtt_calls[FAKE_MAX_CALLS];
    size_t n_mqtt_calls;
    uint32_t sleeps[FAKE_MAX_CALLS];
    size_t n_sleeps;
    size_t i_rnd;
    int unscripted; /* a call beyond the script happened */
    uint32_t sleep_short_ms; /* sleep_ms wakes this much early (vTaskDelay: up to one tick) */
    char log[16384];
    size_t log_len;
    size_t n_logs;
} fake_t;

void fake_init(fake_t *f);
claim_port_t fake_port(fake_t *f);
void fake_http(fake_t *f, claim_io_t io, int status, const char *retry_after, uint32_t takes_ms);
void fake_mqtt(fake_t *f, claim_io_t io, int connack, uint32_t takes_ms);
void fake_rnd(fake_t *f, uint32_t v);
void fake_get(fake_t *f, claim_io_t io, int status, const char *body, uint32_t takes_ms);

#endif
