/*
 * claim.h - portable device-claim logic (docs/design.md §7).
 *
 * Plain C99: no ESP-IDF headers, no malloc, no globals. All I/O goes through
 * claim_port_t (claim_port.h).
 *
 * Decision table for one claim run (one trigger):
 *
 *   claimsvc answer                       action
 *   ------------------------------------  ------------------------------------------------
 *   2xx, 409                              done, path = SERVICE (claimsvc owns delivery)
 *   400, 413, 415, 422                    CLAIM_ERR_CONFIG: the payload itself is wrong,
 *                                         so it would be wrong over MQTT too; no fallback
 *   network error, timeout, 408, 429, 5xx fall back to MQTT in this round; the service is
 *                                         tried again next round (not before Retry-After)
 *   401, 403, any other status            fall back to MQTT; the service is not tried again
 *                                         in this run (retrying cannot change the answer)
 *
 *   MQTT (username = token, QoS 1 publish of the same payload to v1/devices/me/claim)
 *   PUBACK                                done, path = MQTT
 *   CONNACK 4 or 5 (bad credentials /     CLAIM_ERR_TOKEN: the token is wrong; stop
 *     not authorised)
 *   anything else (timeout, refused 1-3,  back off (exponential, equal jitter) and start
 *     unreachable, error)                 the next round, until max_attempts or deadline
 *
 * Exactly one claim run per call; after a success nothing more is sent.
 * claim_once_t makes "at most one claim per trigger" explicit for callers
 * whose trigger source might fire twice.
 */
#ifndef CLAIM_H
#define CLAIM_H

#include <stddef.h>
#include <stdint.h>

#include "claim/claim_port.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLAIM_TOPIC "v1/devices/me/claim"

#define CLAIM_TOKEN_MAX 128u       /* docs/design.md §2: 1-128 printable ASCII, no space, no '/' */
#define CLAIM_SECRET_MAX 128u      /* docs/design.md §2: 0-128 characters */
#define CLAIM_DURATION_MAX 2592000000u /* 30 days, docs/design.md §2 */
#define CLAIM_WAIT_MAX_S 30u       /* Prefer: wait=N, N <= 30 */
#define CLAIM_URL_MAX 256u
#define CLAIM_BODY_MAX (CLAIM_SECRET_MAX * 6u + 64u) /* worst case: every byte as \u00XX */
#define CLAIM_IDEM_KEY_LEN 16u     /* hex characters */

typedef enum {
    CLAIM_OK = 0,         /* claimed; see claim_result_t.path */
    CLAIM_ERR_ARG,        /* invalid configuration or input (empty/invalid token, URL too long, ...) */
    CLAIM_ERR_CONFIG,     /* claimsvc answered 400/413/415/422: the request is wrong; no fallback */
    CLAIM_ERR_TOKEN,      /* MQTT CONNACK 4/5: ThingsBoard rejected the token; stop */
    CLAIM_ERR_DEADLINE,   /* the overall deadline passed before a success */
    CLAIM_ERR_EXHAUSTED,  /* max_attempts rounds used up before a success */
    CLAIM_ERR_DUPLICATE   /* claim_once_run: this trigger was already handled; nothing sent */
} claim_status_t;

typedef enum {
    CLAIM_PATH_NONE = 0,
    CLAIM_PATH_SERVICE,
    CLAIM_PATH_MQTT
} claim_path_t;

typedef struct {
    const char *service_url;  /* claimsvc base URL "http(s)://host[:port][/prefix]"; NULL/"" = none */
    const char *mqtt_uri;     /* ThingsBoard MQTT URI "mqtt(s)://host:port"; NULL/"" = no fallback */
    const char *token;        /* device access token (from NVS); required */
    const char *secret;       /* claim secret (from NVS); NULL/"" = key omitted */
    uint32_t duration_ms;     /* 0 = "durationMs" omitted (server default) */
    uint32_t prefer_wait_s;   /* Prefer: wait=N, 0 = header omitted; at most CLAIM_WAIT_MAX_S */
    uint32_t http_timeout_ms; /* per request; raised to prefer_wait_s*1000 + 2000 if lower */
    uint32_t mqtt_timeout_ms; /* per connect+publish+PUBACK */
    uint32_t backoff_base_ms; /* first backoff ceiling; >= 2 */
    uint32_t backoff_max_ms;  /* backoff ceiling cap; >= backoff_base_ms */
    uint32_t deadline_ms;     /* overall deadline for the whole run; > 0 */
    uint32_t max_attempts;    /* rounds (service and/or MQTT once each); 1..100 */
} claim_config_t;

typedef struct {
    claim_status_t status;
    claim_path_t path;          /* which path succeeded (NONE unless status == CLAIM_OK) */
    int last_http_status;       /* 0 if no HTTP response was received */
    claim_io_t last_http_io;
    claim_io_t last_mqtt_io;
    int last_connack_rc;        /* 0 unless the broker refused a connection */
    uint32_t service_tries;
    uint32_t mqtt_tries;
    uint32_t rounds;
    uint32_t elapsed_ms;
} claim_result_t;

