/*
 * claim.c - one claim run: service first, MQTT fallback, backoff, deadline.
 * See the decision table in claim/claim.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "claim/claim.h"
#include "claim_internal.h"

#define say claim_say

#define CLAIM_MAX_ATTEMPTS_LIMIT 100u
#define CLAIM_WAIT_MARGIN_MS 2000u

void claim_config_defaults(claim_config_t *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->prefer_wait_s = 5u;
    cfg->http_timeout_ms = 10000u;
    cfg->mqtt_timeout_ms = 10000u;
    cfg->backoff_base_ms = 1000u;
    cfg->backoff_max_ms = 30000u;
    cfg->deadline_ms = 120000u;
    cfg->max_attempts = 8u;
}

/* Messages are built from fixed text and numbers only: never from the token,
 * the secret, the body or a URL (a URL may carry user:password). */
void claim_say(const claim_port_t *port, claim_log_level_t level, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    if (port == NULL || port->log == NULL) {
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    port->log(port->ctx, level, msg);
}

static uint32_t ms_left(const claim_port_t *port, uint64_t deadline_at)
{
    uint64_t now = port->now_ms(port->ctx);
    uint64_t left;
    if (now >= deadline_at) {
        return 0;
    }
    left = deadline_at - now;
    return left > 0xffffffffu ? 0xffffffffu : (uint32_t)left;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static int nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static claim_status_t finish(claim_result_t *r, const claim_port_t *port, uint64_t start,
                             claim_status_t status, claim_path_t path)
{
    uint64_t el;
    r->status = status;
    r->path = status == CLAIM_OK ? path : CLAIM_PATH_NONE;
    if (port != NULL && port->now_ms != NULL) {
        el = port->now_ms(port->ctx) - start;
        r->elapsed_ms = el > 0xffffffffu ? 0xffffffffu : (uint32_t)el;
    }
    return status;
}

static int config_ok(const claim_config_t *cfg, const claim_port_t *port)
{
    int has_service = nonempty(cfg->service_url);
    int has_mqtt = nonempty(cfg->mqtt_uri);
    if (port->now_ms == NULL || port->sleep_ms == NULL || port->random_u32 == NULL) {
        return 0;
    }
    if ((!has_service && !has_mqtt) || (has_service && port->http_post == NULL) ||
        (has_mqtt && port->mqtt_publish == NULL)) {
        return 0;
    }
    if (cfg->deadline_ms == 0u || cfg->max_attempts == 0u ||
        cfg->max_attempts > CLAIM_MAX_ATTEMPTS_LIMIT || cfg->backoff_base_ms < 2u ||
        cfg->backoff_max_ms < cfg->backoff_base_ms || cfg->mqtt_timeout_ms == 0u ||
        cfg->http_timeout_ms == 0u) {
        return 0;
    }
    return 1;
}

claim_status_t claim_run(const claim_config_t *cfg, const claim_port_t *port, claim_result_t *out)
{
    claim_result_t local;
    claim_result_t *r = out != NULL ? out : &local;
    claim_request_t req; /* ~1 KiB; the only sizeable stack object */
    uint64_t start = 0;
    uint64_t deadline_at;
    uint64_t service_not_before;
    uint32_t http_timeout;
    uint32_t round;
    uint32_t hi, lo;
    int has_mqtt;
    int service_usable;

    memset(r, 0, sizeof(*r));
    if (cfg == NULL || port == NULL || !config_ok(cfg, port)) {
        if (port != NULL && port->log != NULL) {
            say(port, CLAIM_LOG_ERROR, "claim: invalid configuration");
        }
        return finish(r, NULL, 0, CLAIM_ERR_ARG, CLAIM_PATH_NONE);
    }
    start = port->now_ms(port->ctx);
    hi = port->random_u32(port->ctx);
    lo = port->random_u32(port->ctx);
    if (claim_request_build(&req, cfg, hi, lo) != CLAIM_OK) {
        say(port, CLAIM_LOG_ERROR,
            "claim: invalid token, secret, duration, wait or service URL");
        return finish(r, port, start, CLAIM_ERR_ARG, CLAIM_PATH_NONE);
    }

    deadline_at = start + cfg->deadline_ms;
    service_not_before = start;
    service_usable = nonempty(cfg->service_url);
    has_mqtt = nonempty(cfg->mqtt_uri);
    http_timeout = cfg->http_timeout_ms;
    if (http_timeout < cfg->prefer_wait_s * 1000u + CLAIM_WAIT_MARGIN_MS && cfg->prefer_wait_s > 0u) {
        http_timeout = cfg->prefer_wait_s * 1000u + CLAIM_WAIT_MARGIN_MS;
    }
    say(port, CLAIM_LOG_INFO, "claim: start (service: %s, MQTT fallback: %s, deadline %lu ms)",
        service_usable ? "yes" : "no", has_mqtt ? "yes" : "no", (unsigned long)cfg->deadline_ms);

    for (round = 0; round < cfg->max_attempts; round++) {
        uint32_t left;
        uint32_t delay;
        uint64_t now;
        r->rounds = round + 1u;

        if (service_usable && port->now_ms(port->ctx) >= service_not_before) {
            claim_http_response_t resp;
            claim_io_t io;
            left = ms_left(port, deadline_at);
            if (left == 0u) {
                break;
            }
            memset(&resp, 0, sizeof(resp));
            io = port->http_post(port->ctx, req.url, req.headers, req.n_headers, req.body,
                                 req.body_len, min_u32(http_timeout, left), &resp);
            resp.retry_after[sizeof(resp.retry_after) - 1u] = '\0';
            r->service_tries++;
            r->last_http_io = io;
            r->last_http_status = io == CLAIM_IO_OK ? resp.status : 0;
            switch (claim_http_classify(io, r->last_http_status)) {
            case CLAIM_HTTP_DONE:
                say(port, CLAIM_LOG_INFO, "claim: done via service (HTTP %d, try %lu)",
                    r->last_http_status, (unsigned long)r->service_tries);
                return finish(r, port, start, CLAIM_OK, CLAIM_PATH_SERVICE);
            case CLAIM_HTTP_CONFIG:
                say(port, CLAIM_LOG_ERROR,
                    "claim: service rejected the request (HTTP %d): configuration error, no fallback",
                    r->last_http_status);
                return finish(r, port, start, CLAIM_ERR_CONFIG, CLAIM_PATH_NONE);
            case CLAIM_HTTP_FALLBACK_RETRY: {
                uint32_t ra = 0;
                if (io == CLAIM_IO_OK && (resp.status == 429 || resp.status == 503)) {
                    ra = claim_retry_after_ms(resp.retry_after);
                }
                if (io != CLAIM_IO_OK) {
                    say(port, CLAIM_LOG_WARN, "claim: service not answering (%s)%s",
                        claim_io_str(io), has_mqtt ? "; trying MQTT" : "");
                } else {
                    say(port, CLAIM_LOG_WARN, "claim: service answered HTTP %d (retry after %lu ms)%s",
                        resp.status, (unsigned long)ra, has_mqtt ? "; trying MQTT" : "");
                }
                if (ra > 0u) {
                    service_not_before = port->now_ms(port->ctx) + ra;
                }
                break;
            }
            case CLAIM_HTTP_FALLBACK_STOP:
                say(port, CLAIM_LOG_WARN,
                    "claim: service answered HTTP %d; not asking it again in this run",
                    r->last_http_status);
                service_usable = 0;
                break;
            }
        }

        if (has_mqtt) {
            claim_io_t io;
            int connack = 0;
            left = ms_left(port, deadline_at);
            if (left == 0u) {
                break;
            }
            io = port->mqtt_publish(port->ctx, cfg->mqtt_uri, cfg->token, CLAIM_TOPIC, req.body,
                                    req.body_len, min_u32(cfg->mqtt_timeout_ms, left), &connack);
            r->mqtt_tries++;
            r->last_mqtt_io = io;
            if (io == CLAIM_IO_REFUSED) {
                r->last_connack_rc = connack;
            }
            if (io == CLAIM_IO_OK) {
                say(port, CLAIM_LOG_INFO, "claim: done via MQTT (PUBACK, try %lu)",
                    (unsigned long)r->mqtt_tries);
                return finish(r, port, start, CLAIM_OK, CLAIM_PATH_MQTT);
            }
            if (io == CLAIM_IO_REFUSED && (connack == 4 || connack == 5)) {
                say(port, CLAIM_LOG_ERROR,
                    "claim: MQTT broker refused the token (CONNACK %d): stopping", connack);
                return finish(r, port, start, CLAIM_ERR_TOKEN, CLAIM_PATH_NONE);
            }
            if (io == CLAIM_IO_REFUSED) {
                say(port, CLAIM_LOG_WARN, "claim: MQTT broker refused the connection (CONNACK %d)",
                    connack);
            } else {
                say(port, CLAIM_LOG_WARN, "claim: MQTT attempt failed (%s)", claim_io_str(io));
            }
        } else if (!service_usable) {
            say(port, CLAIM_LOG_ERROR,
                "claim: service will not accept the claim and no MQTT fallback is configured");
            return finish(r, port, start, CLAIM_ERR_EXHAUSTED, CLAIM_PATH_NONE);
        }

        if (round + 1u >= cfg->max_attempts) {
            break;
        }
        delay = claim_backoff_ms(round, cfg->backoff_base_ms, cfg->backoff_max_ms,
                                 port->random_u32(port->ctx));
        now = port->now_ms(port->ctx);
        if (!has_mqtt && service_not_before > now + delay) {
            /* only the service is left and it asked us to wait longer */
            uint64_t wait = service_not_before - now;
            delay = wait > 0xffffffffu ? 0xffffffffu : (uint32_t)wait;
        }
        if (now + delay >= deadline_at) {
            say(port, CLAIM_LOG_ERROR,
                "claim: giving up: the next attempt (in %lu ms) would pass the deadline (%lu ms)",
                (unsigned long)delay, (unsigned long)cfg->deadline_ms);
            return finish(r, port, start, CLAIM_ERR_DEADLINE, CLAIM_PATH_NONE);
        }
        say(port, CLAIM_LOG_INFO, "claim: round %lu failed; next in %lu ms",
            (unsigned long)(round + 1u), (unsigned long)delay);
        port->sleep_ms(port->ctx, delay);
        if (!has_mqtt) {
            /* The sleep was long enough for the service's Retry-After; a
             * port's sleep may end a tick early (vTaskDelay), and the round
             * must not be spent doing nothing. */
            service_not_before = 0u;
        }
    }

    if (ms_left(port, deadline_at) == 0u) {
        say(port, CLAIM_LOG_ERROR, "claim: giving up: deadline (%lu ms) passed",
            (unsigned long)cfg->deadline_ms);
        return finish(r, port, start, CLAIM_ERR_DEADLINE, CLAIM_PATH_NONE);
    }
    say(port, CLAIM_LOG_ERROR, "claim: giving up after %lu rounds", (unsigned long)r->rounds);
    return finish(r, port, start, CLAIM_ERR_EXHAUSTED, CLAIM_PATH_NONE);
}

void claim_once_init(claim_once_t *once)
{
    if (once != NULL) {
        memset(once, 0, sizeof(*once));
    }
}

claim_status_t claim_once_run(claim_once_t *once, uint32_t trigger_id, const claim_config_t *cfg,
                              const claim_port_t *port, claim_result_t *out)
{
    if (once == NULL) {
        if (out != NULL) {
            memset(out, 0, sizeof(*out));
            out->status = CLAIM_ERR_ARG;
        }
        return CLAIM_ERR_ARG;
    }
    if (once->handled && once->last_trigger == trigger_id) {
        if (out != NULL) {
            memset(out, 0, sizeof(*out));
            out->status = CLAIM_ERR_DUPLICATE;
        }
        return CLAIM_ERR_DUPLICATE;
    }
    once->handled = 1u;
    once->last_trigger = trigger_id;
    return claim_run(cfg, port, out);
}
