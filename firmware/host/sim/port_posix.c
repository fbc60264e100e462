/*
 * port_posix.c - the simulator's claim_port_t: the same claim_core as on the
 * device, with libcurl for the claimsvc request and libmosquitto for the
 * ThingsBoard MQTT fallback. Never prints the token, the secret, the body or a URL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <mosquitto.h>

#include "port_posix.h"

/* ---------------------------------------------------------------- clock */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t p_now_ms(void *ctx)
{
    (void)ctx;
    return mono_ms();
}

static void p_sleep_ms(void *ctx, uint32_t ms)
{
    struct timespec req, rem;
    (void)ctx;
    req.tv_sec = (time_t)(ms / 1000u);
    req.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
        req = rem;
    }
}

static uint32_t p_random_u32(void *ctx)
{
    posix_port_ctx_t *c = ctx;
    uint32_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c->rng = x;
    return x;
}

static void p_log(void *ctx, claim_log_level_t level, const char *msg)
{
    posix_port_ctx_t *c = ctx;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (c->quiet || (level == CLAIM_LOG_DEBUG && !c->verbose)) {
        return;
    }
    fprintf(stderr, "claim-sim: [%s] %s\n", names[level <= CLAIM_LOG_DEBUG ? level : 3], msg);
}

/* ----------------------------------------------------------------- HTTP */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    claim_http_response_t *resp = userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
        size_t i = sizeof(name) - 1, j = 0;
        while (i < n && (buf[i] == ' ' || buf[i] == '\t')) {
            i++;
        }
        while (i < n && buf[i] != '\r' && buf[i] != '\n' && j + 1 < sizeof(resp->retry_after)) {
            resp->retry_after[j++] = buf[i++];
        }
        resp->retry_after[j] = '\0';
    }
    return n;
}

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    claim_http_response_t *resp;
} body_sink_t;

/* Keeps at most cap - 1 bytes; the rest is counted as truncated and dropped. */
static size_t keep_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    body_sink_t *b = userdata;
    size_t n = size * nmemb;
    size_t room = b->cap - 1u - b->len;
    size_t take = n < room ? n : room;
    memcpy(b->buf + b->len, ptr, take);
    b->len += take;
    b->buf[b->len] = '\0';
    if (take < n) {
        b->resp->body_truncated = 1;
    }
    return n;
}

static claim_io_t curl_result(CURL *c, CURLcode rc, claim_http_response_t *resp)
{
    switch (rc) {
    case CURLE_OK: {
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        resp->status = (int)status;
        return CLAIM_IO_OK;
    }
    case CURLE_OPERATION_TIMEDOUT:
        return CLAIM_IO_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return CLAIM_IO_UNREACHABLE;
    default:
        return CLAIM_IO_ERROR;
    }
}

/* Header list "Name: value" for libcurl; NULL on failure. The scratch line
 * held the token and is wiped. */
static struct curl_slist *header_list(const char *first, const claim_header_t *headers, size_t n_headers)
{
    struct curl_slist *list = NULL, *tmp;
    char line[512];
    size_t i;
    list = curl_slist_append(list, first);
    list = list ? curl_slist_append(list, "Expect:") : NULL; /* no 100-continue round trip */
    for (i = 0; i < n_headers && list != NULL; i++) {
        int n = snprintf(line, sizeof(line), "%s: %s", headers[i].name, headers[i].value);
        if (n < 0 || (size_t)n >= sizeof(line)) {
            curl_slist_free_all(list);
            list = NULL;
            break;
        }
        tmp = curl_slist_append(list, line);
        if (tmp == NULL) {
            curl_slist_free_all(list);
            list = NULL;
            break;
        }
        list = tmp;
    }
    memset(line, 0, sizeof(line));
    return list;
}

static claim_io_t p_http_get(void *ctx, const char *url, const claim_header_t *headers,
                             size_t n_headers, char *body, size_t body_cap, size_t *body_len,
                             uint32_t timeout_ms, claim_http_response_t *resp)
{
    CURL *c;
    struct curl_slist *list;
    body_sink_t sink;
    claim_io_t io;
    (void)ctx;

    *body_len = 0;
    body[0] = '\0';
    c = curl_easy_init();
    if (c == NULL) {
        return CLAIM_IO_ERROR;
    }
    list = header_list("Accept: application/json", headers, n_headers);
    if (list == NULL) {
        curl_easy_cleanup(c);
        return CLAIM_IO_ERROR;
    }
    sink.buf = body;
    sink.cap = body_cap;
    sink.len = 0;
    sink.resp = resp;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "claim-sim/1");
    io = curl_result(c, curl_easy_perform(c), resp);
    *body_len = sink.len;
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return io;
}

static claim_io_t p_http_post(void *ctx, const char *url, const claim_header_t *headers,
                              size_t n_headers, const char *body, size_t body_len,
                              uint32_t timeout_ms, claim_http_response_t *resp)
{
    CURL *c;
    struct curl_slist *list;
    claim_io_t io;
    (void)ctx;

    c = curl_easy_init();
    if (c == NULL) {
        return CLAIM_IO_ERROR;
    }
    list = header_list("Content-Type: application/json", headers, n_headers);
    if (list == NULL) {
        curl_easy_cleanup(c);
        return CLAIM_IO_ERROR;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "claim-sim/1");
    io = curl_result(c, curl_easy_perform(c), resp);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return io;
}

/* ----------------------------------------------------------------- MQTT */

