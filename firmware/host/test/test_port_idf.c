/* test_port_idf.c - the ESP-IDF port itself (components/claim_port_idf),
 * built on the host against idf_mock: secure NVS init (issue item 1), the
 * token kept out of library logs at every level (2), each library call given
 * only what is left of the attempt (3), private CA vs bundle (4), and the
 * button pin checked instead of aborting (5). */
#include <string.h>

#include "check.h"
#include "claim_port_idf.h"
#include "esp_log.h"
#include "idf_mock.h"

#define TOKEN "Tok3nNeverInTheLog99"
#define PEM "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUUjz0oZ6wXv0M2lXc8h5bq2pYl0Mw\n-----END CERTIFICATE-----\n"

static void test_nvs_secure_init(void)
{
    char tok[CLAIM_TOKEN_MAX + 1], sec[CLAIM_SECRET_MAX + 1];
    idf_mock_reset();
    g_idf.nvs_token = TOKEN;
    g_idf.nvs_secret = "label-secret";
    CHECK_EQ_INT(claim_port_idf_nvs_encrypted(), 1);
    CHECK_EQ_INT(claim_port_idf_load_credentials("fctry", tok, sizeof(tok), sec, sizeof(sec)), ESP_OK);
    CHECK_EQ_STR(tok, TOKEN);
    CHECK_EQ_STR(sec, "label-secret");
    CHECK_EQ_INT(g_idf.n_read_cfg, 1);
    CHECK_EQ_INT(g_idf.n_secure_init, 1);
    CHECK_EQ_STR(g_idf.secure_init_label, "fctry");
    CHECK_EQ_INT(g_idf.secure_init_key0, 0xA5); /* the keys read from the scheme were used */
    CHECK_EQ_INT(g_idf.n_plain_init, 0);        /* never the init that cannot decrypt */
    CHECK_EQ_INT(g_idf.n_erase, 0);

    /* keys unreadable: an error, no plain init, nothing erased, nothing returned */
    idf_mock_reset();
    g_idf.nvs_token = TOKEN;
    g_idf.nvs_read_cfg_err = ESP_FAIL;
    CHECK(claim_port_idf_load_credentials("fctry", tok, sizeof(tok), sec, sizeof(sec)) != ESP_OK);
    CHECK_EQ_INT(g_idf.n_secure_init + g_idf.n_plain_init + g_idf.n_erase, 0);
    CHECK_EQ_STR(tok, "");
    /* no key-protection scheme registered */
    idf_mock_reset();
    g_idf.nvs_scheme_present = 0;
    CHECK_EQ_INT(claim_port_idf_load_credentials("fctry", tok, sizeof(tok), sec, sizeof(sec)),
                 ESP_ERR_INVALID_STATE);
    CHECK_EQ_INT(g_idf.n_plain_init + g_idf.n_erase, 0);
}

static void test_token_never_in_library_logs(void)
{
    /* A developer turns every tag up to VERBOSE; the libraries' header and
     * CONNECT dumps must still not print the token. */
    static const int levels[] = {ESP_LOG_INFO, ESP_LOG_DEBUG, ESP_LOG_VERBOSE};
    size_t i;
    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        claim_port_t p;
        claim_header_t h = {"X-Device-Token", TOKEN};
        claim_http_response_t resp;
        char body[256];
        size_t len = 0;
        int rc = 0;
        idf_mock_reset();
        idf_mock_all_levels(levels[i]);
        claim_port_idf_init(&p, NULL);
        memset(&resp, 0, sizeof(resp));
        CHECK_EQ_INT(p.http_post(p.ctx, "https://svc/devices/claim", &h, 1, "{}", 2, 5000, &resp), CLAIM_IO_OK);
        memset(&resp, 0, sizeof(resp));
        CHECK_EQ_INT(p.http_get(p.ctx, "https://svc/devices/claims?limit=1", &h, 1, body, sizeof(body), &len,
                                5000, &resp), CLAIM_IO_OK);
        g_idf.mqtt_answer = 1;
        CHECK_EQ_INT(p.mqtt_publish(p.ctx, "mqtts://tb:8883", TOKEN, "v1/devices/me/claim", "{}", 2, 9000, &rc),
                     CLAIM_IO_OK);
        CHECK(strstr(g_idf.log, TOKEN) == NULL);
        CHECK_EQ_INT(g_idf.http_header_level_ok, 1);
        CHECK(idf_mock_level("HTTP_CLIENT") <= ESP_LOG_INFO);
        CHECK(idf_mock_level("mqtt_client") <= ESP_LOG_INFO);
        CHECK(idf_mock_level("claim") == levels[i]); /* the app's own tags are left alone */
    }
    /* the mock does print headers when nobody quiets the library: the check bites */
    idf_mock_reset();
    idf_mock_all_levels(ESP_LOG_DEBUG);
    mock_log(ESP_LOG_DEBUG, "HTTP_CLIENT", "Write header: X-Device-Token: %s", TOKEN);
    CHECK(strstr(g_idf.log, TOKEN) != NULL);
}

