/* test_flow.c - claim_run() against the scripted fake port: every branch of
 * the docs/design.md §7 decision table, backoff, Retry-After, deadline, one claim per
 * trigger, and no token or secret in anything logged. */
#include <string.h>

#include "check.h"
#include "claim/claim.h"
#include "fake_port.h"

#define TOKEN "A1b2C3d4E5f6G7h8I9j0"
#define SECRET "Sup3r\"Secret\\Key\n"
#define BODY "{\"secretKey\":\"Sup3r\\\"Secret\\\\Key\\u000a\",\"durationMs\":60000}"
#define SVC "http://127.0.0.1:18080"
#define BROKER "mqtt://127.0.0.1:18830"

static fake_t F; /* big: keep it off the stack */

static claim_config_t base_cfg(void)
{
    claim_config_t c;
    claim_config_defaults(&c);
    c.service_url = SVC;
    c.mqtt_uri = BROKER;
    c.token = TOKEN;
    c.secret = SECRET;
    c.duration_ms = 60000u;
    return c;
}

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* Secrecy: nothing the core logs contains the token, the secret (raw or
 * escaped), any 6-character piece of either, or the payload. */
static void check_no_secrets(const fake_t *f, const char *token, const char *secret)
{
    size_t i;
    CHECK(f->n_logs > 0); /* the core did log, so the check means something */
    for (i = 0; token[i] != '\0' && token[i + 1] != '\0' && strlen(token + i) >= 6; i++) {
        char piece[7];
        memcpy(piece, token + i, 6);
        piece[6] = '\0';
        CHECK(!contains(f->log, piece));
    }
    for (i = 0; secret[i] != '\0' && strlen(secret + i) >= 6; i++) {
        char piece[7];
        memcpy(piece, secret + i, 6);
        piece[6] = '\0';
        CHECK(!contains(f->log, piece));
    }
    CHECK(!contains(f->log, "secretKey"));
}

static claim_status_t run(const claim_config_t *cfg, claim_result_t *res)
{
    claim_port_t p = fake_port(&F);
    claim_status_t st = claim_run(cfg, &p, res);
    CHECK_EQ_INT(st, res->status);
    if (cfg->token != NULL && cfg->token[0] != '\0') {
        check_no_secrets(&F, cfg->token, cfg->secret != NULL ? cfg->secret : "");
    }
    CHECK(!F.unscripted);
    CHECK_EQ_INT(res->service_tries, F.n_http_calls);
    CHECK_EQ_INT(res->mqtt_tries, F.n_mqtt_calls);
    CHECK_EQ_INT(res->elapsed_ms, F.now - F.start);
    return st;
}

static void check_http_request(const fake_http_call_t *c)
{
    CHECK_EQ_STR(c->url, SVC "/devices/claim");
    CHECK_EQ_STR(c->body, BODY);
    CHECK_EQ_INT(c->body_len, strlen(BODY));
    CHECK_EQ_INT(c->n_headers, 3);
    CHECK_EQ_STR(c->hname[0], "X-Device-Token");
    CHECK_EQ_STR(c->hval[0], TOKEN);
    CHECK_EQ_STR(c->hname[1], "Prefer");
    CHECK_EQ_STR(c->hval[1], "wait=5");
    CHECK_EQ_STR(c->hname[2], "Idempotency-Key");
    CHECK_EQ_INT(strlen(c->hval[2]), CLAIM_IDEM_KEY_LEN);
}

static void check_mqtt_request(const fake_mqtt_call_t *c)
{
    CHECK_EQ_STR(c->uri, BROKER);
    CHECK_EQ_STR(c->username, TOKEN);
    CHECK_EQ_STR(c->topic, "v1/devices/me/claim");
    CHECK_EQ_STR(c->payload, BODY); /* byte-identical to the HTTP body */
    CHECK_EQ_INT(c->payload_len, strlen(BODY));
}

