/* test_build.c - JSON, URL, token, headers, backoff, Retry-After, classification. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "claim/claim.h"

static void json_exact(const char *secret, uint32_t dur, const char *want)
{
    char buf[CLAIM_BODY_MAX];
    int n = claim_json_build(buf, sizeof(buf), secret, dur);
    CHECK_EQ_INT(n, (long long)strlen(want));
    CHECK_EQ_STR(buf, want);
}

static void test_json_exact_bytes(void)
{
    json_exact("abc", 60000u, "{\"secretKey\":\"abc\",\"durationMs\":60000}");
    json_exact("abc", 0u, "{\"secretKey\":\"abc\"}");
    json_exact(NULL, 60000u, "{\"durationMs\":60000}");
    json_exact("", 60000u, "{\"durationMs\":60000}");
    json_exact(NULL, 0u, "{}");
    json_exact("", 0u, "{}");
    json_exact("x", 1u, "{\"secretKey\":\"x\",\"durationMs\":1}");
    json_exact("x", CLAIM_DURATION_MAX, "{\"secretKey\":\"x\",\"durationMs\":2592000000}");
    json_exact("x", 4294967295u, "{\"secretKey\":\"x\",\"durationMs\":4294967295}");
}

static void test_json_escaping(void)
{
    json_exact("a\"b", 0u, "{\"secretKey\":\"a\\\"b\"}");
    json_exact("a\\b", 0u, "{\"secretKey\":\"a\\\\b\"}");
    json_exact("\\\"", 0u, "{\"secretKey\":\"\\\\\\\"\"}");
    json_exact("line\nbreak", 0u, "{\"secretKey\":\"line\\u000abreak\"}");
    json_exact("\t\r\b\f", 0u, "{\"secretKey\":\"\\u0009\\u000d\\u0008\\u000c\"}");
    json_exact("\x01\x1f", 0u, "{\"secretKey\":\"\\u0001\\u001f\"}");
    json_exact(" ", 0u, "{\"secretKey\":\" \"}");
    json_exact("/{}[]:,'", 7u, "{\"secretKey\":\"/{}[]:,'\",\"durationMs\":7}");
    json_exact("\x7f", 0u, "{\"secretKey\":\"\x7f\"}");                 /* DEL needs no escape */
    json_exact("gr\xc3\xbc\xc3\x9f", 0u, "{\"secretKey\":\"gr\xc3\xbc\xc3\x9f\"}"); /* UTF-8 as is */
}

static void test_json_worst_case_fits(void)
{
    char secret[CLAIM_SECRET_MAX + 1];
    char buf[CLAIM_BODY_MAX];
    int n;
    memset(secret, 0x01, CLAIM_SECRET_MAX);
    secret[CLAIM_SECRET_MAX] = '\0';
    n = claim_json_build(buf, sizeof(buf), secret, CLAIM_DURATION_MAX);
    /* {"secretKey":" + 128 x \u0001 + ", + "durationMs": + 2592000000 + } */
    CHECK_EQ_INT(n, 14 + 6 * (long long)CLAIM_SECRET_MAX + 2 + 13 + 10 + 1);
    CHECK(n > 0 && (size_t)n < sizeof(buf));
}

static void test_json_small_buffer(void)
{
    const char *want = "{\"secretKey\":\"a\\\"b\",\"durationMs\":60000}";
    size_t need = strlen(want) + 1, cap;
    char buf[128];
    for (cap = 0; cap < need; cap++) {
        memset(buf, 'Z', sizeof(buf));
        CHECK_EQ_INT(claim_json_build(buf, cap, "a\"b", 60000u), -1);
        if (cap > 0) {
            CHECK(buf[0] == '\0'); /* never a truncated payload */
        }
        CHECK(buf[cap] == 'Z'); /* nothing written past cap */
    }
    CHECK_EQ_INT(claim_json_build(buf, need, "a\"b", 60000u), (long long)need - 1);
    CHECK_EQ_STR(buf, want);
    CHECK_EQ_INT(claim_json_build(NULL, 10, "a", 1u), -1);
}