static void test_http_attempt_within_budget(void)
{
    /* Worst case: every blocking call uses all the time it is given and the
     * body trickles in a byte at a time. The request must still end by its
     * budget, and no call may be given more than what is left. */
    static const uint32_t budgets[] = {1000u, 7000u, 10000u, 32000u};
    size_t b;
    for (b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        claim_port_t p;
        claim_http_response_t resp;
        claim_header_t h = {"X-Device-Token", TOKEN};
        char body[64];
        size_t len = 0;
        int64_t t0;
        int i;
        idf_mock_reset();
        g_idf.http_phase_takes_all = 1;
        claim_port_idf_init(&p, NULL);
        t0 = g_idf.now_us;
        memset(&resp, 0, sizeof(resp));
        (void)p.http_get(p.ctx, "http://svc/devices/claims?limit=1", &h, 1, body, sizeof(body), &len,
                         budgets[b], &resp);
        CHECK(g_idf.now_us - t0 <= (int64_t)budgets[b] * 1000);
        CHECK(g_idf.n_http_timeouts >= 3); /* init, open, headers (and reads while time is left) */
        for (i = 0; i < g_idf.n_http_timeouts; i++) {
            CHECK(g_idf.http_timeout_at_us[i] + (int64_t)g_idf.http_timeouts[i] * 1000 <=
                  t0 + (int64_t)budgets[b] * 1000);
        }
        CHECK_EQ_INT(resp.status, 200);
        CHECK(len < sizeof(body) - 1u); /* time ran out before the buffer did */
        CHECK_EQ_INT(resp.body_truncated, 0);
    }
}

static void test_mqtt_attempt_within_budget(void)
{
    /* Nothing ever arrives and stop() waits its whole network timeout: connect,
     * CONNACK wait and stop together must still fit in the budget. */
    static const uint32_t budgets[] = {1000u, 1500u, 2000u, 3000u, 10000u, 30000u};
    size_t b;
    for (b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        claim_port_t p;
        int rc = 0;
        int64_t t0;
        idf_mock_reset();
        claim_port_idf_init(&p, NULL);
        t0 = g_idf.now_us;
        CHECK_EQ_INT(p.mqtt_publish(p.ctx, "mqtt://tb:1883", TOKEN, "v1/devices/me/claim", "{}", 2, budgets[b], &rc),
                     CLAIM_IO_TIMEOUT);
        CHECK_EQ_INT(g_idf.mqtt_network_timeout_ms, (int)(budgets[b] / 3u));
        CHECK(g_idf.now_us - t0 <= (int64_t)budgets[b] * 1000);
        CHECK(g_idf.now_us - t0 >= (int64_t)budgets[b] * 1000 * 9 / 10); /* and it did wait */
    }
}

static void test_mqtt_small_budget_can_succeed(void)
{
    /* CLAIM_MQTT_TIMEOUT_MS may be 1000 (Kconfig minimum), and the core hands
     * out what is left of the deadline. A broker that answers at once must
     * still give a PUBACK within such a budget. */
    static const uint32_t budgets[] = {1000u, 1500u, 2000u};
    size_t b;
    for (b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        claim_port_t p;
        int rc = 0;
        idf_mock_reset();
        g_idf.mqtt_answer = 1; /* CONNACK and PUBACK arrive immediately */
        claim_port_idf_init(&p, NULL);
        CHECK_EQ_INT(p.mqtt_publish(p.ctx, "mqtt://tb:1883", TOKEN, "v1/devices/me/claim", "{}", 2, budgets[b], &rc),
                     CLAIM_IO_OK);
    }
}