static void test_service_2xx_done(void)
{
    static const int codes[] = {200, 201, 202, 204};
    size_t i;
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        claim_config_t cfg = base_cfg();
        claim_result_t r;
        fake_init(&F);
        fake_http(&F, CLAIM_IO_OK, codes[i], NULL, 30);
        fake_mqtt(&F, CLAIM_IO_OK, 0, 0); /* must stay unused */
        CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
        CHECK_EQ_INT(r.path, CLAIM_PATH_SERVICE);
        CHECK_EQ_INT(r.last_http_status, codes[i]);
        CHECK_EQ_INT(F.n_http_calls, 1);
        CHECK_EQ_INT(F.n_mqtt_calls, 0);
        CHECK_EQ_INT(F.n_sleeps, 0);
        check_http_request(&F.http_calls[0]);
        CHECK_EQ_INT(F.http_calls[0].timeout_ms, 10000);
    }
}

static void test_service_409_done(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    fake_init(&F);
    fake_http(&F, CLAIM_IO_OK, 409, NULL, 10);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
    CHECK_EQ_INT(r.path, CLAIM_PATH_SERVICE);
    CHECK_EQ_INT(r.last_http_status, 409);
    CHECK_EQ_INT(F.n_mqtt_calls, 0);
}

static void test_service_config_error_no_fallback(void)
{
    static const int codes[] = {400, 413, 415, 422};
    size_t i;
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        claim_config_t cfg = base_cfg();
        claim_result_t r;
        fake_init(&F);
        fake_http(&F, CLAIM_IO_OK, codes[i], NULL, 10);
        CHECK_EQ_INT(run(&cfg, &r), CLAIM_ERR_CONFIG);
        CHECK_EQ_INT(r.path, CLAIM_PATH_NONE);
        CHECK_EQ_INT(r.last_http_status, codes[i]);
        CHECK_EQ_INT(F.n_http_calls, 1);
        CHECK_EQ_INT(F.n_mqtt_calls, 0);
        CHECK_EQ_INT(F.n_sleeps, 0);
        CHECK(contains(F.log, "configuration error"));
    }
}

/* network error, timeout, 401, 403, 429, 5xx: MQTT in the same round */
static void test_fallback_to_mqtt(void)
{
    static const struct {
        claim_io_t io;
        int status;
    } cases[] = {
        {CLAIM_IO_TIMEOUT, 0}, {CLAIM_IO_UNREACHABLE, 0}, {CLAIM_IO_ERROR, 0},
        {CLAIM_IO_OK, 401},    {CLAIM_IO_OK, 403},        {CLAIM_IO_OK, 429},
        {CLAIM_IO_OK, 500},    {CLAIM_IO_OK, 502},        {CLAIM_IO_OK, 503},
        {CLAIM_IO_OK, 504},    {CLAIM_IO_OK, 404},        {CLAIM_IO_OK, 408},
    };
    size_t i;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        claim_config_t cfg = base_cfg();
        claim_result_t r;
        fake_init(&F);
        fake_http(&F, cases[i].io, cases[i].status, NULL, 20);
        fake_mqtt(&F, CLAIM_IO_OK, 0, 40);
        CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
        CHECK_EQ_INT(r.path, CLAIM_PATH_MQTT);
        CHECK_EQ_INT(F.n_http_calls, 1);
        CHECK_EQ_INT(F.n_mqtt_calls, 1);
        CHECK_EQ_INT(F.n_sleeps, 0);
        CHECK_EQ_INT(r.last_http_status, cases[i].io == CLAIM_IO_OK ? cases[i].status : 0);
        check_http_request(&F.http_calls[0]);
        check_mqtt_request(&F.mqtt_calls[0]);
        CHECK_EQ_INT(F.mqtt_calls[0].timeout_ms, 10000);
    }
}

static void test_http_timeout_covers_prefer_wait(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    cfg.http_timeout_ms = 1000u; /* shorter than Prefer: wait=5 plus margin */
    fake_init(&F);
    fake_http(&F, CLAIM_IO_OK, 200, NULL, 5000);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
    CHECK_EQ_INT(F.http_calls[0].timeout_ms, 7000);
}

