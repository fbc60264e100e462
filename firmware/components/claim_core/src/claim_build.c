/*
 * claim_build.c - JSON payload, URL, header and Retry-After helpers.
 * No allocation, no printf: every write is bounds-checked by hand.
 */
#include <string.h>

#include "claim/claim.h"
#include "claim_internal.h"

/* Small bounded writer: once it overflows it stays overflowed. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    int overflow;
} wbuf_t;

static void w_init(wbuf_t *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = (buf == NULL || cap == 0);
    if (!w->overflow) {
        buf[0] = '\0';
    }
}

static void w_char(wbuf_t *w, char c)
{
    if (w->overflow) {
        return;
    }
    if (w->len + 1 >= w->cap) { /* keep room for the NUL */
        w->overflow = 1;
        return;
    }
    w->buf[w->len++] = c;
    w->buf[w->len] = '\0';
}

static void w_str(wbuf_t *w, const char *s)
{
    while (*s != '\0' && !w->overflow) {
        w_char(w, *s++);
    }
}

static void w_u32(wbuf_t *w, uint32_t v)
{
    char tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        w_char(w, tmp[--n]);
    }
}

static int w_done(const wbuf_t *w)
{
    if (w->overflow) {
        if (w->buf != NULL && w->cap > 0) {
            w->buf[0] = '\0';
        }
        return -1;
    }
    return (int)w->len;
}

static const char hexdig[] = "0123456789abcdef";

/* JSON string contents (RFC 8259 §7): '"' and '\' escaped, control characters
 * U+0000..U+001F as \u00XX. Bytes >= 0x80 pass through (UTF-8 stays UTF-8). */
static void w_json_escaped(wbuf_t *w, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (; *p != 0u && !w->overflow; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            w_char(w, '\\');
            w_char(w, (char)c);
        } else if (c < 0x20u) {
            w_str(w, "\\u00");
            w_char(w, hexdig[c >> 4]);
            w_char(w, hexdig[c & 0x0fu]);
        } else {
            w_char(w, (char)c);
        }
    }
}

int claim_json_build(char *buf, size_t cap, const char *secret, uint32_t duration_ms)
{
    wbuf_t w;
    int need_comma = 0;
    w_init(&w, buf, cap);
    w_char(&w, '{');
    if (secret != NULL && secret[0] != '\0') {
        w_str(&w, "\"secretKey\":\"");
        w_json_escaped(&w, secret);
        w_char(&w, '"');
        need_comma = 1;
    }
    if (duration_ms != 0u) {
        if (need_comma) {
            w_char(&w, ',');
        }
        w_str(&w, "\"durationMs\":");
        w_u32(&w, duration_ms);
    }
    w_char(&w, '}');
    return w_done(&w);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int claim_url_with_path(char *buf, size_t cap, const char *base, const char *path)
{
    wbuf_t w;
    size_t n;
    const char *p;
    if (base == NULL || !(starts_with(base, "http://") || starts_with(base, "https://"))) {
        if (buf != NULL && cap > 0) {
            buf[0] = '\0';
        }
        return -1;
    }
    n = strlen(base);
    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    if (n <= (starts_with(base, "https://") ? strlen("https://") : strlen("http://"))) {
        n = 0; /* scheme without a host */
    }
    for (p = base; p < base + n; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20u || c >= 0x7fu) { /* no spaces, controls or raw non-ASCII in a URL */
            n = 0;
            break;
        }
    }
    if (n == 0) {
        if (buf != NULL && cap > 0) {
            buf[0] = '\0';
        }
        return -1;
    }
    w_init(&w, buf, cap);
    for (p = base; p < base + n; p++) {
        w_char(&w, *p);
    }
    w_str(&w, path);
    return w_done(&w);
}

int claim_url_build(char *buf, size_t cap, const char *base)
{
    return claim_url_with_path(buf, cap, base, "/devices/claim");
}

int claim_token_valid(const char *token)
{
    size_t n = 0;
    if (token == NULL) {
        return 0;
    }
    for (; token[n] != '\0'; n++) {
        unsigned char c = (unsigned char)token[n];
        if (n >= CLAIM_TOKEN_MAX || c <= 0x20u || c >= 0x7fu || c == '/') {
            return 0;
        }
    }
    return n > 0;
}

static int secret_len_ok(const char *secret)
{
    size_t n = 0;
    if (secret == NULL) {
        return 1;
    }
    while (secret[n] != '\0') {
        if (++n > CLAIM_SECRET_MAX) {
            return 0;
        }
    }
    return 1;
}