static void test_url(void)
{
    char buf[CLAIM_URL_MAX];
    CHECK_EQ_INT(claim_url_build(buf, sizeof(buf), "http://127.0.0.1:8080"), 35);
    CHECK_EQ_STR(buf, "http://127.0.0.1:8080/devices/claim");
    claim_url_build(buf, sizeof(buf), "http://127.0.0.1:8080/");
    CHECK_EQ_STR(buf, "http://127.0.0.1:8080/devices/claim");
    claim_url_build(buf, sizeof(buf), "https://claims.example.com//");
    CHECK_EQ_STR(buf, "https://claims.example.com/devices/claim");
    claim_url_build(buf, sizeof(buf), "https://gw.example.com/claimsvc/v1");
    CHECK_EQ_STR(buf, "https://gw.example.com/claimsvc/v1/devices/claim");
    CHECK_EQ_INT(claim_url_build(buf, sizeof(buf), "ftp://x"), -1);
    CHECK_EQ_INT(claim_url_build(buf, sizeof(buf), "127.0.0.1:8080"), -1);
    CHECK_EQ_INT(claim_url_build(buf, sizeof(buf), "http://"), -1);
    CHECK_EQ_INT(claim_url_build(buf, sizeof(buf), "https:///"), -1);
    CHECK_EQ_INT(claim_url_build(buf, sizeof(buf), "http://a b"), -1);
    CHECK_EQ_INT(claim_url_build(buf, sizeof(buf), "http://a\r\nX: y"), -1);
    CHECK_EQ_INT(claim_url_build(buf, sizeof(buf), ""), -1);
    CHECK_EQ_INT(claim_url_build(buf, sizeof(buf), NULL), -1);
    CHECK_EQ_INT(claim_url_build(buf, 36, "http://127.0.0.1:8080"), 35);
    CHECK_EQ_INT(claim_url_build(buf, 35, "http://127.0.0.1:8080"), -1);
    CHECK(buf[0] == '\0');
}

static void test_token_valid(void)
{
    char t[CLAIM_TOKEN_MAX + 2];
    CHECK(claim_token_valid("A1b2C3d4E5f6G7h8I9j0"));
    CHECK(claim_token_valid("x"));
    CHECK(claim_token_valid("~!@#$%^&*()_+-={}[]|:;\"'<>,.?`"));
    CHECK(!claim_token_valid(NULL));
    CHECK(!claim_token_valid(""));
    CHECK(!claim_token_valid("has space"));
    CHECK(!claim_token_valid("has/slash"));
    CHECK(!claim_token_valid("crlf\r\nX-Evil: 1"));
    CHECK(!claim_token_valid("tab\t"));
    CHECK(!claim_token_valid("del\x7f"));
    CHECK(!claim_token_valid("utf\xc3\xbc"));
    memset(t, 'a', sizeof(t));
    t[CLAIM_TOKEN_MAX] = '\0';
    CHECK(claim_token_valid(t));
    t[CLAIM_TOKEN_MAX] = 'a';
    t[CLAIM_TOKEN_MAX + 1] = '\0';
    CHECK(!claim_token_valid(t));
}

static void test_request_headers(void)
{
    claim_config_t cfg;
    claim_request_t req;
    claim_config_defaults(&cfg);
    cfg.service_url = "http://127.0.0.1:9/";
    cfg.token = "tok123";
    cfg.secret = "s";
    cfg.duration_ms = 60000u;
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 0x0123abcdu, 0xdeadbeefu), CLAIM_OK);
    CHECK_EQ_STR(req.url, "http://127.0.0.1:9/devices/claim");
    CHECK_EQ_STR(req.body, "{\"secretKey\":\"s\",\"durationMs\":60000}");
    CHECK_EQ_INT(req.body_len, strlen(req.body));
    CHECK_EQ_INT(req.n_headers, 3);
    CHECK_EQ_STR(req.headers[0].name, "X-Device-Token");
    CHECK_EQ_STR(req.headers[0].value, "tok123");
    CHECK_EQ_STR(req.headers[1].name, "Prefer");
    CHECK_EQ_STR(req.headers[1].value, "wait=5");
    CHECK_EQ_STR(req.headers[2].name, "Idempotency-Key");
    CHECK_EQ_STR(req.headers[2].value, "0123abcddeadbeef");

    cfg.prefer_wait_s = 0u;
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_OK);
    CHECK_EQ_INT(req.n_headers, 2);
    CHECK_EQ_STR(req.headers[1].name, "Idempotency-Key");
    CHECK_EQ_STR(req.headers[1].value, "0000000100000002");

    cfg.prefer_wait_s = 30u;
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_OK);
    CHECK_EQ_STR(req.headers[1].value, "wait=30");
    cfg.prefer_wait_s = 31u;
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_ERR_ARG);
    cfg.prefer_wait_s = 5u;

    cfg.duration_ms = CLAIM_DURATION_MAX + 1u;
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_ERR_ARG);
    cfg.duration_ms = 0u;
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_OK);
    CHECK_EQ_STR(req.body, "{\"secretKey\":\"s\"}");

    cfg.service_url = NULL; /* MQTT-only: no URL, still a body */
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_OK);
    CHECK_EQ_STR(req.url, "");
    cfg.service_url = "mqtt://nope";
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_ERR_ARG);
}