static void test_retry_service_after_failed_mqtt(void)
{
    /* round 1: 503 then MQTT timeout; sleep backoff(0); round 2: service 200 */
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    fake_init(&F);
    fake_rnd(&F, 0x11111111u); /* idempotency key hi */
    fake_rnd(&F, 0x22222222u); /* idempotency key lo */
    fake_rnd(&F, 123u);        /* jitter for the first backoff */
    fake_http(&F, CLAIM_IO_OK, 503, NULL, 10);
    fake_mqtt(&F, CLAIM_IO_TIMEOUT, 0, 10000);
    fake_http(&F, CLAIM_IO_OK, 200, NULL, 10);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
    CHECK_EQ_INT(r.path, CLAIM_PATH_SERVICE);
    CHECK_EQ_INT(r.rounds, 2);
    CHECK_EQ_INT(F.n_sleeps, 1);
    CHECK_EQ_INT(F.sleeps[0], claim_backoff_ms(0, 1000, 30000, 123u));
    CHECK_EQ_INT(F.sleeps[0], 623);
    /* the same Idempotency-Key on every retry of one run */
    CHECK_EQ_STR(F.http_calls[0].hval[2], "1111111122222222");
    CHECK_EQ_STR(F.http_calls[1].hval[2], "1111111122222222");
    CHECK_EQ_INT(r.last_mqtt_io, CLAIM_IO_TIMEOUT);
}

static void test_backoff_sequence(void)
{
    /* service down, MQTT down: sleeps follow the exponential ceiling, jitter from random */
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    size_t i;
    cfg.max_attempts = 7u;
    cfg.deadline_ms = 3600000u;
    fake_init(&F);
    F.rnd_default = 0xffffffffu;
    for (i = 0; i < 7; i++) {
        fake_http(&F, CLAIM_IO_UNREACHABLE, 0, NULL, 1);
        fake_mqtt(&F, CLAIM_IO_UNREACHABLE, 0, 1);
    }
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_ERR_EXHAUSTED);
    CHECK_EQ_INT(r.rounds, 7);
    CHECK_EQ_INT(F.n_sleeps, 6);
    for (i = 0; i < F.n_sleeps && i < 6; i++) {
        uint32_t ceiling = 1000u << i;
        if (ceiling > 30000u) {
            ceiling = 30000u;
        }
        CHECK(F.sleeps[i] >= ceiling / 2u);
        CHECK(F.sleeps[i] <= ceiling);
        CHECK_EQ_INT(F.sleeps[i], claim_backoff_ms((uint32_t)i, 1000u, 30000u, 0xffffffffu));
    }
}

static void test_401_403_not_retried_on_service(void)
{
    static const int codes[] = {401, 403, 404};
    size_t i;
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        claim_config_t cfg = base_cfg();
        claim_result_t r;
        fake_init(&F);
        fake_http(&F, CLAIM_IO_OK, codes[i], NULL, 10);
        fake_mqtt(&F, CLAIM_IO_TIMEOUT, 0, 10000);
        fake_mqtt(&F, CLAIM_IO_REFUSED, 3, 10); /* server unavailable: retried */
        fake_mqtt(&F, CLAIM_IO_OK, 0, 10);
        CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
        CHECK_EQ_INT(r.path, CLAIM_PATH_MQTT);
        CHECK_EQ_INT(F.n_http_calls, 1); /* the service is not asked again */
        CHECK_EQ_INT(F.n_mqtt_calls, 3);
        CHECK_EQ_INT(F.n_sleeps, 2);
    }
}

static void test_connack_bad_credentials_stops(void)
{
    static const int codes[] = {4, 5};
    size_t i;
    for (i = 0; i < 2; i++) {
        claim_config_t cfg = base_cfg();
        claim_result_t r;
        fake_init(&F);
        fake_http(&F, CLAIM_IO_UNREACHABLE, 0, NULL, 5);
        fake_mqtt(&F, CLAIM_IO_REFUSED, codes[i], 5);
        CHECK_EQ_INT(run(&cfg, &r), CLAIM_ERR_TOKEN);
        CHECK_EQ_INT(r.last_connack_rc, codes[i]);
        CHECK_EQ_INT(F.n_http_calls, 1);
        CHECK_EQ_INT(F.n_mqtt_calls, 1);
        CHECK_EQ_INT(F.n_sleeps, 0);
        CHECK(contains(F.log, "refused the token"));
    }
}

