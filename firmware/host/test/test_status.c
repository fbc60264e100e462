/* test_status.c - "claim again?": the decision table, the JSON status reader
 * (including every truncation of a real claimsvc answer, under ASan) and
 * claim_check() against the scripted fake port. */
#include <string.h>

#include "check.h"
#include "claim/claim.h"
#include "fake_port.h"

#define TOKEN "A1b2C3d4E5f6G7h8I9j0"
#define SVC "http://127.0.0.1:18080"

static fake_t F;

/* A claim view as claimsvc serves it (internal/http/view.go), with the fields
 * the coming statuses add; "lastError" holds brackets and quotes on purpose. */
#define VIEW(status)                                                                          \
    "{\"id\":\"0b7c3a52-5b3e-4a8f-9a51-3f2d1c0e9b11\",\"status\":\"" status "\","              \
    "\"tokenHint\":\"A1b2…j0\",\"hasSecret\":true,\"durationMs\":60000,\"attempts\":2,"        \
    "\"lastError\":\"broker said \\\"no\\\" ]} {[\",\"createdAt\":\"2026-01-02T03:04:05Z\","  \
    "\"updatedAt\":\"2026-01-02T03:04:06Z\",\"nextAttemptAt\":null,"                          \
    "\"deliveredAt\":\"2026-01-02T03:04:06Z\",\"expiresAt\":\"2026-01-02T03:05:06Z\","        \
    "\"delivery\":\"mqtt\",\"deviceName\":null,\"claimedAt\":null,\"customerId\":null}"
#define LIST1(status) "{\"claims\":[" VIEW(status) "]}"

static void test_decide_table(void)
{
    static const struct {
        claim_last_t last;
        claim_next_t if_fallback_claim;
        claim_next_t if_fallback_wait;
    } rows[] = {
        {CLAIM_LAST_NONE, CLAIM_NEXT_CLAIM, CLAIM_NEXT_CLAIM},
        {CLAIM_LAST_EXPIRED, CLAIM_NEXT_CLAIM, CLAIM_NEXT_CLAIM},
        {CLAIM_LAST_FAILED, CLAIM_NEXT_CLAIM, CLAIM_NEXT_CLAIM},
        {CLAIM_LAST_PENDING, CLAIM_NEXT_WAIT, CLAIM_NEXT_WAIT},
        {CLAIM_LAST_DELIVERED, CLAIM_NEXT_WAIT, CLAIM_NEXT_WAIT},
        {CLAIM_LAST_SUPERSEDED, CLAIM_NEXT_WAIT, CLAIM_NEXT_WAIT},
        {CLAIM_LAST_CLAIMED, CLAIM_NEXT_DONE, CLAIM_NEXT_DONE},
        {CLAIM_LAST_REJECTED, CLAIM_NEXT_STOP, CLAIM_NEXT_STOP},
        {CLAIM_LAST_CANCELLED, CLAIM_NEXT_STOP, CLAIM_NEXT_STOP},
        {CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_LAST_OTHER, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
    };
    size_t i;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        CHECK_EQ_INT(claim_decide(rows[i].last, 1), rows[i].if_fallback_claim);
        CHECK_EQ_INT(claim_decide(rows[i].last, 0), rows[i].if_fallback_wait);
    }
    /* never after "claimed", whatever the local state says */
    CHECK_EQ_INT(claim_decide(CLAIM_LAST_CLAIMED, 1), CLAIM_NEXT_DONE);
}

static void test_last_from_str(void)
{
    static const char *const names[] = {"pending", "delivered", "claimed", "expired", "failed",
                                        "rejected", "cancelled", "superseded"};
    size_t i;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        claim_last_t l = claim_last_from_str(names[i]);
        CHECK(l != CLAIM_LAST_OTHER && l != CLAIM_LAST_UNKNOWN);
        CHECK_EQ_STR(claim_last_str(l), names[i]); /* round trip */
    }
    CHECK_EQ_INT(claim_last_from_str("Claimed"), CLAIM_LAST_OTHER); /* exact, as the API spells it */
    CHECK_EQ_INT(claim_last_from_str("archived"), CLAIM_LAST_OTHER);
    CHECK_EQ_INT(claim_last_from_str(""), CLAIM_LAST_UNKNOWN);
    CHECK_EQ_INT(claim_last_from_str(NULL), CLAIM_LAST_UNKNOWN);
    CHECK_EQ_STR(claim_next_str(CLAIM_NEXT_CLAIM), "claim");
    CHECK_EQ_STR(claim_next_str(CLAIM_NEXT_DONE), "done");
}