static void test_request_secret_limits(void)
{
    claim_config_t cfg;
    claim_request_t req;
    char secret[CLAIM_SECRET_MAX + 2];
    claim_config_defaults(&cfg);
    cfg.mqtt_uri = "mqtt://127.0.0.1:1883";
    cfg.token = "tok";
    memset(secret, '"', sizeof(secret));
    secret[CLAIM_SECRET_MAX] = '\0';
    cfg.secret = secret;
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_OK);
    CHECK_EQ_INT(req.body_len, 14 + 2 * (long long)CLAIM_SECRET_MAX + 2);
    secret[CLAIM_SECRET_MAX] = 'x';
    secret[CLAIM_SECRET_MAX + 1] = '\0';
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_ERR_ARG);
    cfg.secret = "ok";
    cfg.token = "bad token";
    CHECK_EQ_INT(claim_request_build(&req, &cfg, 1u, 2u), CLAIM_ERR_ARG);
    CHECK_EQ_INT(claim_request_build(NULL, &cfg, 1u, 2u), CLAIM_ERR_ARG);
}

static void test_backoff_formula(void)
{
    /* ceiling doubles from base, capped; result = d/2 + rnd % (d - d/2 + 1) */
    CHECK_EQ_INT(claim_backoff_ms(0, 1000, 30000, 0), 500);
    CHECK_EQ_INT(claim_backoff_ms(0, 1000, 30000, 500), 1000);
    CHECK_EQ_INT(claim_backoff_ms(0, 1000, 30000, 501), 500);
    CHECK_EQ_INT(claim_backoff_ms(1, 1000, 30000, 0), 1000);
    CHECK_EQ_INT(claim_backoff_ms(1, 1000, 30000, 1000), 2000);
    CHECK_EQ_INT(claim_backoff_ms(2, 1000, 30000, 7), 2007);
    CHECK_EQ_INT(claim_backoff_ms(4, 1000, 30000, 0), 8000);
    CHECK_EQ_INT(claim_backoff_ms(5, 1000, 30000, 0), 15000);  /* 32000 capped to 30000 */
    CHECK_EQ_INT(claim_backoff_ms(5, 1000, 30000, 15000), 30000);
    CHECK_EQ_INT(claim_backoff_ms(0, 3, 3, 0), 1);              /* odd: [1, 3] */
    CHECK_EQ_INT(claim_backoff_ms(0, 3, 3, 2), 3);
    CHECK_EQ_INT(claim_backoff_ms(0, 100, 50, 0), 50);          /* max < base: base wins */
}

static void test_backoff_bounds(void)
{
    static const uint32_t bases[] = {2u, 3u, 100u, 1000u, 65535u, 0x7fffffffu, 0xffffffffu};
    static const uint32_t rnds[] = {0u, 1u, 12345u, 0x7fffffffu, 0xfffffffeu, 0xffffffffu};
    size_t b, r;
    uint32_t a;
    for (b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
        uint32_t base = bases[b];
        uint32_t max = base > 0xffffffffu / 4u ? 0xffffffffu : base * 4u;
        uint32_t prev_ceiling = 0;
        for (a = 0; a < 70u; a++) {
            uint32_t ceiling = claim_backoff_ms(a, base, max, 0) * 2u; /* rnd 0 gives d/2 */
            CHECK(ceiling + 1u >= prev_ceiling);                   /* non-decreasing */
            prev_ceiling = ceiling;
            for (r = 0; r < sizeof(rnds) / sizeof(rnds[0]); r++) {
                uint32_t v = claim_backoff_ms(a, base, max, rnds[r]);
                CHECK(v >= 1u);   /* never zero when base >= 2 */
                CHECK(v <= max);  /* never above the cap */
                CHECK(v >= claim_backoff_ms(a, base, max, 0));
            }
        }
    }
    CHECK_EQ_INT(claim_backoff_ms(0xffffffffu, 1000u, 30000u, 0xffffffffu) <= 30000u, 1);
}