static void test_connack_other_codes_retried(void)
{
    static const int codes[] = {1, 2, 3};
    size_t i;
    for (i = 0; i < 3; i++) {
        claim_config_t cfg = base_cfg();
        claim_result_t r;
        cfg.service_url = NULL;
        fake_init(&F);
        fake_mqtt(&F, CLAIM_IO_REFUSED, codes[i], 5);
        fake_mqtt(&F, CLAIM_IO_OK, 0, 5);
        CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
        CHECK_EQ_INT(r.path, CLAIM_PATH_MQTT);
        CHECK_EQ_INT(F.n_mqtt_calls, 2);
        CHECK_EQ_INT(F.n_sleeps, 1);
    }
}

static void test_mqtt_only_when_no_service(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    cfg.service_url = "";
    fake_init(&F);
    fake_mqtt(&F, CLAIM_IO_OK, 0, 5);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
    CHECK_EQ_INT(r.path, CLAIM_PATH_MQTT);
    CHECK_EQ_INT(F.n_http_calls, 0);
    check_mqtt_request(&F.mqtt_calls[0]);
}

static void test_service_only_retries_then_gives_up(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    size_t i;
    cfg.mqtt_uri = NULL;
    cfg.max_attempts = 4u;
    fake_init(&F);
    for (i = 0; i < 4; i++) {
        fake_http(&F, CLAIM_IO_OK, 502, NULL, 10);
    }
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_ERR_EXHAUSTED);
    CHECK_EQ_INT(F.n_http_calls, 4);
    CHECK_EQ_INT(F.n_sleeps, 3);
    CHECK_EQ_INT(F.n_mqtt_calls, 0);
}

static void test_service_only_401_stops_at_once(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    cfg.mqtt_uri = NULL;
    fake_init(&F);
    fake_http(&F, CLAIM_IO_OK, 401, NULL, 10);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_ERR_EXHAUSTED);
    CHECK_EQ_INT(F.n_http_calls, 1);
    CHECK_EQ_INT(F.n_sleeps, 0);
}

static void test_retry_after_skips_service_while_mqtt_tries(void)
{
    /* 503 Retry-After: 20 -> the service is not asked again for 20 s; MQTT keeps trying */
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    uint64_t t0;
    size_t i;
    cfg.backoff_base_ms = 2000u;
    cfg.backoff_max_ms = 4000u;
    cfg.max_attempts = 20u;
    fake_init(&F);
    t0 = F.now;
    fake_http(&F, CLAIM_IO_OK, 503, "20", 10);
    for (i = 0; i < 20; i++) {
        fake_mqtt(&F, CLAIM_IO_UNREACHABLE, 0, 10);
    }
    fake_http(&F, CLAIM_IO_OK, 202, NULL, 10);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
    CHECK_EQ_INT(r.path, CLAIM_PATH_SERVICE);
    CHECK_EQ_INT(F.n_http_calls, 2);
    CHECK(F.http_calls[1].at_ms >= t0 + 10 + 20000);
    CHECK(F.n_mqtt_calls >= 4); /* MQTT rounds happened in between */
}

static void test_retry_after_extends_sleep_without_mqtt(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    uint64_t t0;
    cfg.mqtt_uri = NULL;
    fake_init(&F);
    t0 = F.now;
    fake_http(&F, CLAIM_IO_OK, 429, "7", 100);
    fake_http(&F, CLAIM_IO_OK, 201, NULL, 100);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
    CHECK_EQ_INT(F.n_sleeps, 1);
    CHECK_EQ_INT(F.sleeps[0], 7000);
    CHECK_EQ_INT(F.http_calls[1].at_ms, t0 + 100 + 7000);
}