static int newest(const char *json, char *st)
{
    return claim_json_newest_status(json, strlen(json), st, CLAIM_STATUS_STR_MAX);
}

static void test_json_reader_real_answers(void)
{
    char st[CLAIM_STATUS_STR_MAX];
    CHECK_EQ_INT(newest(LIST1("expired"), st), 1);
    CHECK_EQ_STR(st, "expired");
    CHECK_EQ_INT(newest("{\"claims\":[" VIEW("claimed") "," VIEW("expired") "]}", st), 1);
    CHECK_EQ_STR(st, "claimed"); /* newest first: only the first counts */
    CHECK_EQ_INT(newest("{\"claims\":[]}", st), 0);
    CHECK_EQ_INT(newest(" \n{ \"claims\" : [ ] } \n", st), 0);
    /* member order, whitespace, other members before "claims" */
    CHECK_EQ_INT(newest("{\"next\":{\"claims\":[{\"status\":\"claimed\"}]},\"claims\":\r\n[ {\"x\":[1,2,{\"status\":\"claimed\"}],"
                        " \"status\" : \"failed\" } ]}", st), 1);
    CHECK_EQ_STR(st, "failed"); /* a nested "status" is not the claim's */
    CHECK_EQ_INT(newest("{\"claims\":[{\"status\":\"pend\\u0069ng\"}]}", st), 1);
    CHECK_EQ_STR(st, "pending"); /* escapes decoded */
    CHECK_EQ_INT(newest("{\"a very long member name that does not fit\":true,\"claims\":[{\"id\":-1.5e3,\"ok\":false,\"n\":null,\"status\":\"delivered\"}]}", st), 1);
    CHECK_EQ_STR(st, "delivered");
}

static void test_json_reader_rejects(void)
{
    static const char *const bad[] = {
        "", "null", "[]", "{}", "{\"claims\":{}}", "{\"claims\":[1]}", "{\"claims\":[{}]}",
        "{\"claims\":[{\"status\":null}]}", "{\"claims\":[{\"status\":7}]}",
        "{\"claims\":[{\"status\":\"\"}]}", "{\"claims\":[{\"status\":\"claimed\\u00e9\"}]}",
        "{\"claims\":[{\"status\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
        "{\"claims\":[{\"status\":\"claimed}]}", "{\"claims\" [{\"status\":\"claimed\"}]}",
        "{\"claims\":[{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],\"status\":\"expired\"}]}",
        "{\"claims\":[{\"x\":\"\x01\",\"status\":\"expired\"}]}",
        "<html>502 Bad Gateway</html>",
    };
    char st[CLAIM_STATUS_STR_MAX];
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = newest(bad[i], st);
        if (r != -1) {
            fprintf(stderr, "    case %zu accepted: %s\n", i, bad[i]);
        }
        CHECK_EQ_INT(r, -1);
        CHECK_EQ_STR(st, "");
    }
    CHECK_EQ_INT(claim_json_newest_status(NULL, 0, st, sizeof(st)), -1);
    CHECK_EQ_INT(claim_json_newest_status("{}", 2, NULL, 0), -1);
}

static void test_json_reader_every_truncation(void)
{
    /* Every prefix of a real answer: either the right status (it was complete
     * enough) or -1; never a wrong status and never a read past the end (the
     * prefix is copied to a buffer of exactly its length, so ASan would see it). */
    static const char full[] = "{\"claims\":[" VIEW("expired") "," VIEW("claimed") "]}";
    static char exact[sizeof(full)];
    char st[CLAIM_STATUS_STR_MAX];
    size_t n;
    int complete = 0;
    for (n = 0; n < sizeof(full) - 1u; n++) {
        char *heap = exact + (sizeof(exact) - n); /* the prefix ends at the array's end */
        int r;
        memcpy(heap, full, n);
        r = claim_json_newest_status(heap, n, st, sizeof(st));
        CHECK(r == -1 || r == 1);
        if (r == 1) {
            CHECK_EQ_STR(st, "expired");
            complete++;
        }
    }
    CHECK(complete > 0);
}

static void test_status_url(void)
{
    char url[CLAIM_URL_MAX];
    CHECK(claim_status_url_build(url, sizeof(url), "https://claims.example.com/") > 0);
    CHECK_EQ_STR(url, "https://claims.example.com/devices/claims?limit=1");
    CHECK(claim_status_url_build(url, sizeof(url), "http://10.0.0.2:8080/api") > 0);
    CHECK_EQ_STR(url, "http://10.0.0.2:8080/api/devices/claims?limit=1");
    CHECK_EQ_INT(claim_status_url_build(url, sizeof(url), "claims.example.com"), -1);
    CHECK_EQ_INT(claim_status_url_build(url, 20, "https://claims.example.com"), -1);
}