typedef struct {
    int connack_seen;
    int connack_rc;
    int mid;
    int acked;
    int lost;
} mq_state_t;

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    mq_state_t *st = obj;
    (void)m;
    st->connack_seen = 1;
    st->connack_rc = rc;
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    mq_state_t *st = obj;
    (void)m;
    if (st->mid != 0 && mid == st->mid) {
        st->acked = 1;
    }
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    mq_state_t *st = obj;
    (void)m;
    (void)rc;
    st->lost = 1;
}

/* mqtt://host[:port] or tcp://host[:port]; IPv6 as [addr]:port. 0 on success. */
static int parse_mqtt_uri(const char *uri, char *host, size_t host_cap, int *port)
{
    const char *p, *end, *colon;
    size_t n;
    long v;
    char *ep;
    if (strncmp(uri, "mqtt://", 7) == 0) {
        p = uri + 7;
    } else if (strncmp(uri, "tcp://", 6) == 0) {
        p = uri + 6;
    } else {
        return -1; /* mqtts/ws: not supported by the simulator */
    }
    end = p + strcspn(p, "/");
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL) {
            return -1;
        }
        n = (size_t)(rb - p - 1);
        if (n == 0 || n >= host_cap) {
            return -1;
        }
        memcpy(host, p + 1, n);
        host[n] = '\0';
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        n = (size_t)((colon ? colon : end) - p);
        if (n == 0 || n >= host_cap) {
            return -1;
        }
        memcpy(host, p, n);
        host[n] = '\0';
    }
    *port = 1883;
    if (colon != NULL) {
        v = strtol(colon + 1, &ep, 10);
        if (ep != end || v <= 0 || v > 65535) {
            return -1;
        }
        *port = (int)v;
    }
    return 0;
}

static claim_io_t p_mqtt_publish(void *ctx, const char *broker_uri, const char *username,
                                 const char *topic, const char *payload, size_t payload_len,
                                 uint32_t timeout_ms, int *connack_rc)
{
    char host[256];
    int port;
    struct mosquitto *m;
    mq_state_t st;
    uint64_t deadline = mono_ms() + timeout_ms;
    claim_io_t io = CLAIM_IO_TIMEOUT;
    int published = 0;
    int rc, loop_rc;
    (void)ctx;

    if (parse_mqtt_uri(broker_uri, host, sizeof(host), &port) != 0) {
        return CLAIM_IO_ERROR;
    }
    memset(&st, 0, sizeof(st));
    m = mosquitto_new(NULL, true, &st); /* random client id, clean session */
    if (m == NULL) {
        return CLAIM_IO_ERROR;
    }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_publish_callback_set(m, on_publish);
    mosquitto_disconnect_callback_set(m, on_disconnect);
    if (mosquitto_username_pw_set(m, username, NULL) != MOSQ_ERR_SUCCESS) {
        mosquitto_destroy(m);
        return CLAIM_IO_ERROR;
    }
    /* async: a TCP connect that hangs must not outlive timeout_ms */
    rc = mosquitto_connect_async(m, host, port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_destroy(m);
        return rc == MOSQ_ERR_INVAL ? CLAIM_IO_ERROR : CLAIM_IO_UNREACHABLE;
    }
    for (;;) {
        uint64_t now = mono_ms();
        int slice;
        if (now >= deadline) {
            io = CLAIM_IO_TIMEOUT;
            break;
        }
        slice = (int)(deadline - now < 100u ? deadline - now : 100u);
        loop_rc = mosquitto_loop(m, slice, 1);
        if (st.connack_seen && st.connack_rc != 0) {
            *connack_rc = st.connack_rc;
            io = CLAIM_IO_REFUSED;
            break;
        }
        if (st.connack_seen && !published) {
            rc = mosquitto_publish(m, &st.mid, topic, (int)payload_len, payload, 1, false);
            if (rc != MOSQ_ERR_SUCCESS) {
                io = CLAIM_IO_ERROR;
                break;
            }
            published = 1;
        }
        if (st.acked) {
            io = CLAIM_IO_OK;
            break;
        }
        if (loop_rc != MOSQ_ERR_SUCCESS || st.lost) {
            io = st.connack_seen ? CLAIM_IO_ERROR : CLAIM_IO_UNREACHABLE;
            break;
        }
    }
    if (st.connack_seen && st.connack_rc == 0) {
        mosquitto_disconnect(m);
    }
    mosquitto_destroy(m);
    return io;
}

/* ----------------------------------------------------------------- init */

static int g_libs_ready;

int posix_port_init(claim_port_t *port, posix_port_ctx_t *ctx)
{
    uint32_t seed = 0;
    int fd;
    if (!g_libs_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return -1;
        }
        if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
            curl_global_cleanup();
            return -1;
        }
        g_libs_ready = 1;
    }
    fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &seed, sizeof(seed)) != (ssize_t)sizeof(seed)) {
            seed = 0;
        }
        close(fd);
    }
    if (seed == 0) {
        seed = (uint32_t)mono_ms() ^ (uint32_t)getpid() ^ 0x9e3779b9u;
    }
    ctx->rng = seed;
    memset(port, 0, sizeof(*port));
    port->ctx = ctx;
    port->http_post = p_http_post;
    port->http_get = p_http_get;
    port->mqtt_publish = p_mqtt_publish;
    port->now_ms = p_now_ms;
    port->sleep_ms = p_sleep_ms;
    port->random_u32 = p_random_u32;
    port->log = p_log;
    return 0;
}

void posix_port_cleanup(void)
{
    if (g_libs_ready) {
        mosquitto_lib_cleanup();
        curl_global_cleanup();
        g_libs_ready = 0;
    }
}