/* A request ready to send: the same body goes to claimsvc and over MQTT. */
typedef struct {
    char url[CLAIM_URL_MAX];
    char body[CLAIM_BODY_MAX];
    size_t body_len;
    char prefer[16];                          /* "wait=N" */
    char idem_key[CLAIM_IDEM_KEY_LEN + 1];    /* same for every retry of one run */
    claim_header_t headers[4];
    size_t n_headers;
} claim_request_t;

/* Fills cfg with defaults (strings NULL). */
void claim_config_defaults(claim_config_t *cfg);

/* Runs one claim (one trigger) to completion. Always fills *out (if non-NULL)
 * and returns out->status. Uses about 1.5 KiB of stack. */
claim_status_t claim_run(const claim_config_t *cfg, const claim_port_t *port, claim_result_t *out);

/* At most one claim per trigger: claim_once_run() runs claim_run() only for a
 * trigger id it has not handled yet (e.g. a boot counter or button-press
 * counter); a repeated id returns CLAIM_ERR_DUPLICATE without any I/O. */
typedef struct {
    uint32_t last_trigger;
    uint8_t handled; /* 0 until the first trigger */
} claim_once_t;

void claim_once_init(claim_once_t *once);
claim_status_t claim_once_run(claim_once_t *once, uint32_t trigger_id, const claim_config_t *cfg,
                              const claim_port_t *port, claim_result_t *out);

/* ---- building blocks, exposed for tests ---- */

/* {"secretKey":"...","durationMs":N}, each key only when it has a value.
 * Returns the length written (without NUL) or -1 if it does not fit in cap. */
int claim_json_build(char *buf, size_t cap, const char *secret, uint32_t duration_ms);

/* "<base>/devices/claim" (one '/' between). Returns length or -1 (bad scheme,
 * empty base, does not fit). */
int claim_url_build(char *buf, size_t cap, const char *base);

/* 1 if token is 1..CLAIM_TOKEN_MAX printable ASCII characters without space or '/'. */
int claim_token_valid(const char *token);

/* Builds url, body and headers (X-Device-Token, Prefer, Idempotency-Key) for cfg.
 * idem_hi/idem_lo seed the idempotency key. Returns CLAIM_OK or CLAIM_ERR_ARG. */
claim_status_t claim_request_build(claim_request_t *req, const claim_config_t *cfg,
                                   uint32_t idem_hi, uint32_t idem_lo);

/* Backoff before round attempt+1 (attempt counts from 0): ceiling
 * d = min(base_ms * 2^attempt, max_ms); result = d/2 + rnd % (d/2 + 1), in [d/2, d]. */
uint32_t claim_backoff_ms(uint32_t attempt, uint32_t base_ms, uint32_t max_ms, uint32_t rnd);

/* Retry-After as delta-seconds ("120"); returns milliseconds, or 0 if absent,
 * not a plain number (HTTP-date form is ignored), or absurd (> 1 day). */
uint32_t claim_retry_after_ms(const char *value);

/* What claimsvc's answer means (see the table above). */
typedef enum {
    CLAIM_HTTP_DONE = 0,
    CLAIM_HTTP_CONFIG,         /* 400/413/415/422 */
    CLAIM_HTTP_FALLBACK_RETRY, /* 408/429/5xx, network: fall back now, retry the service later */
    CLAIM_HTTP_FALLBACK_STOP   /* 401/403/other: fall back, do not retry the service */
} claim_http_class_t;

claim_http_class_t claim_http_classify(claim_io_t io, int status);

/* ---- claim again? (the newest claim's status in claimsvc) ----
 *
 * A "done" flag on the device only means "a claim request was delivered", not
 * "the customer has the device": the customer may never have used the claim
 * window. Before claiming, the device asks claimsvc for its newest claim
 * (GET {service}/devices/claims?limit=1 with X-Device-Token) and claim_decide()
 * turns the answer into what to do:
 *
 *   newest claim                    next
 *   ------------------------------  -------------------------------------------------
 *   none (an empty list)            CLAIM: no claim yet
 *   expired, failed                 CLAIM: the last claim lapsed or never arrived
 *   pending, delivered              WAIT: a claim is under way; ask again later
 *   superseded                      WAIT: a newer claim took over (the list is
 *                                   newest first, so this is a race); ask again later
 *   claimed                         DONE: the customer has the device; never again
 *   rejected                        STOP: ThingsBoard refused the token; claiming
 *                                   again with it cannot work
 *   cancelled                       STOP: an operator cancelled the claim on purpose
 *   unknown status, no answer,      today's fallback: CLAIM if fallback_claim (first
 *   401/403/429/5xx, bad JSON       boot: no local "done" flag yet; button: always),
 *                                   else WAIT
 */
typedef enum {
    CLAIM_LAST_UNKNOWN = 0, /* claimsvc not asked, not reachable, or its answer unusable */
    CLAIM_LAST_NONE,        /* claimsvc has no claim for this device */
    CLAIM_LAST_PENDING,
    CLAIM_LAST_DELIVERED,
    CLAIM_LAST_CLAIMED,
    CLAIM_LAST_EXPIRED,
    CLAIM_LAST_FAILED,
    CLAIM_LAST_REJECTED,
    CLAIM_LAST_CANCELLED,
    CLAIM_LAST_SUPERSEDED,
    CLAIM_LAST_OTHER        /* a status this firmware does not know */
} claim_last_t;

