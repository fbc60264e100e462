/* fake_port.c - see fake_port.h. Calls beyond the script return
 * CLAIM_IO_UNREACHABLE and set f->unscripted. */
#include <stdio.h>
#include <string.h>

#include "fake_port.h"

static void copy(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

static void advance(fake_t *f, uint32_t takes, uint32_t timeout)
{
    f->now += takes < timeout ? takes : timeout;
}

static claim_io_t f_http_post(void *ctx, const char *url, const claim_header_t *headers,
                              size_t n_headers, const char *body, size_t body_len,
                              uint32_t timeout_ms, claim_http_response_t *resp)
{
    fake_t *f = ctx;
    fake_http_call_t *c;
    size_t i, idx = f->n_http_calls;
    if (idx < FAKE_MAX_CALLS) {
        c = &f->http_calls[idx];
        copy(c->url, sizeof(c->url), url);
        c->body_len = body_len < sizeof(c->body) - 1 ? body_len : sizeof(c->body) - 1;
        memcpy(c->body, body, c->body_len);
        c->body[c->body_len] = '\0';
        c->n_headers = n_headers;
        for (i = 0; i < n_headers && i < 4; i++) {
            copy(c->hname[i], sizeof(c->hname[i]), headers[i].name);
            copy(c->hval[i], sizeof(c->hval[i]), headers[i].value);
        }
        c->timeout_ms = timeout_ms;
        c->at_ms = f->now;
    }
    f->n_http_calls++;
    if (idx >= f->n_http) {
        f->unscripted = 1;
        return CLAIM_IO_UNREACHABLE;
    }
    advance(f, f->http[idx].takes_ms, timeout_ms);
    if (f->http[idx].takes_ms > timeout_ms) {
        return CLAIM_IO_TIMEOUT;
    }
    if (f->http[idx].io == CLAIM_IO_OK) {
        resp->status = f->http[idx].status;
        if (f->http[idx].retry_after != NULL) {
            copy(resp->retry_after, sizeof(resp->retry_after), f->http[idx].retry_after);
        }
    }
    return f->http[idx].io;
}

static claim_io_t f_http_get(void *ctx, const char *url, const claim_header_t *headers,
                             size_t n_headers, char *body, size_t body_cap, size_t *body_len,
                             uint32_t timeout_ms, claim_http_response_t *resp)
{
    fake_t *f = ctx;
    size_t i, idx = f->n_get_calls, n;
    if (idx < FAKE_MAX_CALLS) {
        fake_get_call_t *c = &f->get_calls[idx];
        copy(c->url, sizeof(c->url), url);
        c->n_headers = n_headers;
        for (i = 0; i < n_headers && i < 4; i++) {
            copy(c->hname[i], sizeof(c->hname[i]), headers[i].name);
            copy(c->hval[i], sizeof(c->hval[i]), headers[i].value);
        }
        c->body_cap = body_cap;
        c->timeout_ms = timeout_ms;
        c->at_ms = f->now;
    }
    f->n_get_calls++;
    *body_len = 0;
    body[0] = '\0';
    if (idx >= f->n_get) {
        f->unscripted = 1;
        return CLAIM_IO_UNREACHABLE;
    }
    advance(f, f->get[idx].takes_ms, timeout_ms);
    if (f->get[idx].takes_ms > timeout_ms) {
        return CLAIM_IO_TIMEOUT;
    }
    if (f->get[idx].io == CLAIM_IO_OK) {
        resp->status = f->get[idx].status;
        n = f->get[idx].body != NULL ? strlen(f->get[idx].body) : 0;
        if (n > body_cap - 1) {
            n = body_cap - 1;
            resp->body_truncated = 1;
        }
        memcpy(body, f->get[idx].body != NULL ? f->get[idx].body : "", n);
        body[n] = '\0';
        *body_len = n;
    }
    return f->get[idx].io;
}

static claim_io_t f_mqtt_publish(void *ctx, const char *broker_uri, const char *username,
                                 const char *topic, const char *payload, size_t payload_len,
                                 uint32_t timeout_ms, int *connack_rc)
{
    fake_t *f = ctx;
    size_t idx = f->n_mqtt_calls;
    if (idx < FAKE_MAX_CALLS) {
        fake_mqtt_call_t *c = &f->mqtt_calls[idx];
        copy(c->uri, sizeof(c->uri), broker_uri);
        copy(c->username, sizeof(c->username), username);
        copy(c->topic, sizeof(c->topic), topic);
        c->payload_len = payload_len < sizeof(c->payload) - 1 ? payload_len : sizeof(c->payload) - 1;
        memcpy(c->payload, payload, c->payload_len);
        c->payload[c->payload_len] = '\0';
        c->timeout_ms = timeout_ms;
        c->at_ms = f->now;
    }
    f->n_mqtt_calls++;
    if (idx >= f->n_mqtt) {
        f->unscripted = 1;
        return CLAIM_IO_UNREACHABLE;
    }
    advance(f, f->mqtt[idx].takes_ms, timeout_ms);
    if (f->mqtt[idx].takes_ms > timeout_ms) {
        return CLAIM_IO_TIMEOUT;
    }
    if (f->mqtt[idx].io == CLAIM_IO_REFUSED) {
        *connack_rc = f->mqtt[idx].connack;
    }
    return f->mqtt[idx].io;
}

static uint64_t f_now(void *ctx)
{
    return ((fake_t *)ctx)->now;
}

static void f_sleep(void *ctx, uint32_t ms)
{
    fake_t *f = ctx;
    if (f->n_sleeps < FAKE_MAX_CALLS) {
        f->sleeps[f->n_sleeps] = ms;
    }
    f->n_sleeps++;
    f->now += ms - (f->sleep_short_ms < ms ? f->sleep_short_ms : 0u);
}

static uint32_t f_random(void *ctx)
{
    fake_t *f = ctx;
    if (f->n_rnd == 0) {
        return f->rnd_default;
    }
    return f->rnd[f->i_rnd++ % f->n_rnd];
}

static void f_log(void *ctx, claim_log_level_t level, const char *msg)
{
    fake_t *f = ctx;
    size_t n = strlen(msg);
    (void)level;
    f->n_logs++;
    if (f->log_len + n + 2 < sizeof(f->log)) {
        memcpy(f->log + f->log_len, msg, n);
        f->log_len += n;
        f->log[f->log_len++] = '\n';
        f->log[f->log_len] = '\0';
    }
}

void fake_init(fake_t *f)
{
    memset(f, 0, sizeof(*f));
    f->now = 1000000u; /* not zero: catches code that confuses "time" with "elapsed" */
    f->start = f->now;
}

claim_port_t fake_port(fake_t *f)
{
    claim_port_t p;
    p.ctx = f;
    p.http_post = f_http_post;
    p.http_get = f_http_get;
    p.mqtt_publish = f_mqtt_publish;
    p.now_ms = f_now;
    p.sleep_ms = f_sleep;
    p.random_u32 = f_random;
    p.log = f_log;
    return p;
}

void fake_http(fake_t *f, claim_io_t io, int status, const char *retry_after, uint32_t takes_ms)
{
    if (f->n_http < FAKE_MAX_STEPS) {
        fake_http_step_t *s = &f->http[f->n_http++];
        s->io = io;
        s->status = status;
        s->retry_after = retry_after;
        s->takes_ms = takes_ms;
    }
}

void fake_mqtt(fake_t *f, claim_io_t io, int connack, uint32_t takes_ms)
{
    if (f->n_mqtt < FAKE_MAX_STEPS) {
        fake_mqtt_step_t *s = &f->mqtt[f->n_mqtt++];
        s->io = io;
        s->connack = connack;
        s->takes_ms = takes_ms;
    }
}

void fake_rnd(fake_t *f, uint32_t v)
{
    if (f->n_rnd < FAKE_MAX_STEPS) {
        f->rnd[f->n_rnd++] = v;
    }
}

void fake_get(fake_t *f, claim_io_t io, int status, const char *body, uint32_t takes_ms)
{
    if (f->n_get < FAKE_MAX_STEPS) {
        fake_get_step_t *s = &f->get[f->n_get++];
        s->io = io;
        s->status = status;
        s->body = body;
        s->takes_ms = takes_ms;
    }
}