claim_status_t claim_request_build(claim_request_t *req, const claim_config_t *cfg,
                                   uint32_t idem_hi, uint32_t idem_lo)
{
    wbuf_t w;
    int n;
    size_t i;
    if (req == NULL || cfg == NULL) {
        return CLAIM_ERR_ARG;
    }
    memset(req, 0, sizeof(*req));
    if (!claim_token_valid(cfg->token) || !secret_len_ok(cfg->secret) ||
        cfg->duration_ms > CLAIM_DURATION_MAX || cfg->prefer_wait_s > CLAIM_WAIT_MAX_S) {
        return CLAIM_ERR_ARG;
    }
    n = claim_json_build(req->body, sizeof(req->body), cfg->secret, cfg->duration_ms);
    if (n < 0) {
        return CLAIM_ERR_ARG;
    }
    req->body_len = (size_t)n;

    if (cfg->service_url != NULL && cfg->service_url[0] != '\0') {
        if (claim_url_build(req->url, sizeof(req->url), cfg->service_url) < 0) {
            return CLAIM_ERR_ARG;
        }
    }

    for (i = 0; i < 8u; i++) {
        req->idem_key[i] = hexdig[(idem_hi >> (28u - 4u * i)) & 0x0fu];
        req->idem_key[8u + i] = hexdig[(idem_lo >> (28u - 4u * i)) & 0x0fu];
    }
    req->idem_key[CLAIM_IDEM_KEY_LEN] = '\0';

    req->headers[req->n_headers].name = "X-Device-Token";
    req->headers[req->n_headers++].value = cfg->token;
    if (cfg->prefer_wait_s > 0u) {
        w_init(&w, req->prefer, sizeof(req->prefer));
        w_str(&w, "wait=");
        w_u32(&w, cfg->prefer_wait_s);
        if (w_done(&w) < 0) {
            return CLAIM_ERR_ARG;
        }
        req->headers[req->n_headers].name = "Prefer";
        req->headers[req->n_headers++].value = req->prefer;
    }
    req->headers[req->n_headers].name = "Idempotency-Key";
    req->headers[req->n_headers++].value = req->idem_key;
    return CLAIM_OK;
}

uint32_t claim_backoff_ms(uint32_t attempt, uint32_t base_ms, uint32_t max_ms, uint32_t rnd)
{
    uint32_t d = base_ms;
    uint32_t i;
    uint32_t half;
    if (max_ms < base_ms) {
        max_ms = base_ms;
    }
    for (i = 0; i < attempt && d < max_ms; i++) {
        d = (d > max_ms / 2u) ? max_ms : d * 2u; /* cannot overflow */
    }
    if (d > max_ms) {
        d = max_ms;
    }
    half = d / 2u;
    return half + rnd % (d - half + 1u); /* in [d/2, d] */
}

uint32_t claim_retry_after_ms(const char *value)
{
    uint32_t secs = 0;
    size_t digits = 0;
    const char *p = value;
    if (p == NULL) {
        return 0;
    }
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        secs = secs * 10u + (uint32_t)(*p - '0');
        if (++digits > 6u) { /* > 999999 s: absurd; also keeps the arithmetic in range */
            return 0;
        }
    }
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (digits == 0 || *p != '\0' || secs > 86400u) {
        return 0;
    }
    return secs * 1000u;
}

claim_http_class_t claim_http_classify(claim_io_t io, int status)
{
    if (io != CLAIM_IO_OK) {
        return CLAIM_HTTP_FALLBACK_RETRY; /* network error or timeout */
    }
    if ((status >= 200 && status <= 299) || status == 409) {
        return CLAIM_HTTP_DONE;
    }
    if (status == 400 || status == 413 || status == 415 || status == 422) {
        return CLAIM_HTTP_CONFIG;
    }
    if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
        return CLAIM_HTTP_FALLBACK_RETRY;
    }
    return CLAIM_HTTP_FALLBACK_STOP; /* 401, 403, 404, 3xx, ...: retrying cannot help */
}

const char *claim_status_str(claim_status_t s)
{
    switch (s) {
    case CLAIM_OK: return "ok";
    case CLAIM_ERR_ARG: return "invalid-argument";
    case CLAIM_ERR_CONFIG: return "config-error";
    case CLAIM_ERR_TOKEN: return "token-rejected";
    case CLAIM_ERR_DEADLINE: return "deadline";
    case CLAIM_ERR_EXHAUSTED: return "attempts-exhausted";
    case CLAIM_ERR_DUPLICATE: return "duplicate-trigger";
    }
    return "unknown";
}

const char *claim_path_str(claim_path_t p)
{
    switch (p) {
    case CLAIM_PATH_NONE: return "none";
    case CLAIM_PATH_SERVICE: return "service";
    case CLAIM_PATH_MQTT: return "mqtt";
    }
    return "unknown";
}

const char *claim_io_str(claim_io_t io)
{
    switch (io) {
    case CLAIM_IO_OK: return "ok";
    case CLAIM_IO_TIMEOUT: return "timeout";
    case CLAIM_IO_UNREACHABLE: return "unreachable";
    case CLAIM_IO_REFUSED: return "refused";
    case CLAIM_IO_ERROR: return "error";
    }
    return "unknown";
}