static void test_long_delays_in_64_bits(void)
{
    /* 12 h at configTICK_RATE_HZ 100: pdMS_TO_TICKS would wrap */
    CHECK_EQ_INT(claim_port_idf_ticks(12ull * 3600u * 1000u), 4320000);
    CHECK_EQ_INT(claim_port_idf_ticks(7ull * 24u * 3600u * 1000u), 60480000);
    CHECK_EQ_INT(claim_port_idf_ticks(1), 1);
}

static void test_private_ca_or_bundle(void)
{
    claim_port_t p;
    claim_http_response_t resp;
    int rc = 0;
    idf_mock_reset();
    claim_port_idf_init(&p, PEM);
    memset(&resp, 0, sizeof(resp));
    (void)p.http_post(p.ctx, "https://svc/devices/claim", NULL, 0, "{}", 2, 5000, &resp);
    CHECK(g_idf.http_cert_pem == (const char *)PEM || strcmp(g_idf.http_cert_pem, PEM) == 0);
    CHECK_EQ_INT(g_idf.http_bundle, 0);
    g_idf.mqtt_answer = 1;
    (void)p.mqtt_publish(p.ctx, "mqtts://tb:8883", TOKEN, "v1/devices/me/claim", "{}", 2, 9000, &rc);
    CHECK(g_idf.mqtt_cert != NULL && strcmp(g_idf.mqtt_cert, PEM) == 0);
    CHECK_EQ_INT(g_idf.mqtt_bundle, 0);

    idf_mock_reset();
    claim_port_idf_init(&p, NULL);
    memset(&resp, 0, sizeof(resp));
    (void)p.http_post(p.ctx, "https://svc/devices/claim", NULL, 0, "{}", 2, 5000, &resp);
    CHECK(g_idf.http_cert_pem == NULL);
    CHECK_EQ_INT(g_idf.http_bundle, 1);
    g_idf.mqtt_answer = 1;
    (void)p.mqtt_publish(p.ctx, "mqtts://tb:8883", TOKEN, "v1/devices/me/claim", "{}", 2, 9000, &rc);
    CHECK(g_idf.mqtt_cert == NULL);
    CHECK_EQ_INT(g_idf.mqtt_bundle, 1);
}

static void test_button_pin_checked(void)
{
    /* the mock is an ESP32-C3: GPIO0..21, 12..17 wired to the flash */
    idf_mock_reset();
    CHECK_EQ_INT(claim_port_idf_button_init(9), ESP_OK); /* the C3's BOOT button */
    CHECK_EQ_INT(g_idf.n_gpio_config, 1);
    CHECK_EQ_INT(g_idf.gpio_mask, 1u << 9);
    idf_mock_reset();
    CHECK_EQ_INT(claim_port_idf_button_init(12), ESP_ERR_INVALID_ARG);
    CHECK_EQ_INT(claim_port_idf_button_init(22), ESP_ERR_INVALID_ARG);
    CHECK_EQ_INT(claim_port_idf_button_init(-1), ESP_ERR_INVALID_ARG);
    CHECK_EQ_INT(claim_port_idf_button_init(48), ESP_ERR_INVALID_ARG);
    CHECK_EQ_INT(g_idf.n_gpio_config, 0); /* nothing touched, and no abort */
    CHECK(strstr(g_idf.log, "GPIO 12 is wired to the flash") != NULL);
    CHECK(strstr(g_idf.log, "GPIO 22 is not an input GPIO") != NULL);
}

const test_case_t port_tests[] = {
    {"port: encrypted factory NVS opened with the secure init, never erased", test_nvs_secure_init},
    {"port: no token in library logs, even with every tag at VERBOSE", test_token_never_in_library_logs},
    {"port: HTTP attempt ends within its budget, call by call", test_http_attempt_within_budget},
    {"port: MQTT connect + CONNACK + stop fit in the budget", test_mqtt_attempt_within_budget},
    {"port: MQTT with a 1-2 s budget can still succeed", test_mqtt_small_budget_can_succeed},
    {"port: long delays in 64-bit ticks", test_long_delays_in_64_bits},
    {"port: private CA replaces the bundle for HTTP and MQTT", test_private_ca_or_bundle},
    {"port: invalid button pin refused, no abort", test_button_pin_checked},
    {NULL, NULL},
};