static void test_retry_after_sleep_wakes_a_tick_early(void)
{
    /* vTaskDelay(n) blocks n-1..n tick periods: the sleep for Retry-After ends
     * up to 10 ms (100 Hz) before service_not_before. The service must still be
     * asked after the wait; here the round is spent doing nothing. */
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    cfg.mqtt_uri = NULL;
    cfg.max_attempts = 2u;
    fake_init(&F);
    F.sleep_short_ms = 5u;
    fake_http(&F, CLAIM_IO_OK, 503, "7", 100);
    fake_http(&F, CLAIM_IO_OK, 201, NULL, 100);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
    CHECK_EQ_INT(r.service_tries, 2);
}

static void test_retry_after_ignored_on_other_statuses(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    cfg.mqtt_uri = NULL;
    fake_init(&F);
    fake_http(&F, CLAIM_IO_OK, 500, "30", 100);
    fake_http(&F, CLAIM_IO_OK, 200, NULL, 100);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
    CHECK_EQ_INT(F.n_sleeps, 1);
    CHECK(F.sleeps[0] <= 1000u);
}

static void test_retry_after_beyond_deadline(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    cfg.mqtt_uri = NULL;
    cfg.deadline_ms = 60000u;
    fake_init(&F);
    fake_http(&F, CLAIM_IO_OK, 503, "3600", 100);
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_ERR_DEADLINE);
    CHECK_EQ_INT(F.n_sleeps, 0); /* does not sleep past the deadline */
    CHECK_EQ_INT(F.n_http_calls, 1);
    CHECK(F.now - F.start <= 60000u);
}

static void test_deadline_bounds_total_time(void)
{
    /* every call uses its whole timeout; the run must end within the deadline
     * and no call may be given more time than is left */
    static const uint32_t deadlines[] = {1u, 500u, 9999u, 25000u, 61000u, 120000u};
    size_t d, i;
    for (d = 0; d < sizeof(deadlines) / sizeof(deadlines[0]); d++) {
        claim_config_t cfg = base_cfg();
        claim_result_t r;
        claim_status_t st;
        cfg.deadline_ms = deadlines[d];
        cfg.max_attempts = 100u;
        fake_init(&F);
        F.rnd_default = 0xffffffffu;
        for (i = 0; i < FAKE_MAX_STEPS; i++) {
            fake_http(&F, CLAIM_IO_TIMEOUT, 0, NULL, 0xffffffffu);
            fake_mqtt(&F, CLAIM_IO_TIMEOUT, 0, 0xffffffffu);
        }
        st = run(&cfg, &r);
        CHECK_EQ_INT(st, CLAIM_ERR_DEADLINE);
        CHECK(F.now - F.start <= deadlines[d]);
        for (i = 0; i < F.n_http_calls; i++) {
            CHECK(F.http_calls[i].at_ms + F.http_calls[i].timeout_ms <= F.start + deadlines[d]);
        }
        for (i = 0; i < F.n_mqtt_calls; i++) {
            CHECK(F.mqtt_calls[i].at_ms + F.mqtt_calls[i].timeout_ms <= F.start + deadlines[d]);
        }
    }
}

static void test_max_attempts_bound(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    size_t i;
    cfg.max_attempts = 3u;
    cfg.deadline_ms = 3600000u;
    fake_init(&F);
    for (i = 0; i < 10; i++) {
        fake_http(&F, CLAIM_IO_OK, 500, NULL, 1);
        fake_mqtt(&F, CLAIM_IO_TIMEOUT, 0, 10000);
    }
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_ERR_EXHAUSTED);
    CHECK_EQ_INT(r.rounds, 3);
    CHECK_EQ_INT(F.n_http_calls, 3);
    CHECK_EQ_INT(F.n_mqtt_calls, 3);
    CHECK_EQ_INT(F.n_sleeps, 2);
}