static void test_retry_after(void)
{
    CHECK_EQ_INT(claim_retry_after_ms("5"), 5000);
    CHECK_EQ_INT(claim_retry_after_ms("0"), 0);
    CHECK_EQ_INT(claim_retry_after_ms(" 12 "), 12000);
    CHECK_EQ_INT(claim_retry_after_ms("86400"), 86400000);
    CHECK_EQ_INT(claim_retry_after_ms("86401"), 0);
    CHECK_EQ_INT(claim_retry_after_ms("99999999999999"), 0);
    CHECK_EQ_INT(claim_retry_after_ms(""), 0);
    CHECK_EQ_INT(claim_retry_after_ms(NULL), 0);
    CHECK_EQ_INT(claim_retry_after_ms("-1"), 0);
    CHECK_EQ_INT(claim_retry_after_ms("1.5"), 0);
    CHECK_EQ_INT(claim_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
}

static void test_classify_table(void)
{
    static const int done[] = {200, 201, 202, 204, 299, 409};
    static const int config[] = {400, 413, 415, 422};
    static const int retry[] = {408, 429, 500, 501, 502, 503, 504, 599};
    static const int stop[] = {100, 199, 300, 301, 302, 304, 401, 403, 404, 405, 406, 410, 411,
                               412, 414, 418, 421, 423, 428, 431, 451, 600, 0, -1};
    size_t i;
    for (i = 0; i < sizeof(done) / sizeof(done[0]); i++) {
        CHECK_EQ_INT(claim_http_classify(CLAIM_IO_OK, done[i]), CLAIM_HTTP_DONE);
    }
    for (i = 0; i < sizeof(config) / sizeof(config[0]); i++) {
        CHECK_EQ_INT(claim_http_classify(CLAIM_IO_OK, config[i]), CLAIM_HTTP_CONFIG);
    }
    for (i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
        CHECK_EQ_INT(claim_http_classify(CLAIM_IO_OK, retry[i]), CLAIM_HTTP_FALLBACK_RETRY);
    }
    for (i = 0; i < sizeof(stop) / sizeof(stop[0]); i++) {
        CHECK_EQ_INT(claim_http_classify(CLAIM_IO_OK, stop[i]), CLAIM_HTTP_FALLBACK_STOP);
    }
    CHECK_EQ_INT(claim_http_classify(CLAIM_IO_TIMEOUT, 0), CLAIM_HTTP_FALLBACK_RETRY);
    CHECK_EQ_INT(claim_http_classify(CLAIM_IO_UNREACHABLE, 0), CLAIM_HTTP_FALLBACK_RETRY);
    CHECK_EQ_INT(claim_http_classify(CLAIM_IO_ERROR, 0), CLAIM_HTTP_FALLBACK_RETRY);
    CHECK_EQ_INT(claim_http_classify(CLAIM_IO_TIMEOUT, 200), CLAIM_HTTP_FALLBACK_RETRY);
}

static void test_strings(void)
{
    CHECK_EQ_STR(claim_status_str(CLAIM_OK), "ok");
    CHECK_EQ_STR(claim_status_str(CLAIM_ERR_CONFIG), "config-error");
    CHECK_EQ_STR(claim_status_str(CLAIM_ERR_TOKEN), "token-rejected");
    CHECK_EQ_STR(claim_status_str(CLAIM_ERR_DEADLINE), "deadline");
    CHECK_EQ_STR(claim_path_str(CLAIM_PATH_SERVICE), "service");
    CHECK_EQ_STR(claim_path_str(CLAIM_PATH_MQTT), "mqtt");
    CHECK_EQ_STR(claim_io_str(CLAIM_IO_REFUSED), "refused");
}

const test_case_t build_tests[] = {
    {"json: exact bytes, keys only when they have a value", test_json_exact_bytes},
    {"json: escaping of quotes, backslashes, control characters", test_json_escaping},
    {"json: worst-case secret fits CLAIM_BODY_MAX", test_json_worst_case_fits},
    {"json: too-small buffer fails cleanly", test_json_small_buffer},
    {"url: base variants, schemes, overflow", test_url},
    {"token: validity rules", test_token_valid},
    {"request: headers, Prefer, Idempotency-Key", test_request_headers},
    {"request: secret and token limits", test_request_secret_limits},
    {"backoff: formula", test_backoff_formula},
    {"backoff: bounds, no zero, no overflow", test_backoff_bounds},
    {"retry-after: parsing", test_retry_after},
    {"classify: docs/design.md §7 table row by row", test_classify_table},
    {"strings", test_strings},
    {NULL, NULL},
};