static claim_config_t cfg_status(void)
{
    claim_config_t c;
    claim_config_defaults(&c);
    c.service_url = SVC;
    c.mqtt_uri = "mqtt://127.0.0.1:18830";
    c.token = TOKEN;
    c.secret = "s3cr3t-value";
    return c;
}

static claim_next_t check(const claim_config_t *cfg, int fallback, claim_check_t *r)
{
    claim_port_t p = fake_port(&F);
    claim_next_t n = claim_check(cfg, &p, fallback, r);
    CHECK_EQ_INT(n, r->next);
    CHECK(!F.unscripted);
    CHECK(strstr(F.log, TOKEN) == NULL);
    CHECK(strstr(F.log, "127.0.0.1") == NULL);
    return n;
}

static void test_check_asks_and_decides(void)
{
    static const struct {
        claim_io_t io;
        int status;
        const char *body;
        claim_last_t last;
        claim_next_t next_fb1, next_fb0;
    } cases[] = {
        {CLAIM_IO_OK, 200, LIST1("expired"), CLAIM_LAST_EXPIRED, CLAIM_NEXT_CLAIM, CLAIM_NEXT_CLAIM},
        {CLAIM_IO_OK, 200, LIST1("failed"), CLAIM_LAST_FAILED, CLAIM_NEXT_CLAIM, CLAIM_NEXT_CLAIM},
        {CLAIM_IO_OK, 200, LIST1("claimed"), CLAIM_LAST_CLAIMED, CLAIM_NEXT_DONE, CLAIM_NEXT_DONE},
        {CLAIM_IO_OK, 200, LIST1("delivered"), CLAIM_LAST_DELIVERED, CLAIM_NEXT_WAIT, CLAIM_NEXT_WAIT},
        {CLAIM_IO_OK, 200, LIST1("pending"), CLAIM_LAST_PENDING, CLAIM_NEXT_WAIT, CLAIM_NEXT_WAIT},
        {CLAIM_IO_OK, 200, LIST1("cancelled"), CLAIM_LAST_CANCELLED, CLAIM_NEXT_STOP, CLAIM_NEXT_STOP},
        {CLAIM_IO_OK, 200, LIST1("rejected"), CLAIM_LAST_REJECTED, CLAIM_NEXT_STOP, CLAIM_NEXT_STOP},
        {CLAIM_IO_OK, 200, LIST1("superseded"), CLAIM_LAST_SUPERSEDED, CLAIM_NEXT_WAIT, CLAIM_NEXT_WAIT},
        {CLAIM_IO_OK, 200, LIST1("archived"), CLAIM_LAST_OTHER, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_IO_OK, 200, "{\"claims\":[]}", CLAIM_LAST_NONE, CLAIM_NEXT_CLAIM, CLAIM_NEXT_CLAIM},
        {CLAIM_IO_OK, 404, "{\"code\":\"no_route\"}", CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_IO_OK, 200, "{\"claims\":[{\"status\":", CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_IO_OK, 401, "", CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_IO_OK, 403, "", CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_IO_OK, 429, "", CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_IO_OK, 503, "", CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_IO_TIMEOUT, 0, NULL, CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_IO_UNREACHABLE, 0, NULL, CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
        {CLAIM_IO_ERROR, 0, NULL, CLAIM_LAST_UNKNOWN, CLAIM_NEXT_CLAIM, CLAIM_NEXT_WAIT},
    };
    size_t i;
    int fb;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (fb = 0; fb <= 1; fb++) {
            claim_config_t cfg = cfg_status();
            claim_check_t r;
            fake_init(&F);
            fake_get(&F, cases[i].io, cases[i].status, cases[i].body, 25);
            CHECK_EQ_INT(check(&cfg, fb, &r), fb ? cases[i].next_fb1 : cases[i].next_fb0);
            CHECK_EQ_INT(r.last, cases[i].last);
            CHECK_EQ_INT(r.asked, 1);
            CHECK_EQ_INT(F.n_get_calls, 1);
            CHECK_EQ_INT(F.n_http_calls + F.n_mqtt_calls, 0); /* a check sends no claim */
            CHECK_EQ_STR(F.get_calls[0].url, SVC "/devices/claims?limit=1");
            CHECK_EQ_INT(F.get_calls[0].n_headers, 1);
            CHECK_EQ_STR(F.get_calls[0].hname[0], "X-Device-Token");
            CHECK_EQ_STR(F.get_calls[0].hval[0], TOKEN);
            CHECK_EQ_INT(F.get_calls[0].timeout_ms, cfg.http_timeout_ms);
            CHECK_EQ_INT(r.http_status, cases[i].io == CLAIM_IO_OK ? cases[i].status : 0);
            CHECK_EQ_INT(r.elapsed_ms, 25);
        }
    }
}