static void test_nothing_after_success(void)
{
    /* a long script; the run must stop at the first success and use nothing more */
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    size_t i;
    fake_init(&F);
    fake_http(&F, CLAIM_IO_TIMEOUT, 0, NULL, 10000);
    fake_mqtt(&F, CLAIM_IO_OK, 0, 10);
    for (i = 0; i < 5; i++) {
        fake_http(&F, CLAIM_IO_OK, 200, NULL, 1);
        fake_mqtt(&F, CLAIM_IO_OK, 0, 1);
    }
    CHECK_EQ_INT(run(&cfg, &r), CLAIM_OK);
    CHECK_EQ_INT(F.n_http_calls, 1);
    CHECK_EQ_INT(F.n_mqtt_calls, 1);
    CHECK_EQ_INT(F.n_sleeps, 0);
}

static void test_once_per_trigger(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    claim_once_t once;
    claim_port_t p;
    fake_init(&F);
    p = fake_port(&F);
    claim_once_init(&once);
    fake_http(&F, CLAIM_IO_OK, 200, NULL, 1);
    fake_http(&F, CLAIM_IO_OK, 200, NULL, 1);
    CHECK_EQ_INT(claim_once_run(&once, 7u, &cfg, &p, &r), CLAIM_OK);
    CHECK_EQ_INT(claim_once_run(&once, 7u, &cfg, &p, &r), CLAIM_ERR_DUPLICATE);
    CHECK_EQ_INT(r.status, CLAIM_ERR_DUPLICATE);
    CHECK_EQ_INT(claim_once_run(&once, 7u, &cfg, &p, &r), CLAIM_ERR_DUPLICATE);
    CHECK_EQ_INT(F.n_http_calls, 1);
    CHECK_EQ_INT(claim_once_run(&once, 8u, &cfg, &p, &r), CLAIM_OK); /* a new trigger */
    CHECK_EQ_INT(F.n_http_calls, 2);
    CHECK_EQ_INT(F.n_mqtt_calls, 0);
    /* a failed run still consumes its trigger: no silent re-send */
    fake_http(&F, CLAIM_IO_OK, 400, NULL, 1);
    CHECK_EQ_INT(claim_once_run(&once, 9u, &cfg, &p, &r), CLAIM_ERR_CONFIG);
    CHECK_EQ_INT(claim_once_run(&once, 9u, &cfg, &p, &r), CLAIM_ERR_DUPLICATE);
    CHECK_EQ_INT(F.n_http_calls, 3);
    CHECK(!F.unscripted);
    CHECK_EQ_INT(claim_once_run(NULL, 1u, &cfg, &p, &r), CLAIM_ERR_ARG);
}

static void test_idempotency_key_differs_between_runs(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    claim_port_t p;
    fake_init(&F);
    p = fake_port(&F);
    fake_rnd(&F, 1u);
    fake_rnd(&F, 2u);
    fake_rnd(&F, 3u);
    fake_rnd(&F, 4u);
    fake_http(&F, CLAIM_IO_OK, 200, NULL, 1);
    fake_http(&F, CLAIM_IO_OK, 200, NULL, 1);
    CHECK_EQ_INT(claim_run(&cfg, &p, &r), CLAIM_OK);
    CHECK_EQ_INT(claim_run(&cfg, &p, &r), CLAIM_OK);
    CHECK_EQ_STR(F.http_calls[0].hval[2], "0000000100000002");
    CHECK_EQ_STR(F.http_calls[1].hval[2], "0000000300000004");
}