typedef enum {
    CLAIM_NEXT_CLAIM = 0, /* send a claim now (claim_run) */
    CLAIM_NEXT_WAIT,      /* nothing to send now; ask again later */
    CLAIM_NEXT_DONE,      /* the customer has the device: never claim again */
    CLAIM_NEXT_STOP       /* do not claim (token rejected, or cancelled by an operator) */
} claim_next_t;

#define CLAIM_STATUS_BODY_MAX 2048u /* the newest claim's view is well under 1 KiB */
#define CLAIM_STATUS_STR_MAX 24u

/* The decision table above; pure. */
claim_next_t claim_decide(claim_last_t last, int fallback_claim);

/* "claimed" -> CLAIM_LAST_CLAIMED, ...; an unknown non-empty string -> CLAIM_LAST_OTHER,
 * NULL or "" -> CLAIM_LAST_UNKNOWN. */
claim_last_t claim_last_from_str(const char *status);

/* "<base>/devices/claims?limit=1". Returns length or -1. */
int claim_status_url_build(char *buf, size_t cap, const char *base);

/* Reads {"claims":[{..."status":"S"...}, ...]} (any member order, any other
 * members, nested values skipped). Returns 1 and copies S into status (cap
 * bytes, NUL-terminated), 0 for an empty list, -1 if the text is not such an
 * object, S is not a plain string or does not fit. Never reads past len. */
int claim_json_newest_status(const char *json, size_t len, char *status, size_t cap);

typedef struct {
    claim_last_t last;
    claim_next_t next;
    claim_io_t io;          /* of the GET (CLAIM_IO_OK if none was made) */
    int http_status;        /* 0 if no response */
    int asked;              /* 1 if claimsvc was asked */
    uint32_t elapsed_ms;
} claim_check_t;

/* Asks claimsvc once (within min(http_timeout_ms, deadline_ms)) for the newest
 * claim of cfg->token and decides with claim_decide(). Without a service URL or
 * port->http_get the status is CLAIM_LAST_UNKNOWN (today's fallback). Logs no
 * token, URL or body. */
claim_next_t claim_check(const claim_config_t *cfg, const claim_port_t *port, int fallback_claim,
                         claim_check_t *out);

const char *claim_last_str(claim_last_t last);
const char *claim_next_str(claim_next_t next);

/* ---- time budgets, in 64-bit arithmetic ---- */

/* Milliseconds from now_ms until end_ms, 0 if it has passed, at most 0xffffffff. */
uint32_t claim_ms_left(uint64_t now_ms, uint64_t end_ms);

/* OS ticks for ms at tick_hz, rounded up (a wait never ends early), computed in
 * 64 bits and capped at max_ticks. FreeRTOS's pdMS_TO_TICKS() multiplies in
 * 32 bits and overflows past ~11.9 h at 100 Hz (~71 min at 1000 Hz). */
uint32_t claim_ms_to_ticks(uint64_t ms, uint32_t tick_hz, uint32_t max_ticks);

/* The timeout to give a library that applies it up to `uses` times in a row
 * within one attempt (esp-mqtt: TCP/TLS connect, then CONNACK, then the wait of
 * esp_mqtt_client_stop() for its task), so that all of them together fit in
 * left_ms: left_ms / uses, but at least min_ms (or left_ms if that is less). */
uint32_t claim_share_ms(uint32_t left_ms, uint32_t uses, uint32_t min_ms);

/* ---- the claim button's GPIO ---- */

typedef enum {
    CLAIM_GPIO_OK = 0,
    CLAIM_GPIO_NOT_A_PIN,  /* not a GPIO of this chip (negative, beyond the last, or a gap) */
    CLAIM_GPIO_RESERVED    /* wired to the SPI flash / PSRAM on this chip: must not be touched */
} claim_gpio_check_t;

/* valid_mask: bit n set if GPIOn exists and can be an input (SOC_GPIO_VALID_GPIO_MASK);
 * reserved_mask: pins used by the flash on this chip. */
claim_gpio_check_t claim_gpio_check(int pin, uint64_t valid_mask, uint64_t reserved_mask);

/* ---- a private CA in PEM form ---- */

/* 1 if pem (len bytes, not counting a terminating NUL) holds at least one
 * complete "-----BEGIN CERTIFICATE-----" ... "-----END CERTIFICATE-----" block
 * and is NUL-terminated at pem[len] (mbedTLS parses PEM only with the NUL).
 * Used before handing a PEM to esp_http_client / esp-mqtt. */
int claim_pem_looks_valid(const char *pem, size_t len);

const char *claim_status_str(claim_status_t s);
const char *claim_path_str(claim_path_t p);
const char *claim_io_str(claim_io_t io);

#ifdef __cplusplus
}
#endif

#endif /* CLAIM_H */