static void test_check_without_service_falls_back(void)
{
    claim_config_t cfg = cfg_status();
    claim_check_t r;
    claim_port_t p;
    cfg.service_url = NULL; /* MQTT-only device: nobody to ask */
    fake_init(&F);
    CHECK_EQ_INT(check(&cfg, 1, &r), CLAIM_NEXT_CLAIM);
    CHECK_EQ_INT(check(&cfg, 0, &r), CLAIM_NEXT_WAIT);
    CHECK_EQ_INT(r.asked, 0);
    CHECK_EQ_INT(F.n_get_calls, 0);
    /* a port without http_get (an older port) behaves the same */
    cfg = cfg_status();
    p = fake_port(&F);
    p.http_get = NULL;
    CHECK_EQ_INT(claim_check(&cfg, &p, 1, &r), CLAIM_NEXT_CLAIM);
    CHECK_EQ_INT(claim_check(&cfg, &p, 0, &r), CLAIM_NEXT_WAIT);
    CHECK_EQ_INT(F.n_get_calls, 0);
    /* and so does an invalid token: it is never sent */
    cfg.token = "has space";
    CHECK_EQ_INT(check(&cfg, 0, &r), CLAIM_NEXT_WAIT);
    CHECK_EQ_INT(F.n_get_calls, 0);
}

static void test_check_timeout_bounded_by_deadline(void)
{
    claim_config_t cfg = cfg_status();
    claim_check_t r;
    cfg.http_timeout_ms = 10000u;
    cfg.deadline_ms = 1500u;
    fake_init(&F);
    fake_get(&F, CLAIM_IO_OK, 200, LIST1("expired"), 0xffffffffu); /* never answers in time */
    CHECK_EQ_INT(check(&cfg, 0, &r), CLAIM_NEXT_WAIT);
    CHECK_EQ_INT(F.get_calls[0].timeout_ms, 1500);
    CHECK_EQ_INT(r.io, CLAIM_IO_TIMEOUT);
    CHECK(F.now - F.start <= 1500u);
}

static void test_check_then_claim_again(void)
{
    /* What the device does at boot after a claim lapsed: ask, then claim once. */
    claim_config_t cfg = cfg_status();
    claim_check_t chk;
    claim_result_t res;
    claim_port_t p;
    fake_init(&F);
    p = fake_port(&F);
    fake_get(&F, CLAIM_IO_OK, 200, LIST1("expired"), 10);
    fake_http(&F, CLAIM_IO_OK, 202, NULL, 10);
    CHECK_EQ_INT(claim_check(&cfg, &p, 0, &chk), CLAIM_NEXT_CLAIM);
    CHECK_EQ_INT(claim_run(&cfg, &p, &res), CLAIM_OK);
    CHECK_EQ_INT(res.path, CLAIM_PATH_SERVICE);
    CHECK_EQ_INT(F.n_get_calls, 1);
    CHECK_EQ_INT(F.n_http_calls, 1);
    CHECK(!F.unscripted);
}

const test_case_t status_tests[] = {
    {"status: decision table, with and without the fallback", test_decide_table},
    {"status: status names round trip; unknown ones are 'other'", test_last_from_str},
    {"status: JSON reader on real claimsvc answers", test_json_reader_real_answers},
    {"status: JSON reader rejects what is not a status", test_json_reader_rejects},
    {"status: JSON reader on every truncation (ASan)", test_json_reader_every_truncation},
    {"status: look-up URL", test_status_url},
    {"status: claim_check asks claimsvc and decides (19 answers x 2)", test_check_asks_and_decides},
    {"status: no service / no http_get / bad token -> today's fallback", test_check_without_service_falls_back},
    {"status: look-up bounded by the deadline", test_check_timeout_bounded_by_deadline},
    {"status: expired -> check, then one claim", test_check_then_claim_again},
    {NULL, NULL},
};