static void test_invalid_config_no_io(void)
{
    claim_config_t good = base_cfg();
    claim_config_t c;
    claim_result_t r;
    claim_port_t p;
    int i;
    char longtok[CLAIM_TOKEN_MAX + 2];
    memset(longtok, 'x', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = '\0';
    for (i = 0; i < 14; i++) {
        c = good;
        switch (i) {
        case 0: c.token = NULL; break;
        case 1: c.token = ""; break;
        case 2: c.token = "two words"; break;
        case 3: c.token = longtok; break;
        case 4: c.service_url = NULL; c.mqtt_uri = NULL; break;
        case 5: c.deadline_ms = 0u; break;
        case 6: c.max_attempts = 0u; break;
        case 7: c.max_attempts = 101u; break;
        case 8: c.backoff_base_ms = 1u; break;
        case 9: c.backoff_max_ms = 10u; break;
        case 10: c.service_url = "127.0.0.1:8080"; break;
        case 11: c.prefer_wait_s = 31u; break;
        case 12: c.duration_ms = CLAIM_DURATION_MAX + 1u; break;
        case 13: c.mqtt_timeout_ms = 0u; break;
        }
        fake_init(&F);
        p = fake_port(&F);
        CHECK_EQ_INT(claim_run(&c, &p, &r), CLAIM_ERR_ARG);
        CHECK_EQ_INT(F.n_http_calls + F.n_mqtt_calls + F.n_sleeps, 0);
        CHECK(!contains(F.log, "A1b2C3"));
    }
    fake_init(&F);
    p = fake_port(&F);
    p.http_post = NULL;
    CHECK_EQ_INT(claim_run(&good, &p, &r), CLAIM_ERR_ARG);
    CHECK_EQ_INT(claim_run(NULL, &p, &r), CLAIM_ERR_ARG);
    CHECK_EQ_INT(claim_run(&good, NULL, &r), CLAIM_ERR_ARG);
    p = fake_port(&F);
    CHECK_EQ_INT(claim_run(&good, &p, NULL) == CLAIM_ERR_ARG, 0); /* NULL result allowed */
}

static void test_no_log_callback(void)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    claim_port_t p;
    fake_init(&F);
    p = fake_port(&F);
    p.log = NULL;
    fake_http(&F, CLAIM_IO_OK, 503, NULL, 1);
    fake_mqtt(&F, CLAIM_IO_OK, 0, 1);
    CHECK_EQ_INT(claim_run(&cfg, &p, &r), CLAIM_OK);
    CHECK_EQ_INT(r.path, CLAIM_PATH_MQTT);
}

/* Runs one scripted scenario with the given token and secret; leaves the log in F. */
static void scenario(int scen, const char *token, const char *secret)
{
    claim_config_t cfg = base_cfg();
    claim_result_t r;
    claim_port_t p;
    cfg.token = token;
    cfg.secret = secret;
    cfg.max_attempts = 3u;
    fake_init(&F);
    p = fake_port(&F);
    switch (scen) {
    case 0: fake_http(&F, CLAIM_IO_OK, 200, NULL, 1); break;
    case 1: fake_http(&F, CLAIM_IO_OK, 422, NULL, 1); break;
    case 2:
        fake_http(&F, CLAIM_IO_TIMEOUT, 0, NULL, 1);
        fake_mqtt(&F, CLAIM_IO_REFUSED, 5, 1);
        break;
    case 3:
        fake_http(&F, CLAIM_IO_OK, 503, "1", 1);
        fake_mqtt(&F, CLAIM_IO_TIMEOUT, 0, 1);
        fake_http(&F, CLAIM_IO_OK, 401, NULL, 1);
        fake_mqtt(&F, CLAIM_IO_UNREACHABLE, 0, 1);
        fake_mqtt(&F, CLAIM_IO_OK, 0, 1);
        break;
    case 4:
        fake_http(&F, CLAIM_IO_ERROR, 0, NULL, 1);
        fake_mqtt(&F, CLAIM_IO_ERROR, 0, 1);
        fake_http(&F, CLAIM_IO_ERROR, 0, NULL, 1);
        fake_mqtt(&F, CLAIM_IO_REFUSED, 3, 1);
        fake_http(&F, CLAIM_IO_ERROR, 0, NULL, 1);
        fake_mqtt(&F, CLAIM_IO_ERROR, 0, 1);
        break;
    case 5: /* invalid secret (too long) */
        break;
    }
    (void)claim_run(&cfg, &p, &r);
    CHECK(!F.unscripted);
    CHECK(F.n_logs > 0);
}

static void test_secrets_never_logged_all_paths(void)
{
    /* The strongest form of "never logged": on every path the log is
     * byte-for-byte the same whatever the token and secret are. */
    static char log_a[sizeof(F.log)];
    static const char *const secrets[] = {"Sup3r\"Secret\\Key\n", "\x01\x02\x03\x1f", "x", ""};
    static char long_secret[CLAIM_SECRET_MAX + 2];
    size_t s;
    int scen;
    memset(long_secret, 'Q', sizeof(long_secret) - 1);
    long_secret[sizeof(long_secret) - 1] = '\0';
    for (scen = 0; scen < 6; scen++) {
        for (s = 0; s < sizeof(secrets) / sizeof(secrets[0]); s++) {
            const char *sec = scen == 5 ? long_secret : secrets[s];
            scenario(scen, "TokenAAAAAAAAAAAAAAA", sec);
            memcpy(log_a, F.log, sizeof(log_a));
            CHECK(!contains(log_a, "TokenAAAA"));
            scenario(scen, "zz99zz99zz99zz99zz99", scen == 5 ? long_secret : "other-secret");
            CHECK_EQ_STR(F.log, log_a);
            CHECK(!contains(F.log, "zz99zz"));
            CHECK(!contains(F.log, "other-secret"));
            CHECK(!contains(F.log, "QQQQ"));
            CHECK(!contains(F.log, "secretKey"));
            CHECK(!contains(F.log, "127.0.0.1")); /* no URLs either */
        }
    }
}

const test_case_t flow_tests[] = {
    {"flow: service 2xx -> done via service, no MQTT", test_service_2xx_done},
    {"flow: service 409 -> done via service", test_service_409_done},
    {"flow: 400/413/415/422 -> config error, no fallback", test_service_config_error_no_fallback},
    {"flow: network/timeout/401/403/429/5xx -> MQTT, same payload", test_fallback_to_mqtt},
    {"flow: HTTP timeout covers Prefer: wait", test_http_timeout_covers_prefer_wait},
    {"flow: service retried after MQTT failure, same Idempotency-Key", test_retry_service_after_failed_mqtt},
    {"flow: exponential backoff with jitter between rounds", test_backoff_sequence},
    {"flow: 401/403/404 -> service not asked again", test_401_403_not_retried_on_service},
    {"flow: CONNACK 4/5 -> token rejected, stop", test_connack_bad_credentials_stops},
    {"flow: CONNACK 1/2/3 -> retried", test_connack_other_codes_retried},
    {"flow: no service URL -> MQTT only", test_mqtt_only_when_no_service},
    {"flow: service only, 5xx -> bounded retries", test_service_only_retries_then_gives_up},
    {"flow: service only, 401 -> stop at once", test_service_only_401_stops_at_once},
    {"flow: Retry-After skips the service while MQTT tries", test_retry_after_skips_service_while_mqtt_tries},
    {"flow: Retry-After extends the sleep when only the service is left", test_retry_after_extends_sleep_without_mqtt},
    {"flow: Retry-After only on 429/503", test_retry_after_ignored_on_other_statuses},
    {"flow: Retry-After wait that wakes a tick early still asks the service", test_retry_after_sleep_wakes_a_tick_early},
    {"flow: Retry-After beyond the deadline -> stop, no sleep", test_retry_after_beyond_deadline},
    {"flow: deadline bounds total time and every timeout", test_deadline_bounds_total_time},
    {"flow: max_attempts bounds rounds", test_max_attempts_bound},
    {"flow: nothing is sent after a success", test_nothing_after_success},
    {"flow: at most one claim per trigger", test_once_per_trigger},
    {"flow: fresh Idempotency-Key per run", test_idempotency_key_differs_between_runs},
    {"flow: invalid configuration -> no I/O", test_invalid_config_no_io},
    {"flow: works without a log callback", test_no_log_callback},
    {"secrecy: token and secret never logged on any path", test_secrets_never_logged_all_paths},
    {NULL, NULL},
};
