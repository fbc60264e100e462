/*
 * Claim client: ask claimsvc to claim this device on ThingsBoard, fall back to
 * ThingsBoard MQTT when the service cannot take the claim (docs/design.md §7), and
 * claim again when a claim lapsed (expired or failed) until the customer has
 * the device. The decisions are claim_core's, tested on the host
 * (firmware/host); this file only wires ESP-IDF to them.
 *
 * Start-up: NVS -> factory credentials (+ private CA) -> netif/event loop ->
 * network -> claim task. The token and the secret come from the factory NVS
 * partition and are never logged.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "protocol_examples_common.h"
#include "sdkconfig.h"

#include "claim/claim.h"
#include "claim_port_idf.h"

static const char *TAG = "app";

#define STATE_NAMESPACE "claim_state" /* in the app's own "nvs" partition */
#define STATE_KEY_DONE "done"         /* a claim request was delivered (not: the customer has it) */
#define STATE_KEY_CLAIMED "claimed"   /* claimsvc said "claimed": never claim again */

static char s_token[CLAIM_TOKEN_MAX + 1];
static char s_secret[CLAIM_SECRET_MAX + 1];
static const char *s_ca_pem; /* NULL: certificate bundle */

#if CONFIG_CLAIM_CA_PEM_EMBEDDED
extern const char claim_ca_pem_start[] asm("_binary_claim_ca_pem_start");
extern const char claim_ca_pem_end[] asm("_binary_claim_ca_pem_end");
#elif CONFIG_CLAIM_CA_PEM_NVS
static char s_ca_buf[CONFIG_CLAIM_CA_PEM_MAX];
#endif

static void fill_config(claim_config_t *cfg)
{
    claim_config_defaults(cfg);
    cfg->service_url = CONFIG_CLAIM_SERVICE_URL;
    cfg->mqtt_uri = CONFIG_CLAIM_MQTT_URI;
    cfg->token = s_token;
    cfg->secret = s_secret;
    cfg->duration_ms = (uint32_t)CONFIG_CLAIM_DURATION_MS;
    cfg->prefer_wait_s = (uint32_t)CONFIG_CLAIM_PREFER_WAIT_S;
    cfg->http_timeout_ms = (uint32_t)CONFIG_CLAIM_HTTP_TIMEOUT_MS;
    cfg->mqtt_timeout_ms = (uint32_t)CONFIG_CLAIM_MQTT_TIMEOUT_MS;
    cfg->max_attempts = (uint32_t)CONFIG_CLAIM_MAX_ATTEMPTS;
    cfg->backoff_base_ms = (uint32_t)CONFIG_CLAIM_BACKOFF_BASE_MS;
    cfg->backoff_max_ms = (uint32_t)CONFIG_CLAIM_BACKOFF_MAX_MS;
    cfg->deadline_ms = (uint32_t)CONFIG_CLAIM_DEADLINE_MS;
}

static uint8_t state_get(const char *key)
{
    nvs_handle_t h;
    uint8_t v = 0;
    if (nvs_open(STATE_NAMESPACE, NVS_READONLY, &h) != ESP_OK) {
        return 0; /* namespace not created yet */
    }
    if (nvs_get_u8(h, key, &v) != ESP_OK) {
        v = 0;
    }
    nvs_close(h);
    return v;
}

static void state_set(const char *key)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(STATE_NAMESPACE, NVS_READWRITE, &h);
    if (err == ESP_OK) {
        err = nvs_set_u8(h, key, 1);
        if (err == ESP_OK) {
            err = nvs_commit(h);
        }
        nvs_close(h);
    }
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "could not remember %s: %s", key, esp_err_to_name(err));
    }
}

/* Asks claimsvc whether to claim (fallback_claim: what to do when it cannot
 * answer) and claims when told to. Returns the decision. */
static claim_next_t check_and_claim(const claim_port_t *port, int fallback_claim)
{
    claim_config_t cfg;
    claim_check_t chk;
    claim_result_t r;
    claim_status_t st;

    fill_config(&cfg);
    (void)claim_check(&cfg, port, fallback_claim, &chk);
    switch (chk.next) {
    case CLAIM_NEXT_DONE:
        ESP_LOGI(TAG, "the customer has this device (claim status: claimed); not claiming again");
        state_set(STATE_KEY_CLAIMED);
        return chk.next;
    case CLAIM_NEXT_STOP:
        ESP_LOGE(TAG, "not claiming: the newest claim was %s%s", claim_last_str(chk.last),
                 chk.last == CLAIM_LAST_REJECTED ? " (ThingsBoard refused the token)" : " by an operator");
        return chk.next;
    case CLAIM_NEXT_WAIT:
        ESP_LOGI(TAG, "not claiming now (newest claim: %s)", claim_last_str(chk.last));
        return chk.next;
    case CLAIM_NEXT_CLAIM:
        break;
    }
    st = claim_run(&cfg, port, &r);
    ESP_LOGI(TAG, "claim %s via %s (newest claim was %s; service tries %" PRIu32 ", MQTT tries %" PRIu32
                  ", last HTTP status %d, %" PRIu32 " ms)",
             claim_status_str(st), claim_path_str(r.path), claim_last_str(chk.last), r.service_tries,
             r.mqtt_tries, r.last_http_status, r.elapsed_ms);
    if (st == CLAIM_OK) {
        state_set(STATE_KEY_DONE);
    }
    if (st == CLAIM_ERR_TOKEN || st == CLAIM_ERR_CONFIG || st == CLAIM_ERR_ARG) {
        return CLAIM_NEXT_STOP; /* a rejected token or a wrong request: claiming again cannot help */
    }
    return CLAIM_NEXT_CLAIM;
}

static void end_task(void)
{
    memset(s_token, 0, sizeof(s_token));
    memset(s_secret, 0, sizeof(s_secret));
    vTaskDelete(NULL);
}

static void claim_task(void *arg)
{
    claim_port_t port;
    (void)arg;
    claim_port_idf_init(&port, s_ca_pem);

#if CONFIG_CLAIM_TRIGGER_FIRST_BOOT
    if (state_get(STATE_KEY_CLAIMED)) {
        ESP_LOGI(TAG, "claimed by a customer earlier; nothing to do");
        end_task();
        return;
    }
    for (;;) {
        /* Fallback when claimsvc cannot answer: claim until one request was delivered. */
        claim_next_t next = check_and_claim(&port, !state_get(STATE_KEY_DONE));
        if (next == CLAIM_NEXT_DONE || next == CLAIM_NEXT_STOP || CONFIG_CLAIM_RECHECK_MIN == 0) {
            break;
        }
        if (CONFIG_CLAIM_SERVICE_URL[0] == '\0' && state_get(STATE_KEY_DONE)) {
            break; /* nobody to ask whether the claim lapsed: the old rule, one delivered request */
        }
        vTaskDelay(claim_port_idf_ticks((uint64_t)CONFIG_CLAIM_RECHECK_MIN * 60000u));
    }
    end_task();
#else
    const int pin = CONFIG_CLAIM_BUTTON_GPIO;
    int prev;
    if (claim_port_idf_button_init(pin) != ESP_OK) {
        ESP_LOGE(TAG, "claim button disabled: choose another GPIO (menuconfig: Claim client)");
        end_task(); /* no abort, no reboot loop: the device runs on without the button */
        return;
    }
    prev = claim_port_idf_button_level(pin);
    ESP_LOGI(TAG, "press the button on GPIO %d to ask for a claim", pin);
    for (;;) {
        int level = claim_port_idf_button_level(pin);
        if (prev == 1 && level == 0) {
            vTaskDelay(claim_port_idf_ticks(30)); /* debounce */
            if (claim_port_idf_button_level(pin) == 0) {
                if (state_get(STATE_KEY_CLAIMED)) {
                    ESP_LOGI(TAG, "claimed by a customer earlier; not claiming again");
                } else {
                    (void)check_and_claim(&port, 1); /* one check (and at most one claim) per press */
                }
            }
            level = claim_port_idf_button_level(pin); /* a new press needs a release first */
        }
        prev = level;
        vTaskDelay(claim_port_idf_ticks(50));
    }
#endif
}

static bool load_ca(void)
{
#if CONFIG_CLAIM_CA_PEM_EMBEDDED
    size_t len = (size_t)(claim_ca_pem_end - claim_ca_pem_start); /* EMBED_TXTFILES adds the NUL */
    if (len == 0u || !claim_pem_looks_valid(claim_ca_pem_start, len - 1u)) {
        ESP_LOGE(TAG, "main/claim_ca.pem is not a PEM certificate; not claiming");
        return false;
    }
    s_ca_pem = claim_ca_pem_start;
    ESP_LOGI(TAG, "TLS: private CA built into the firmware");
#elif CONFIG_CLAIM_CA_PEM_NVS
    esp_err_t err = claim_port_idf_load_ca_pem(CONFIG_CLAIM_FACTORY_PARTITION, s_ca_buf, sizeof(s_ca_buf));
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "no usable CA PEM in NVS (partition \"%s\", key \"%s\"): %s; not claiming",
                 CONFIG_CLAIM_FACTORY_PARTITION, CLAIM_NVS_KEY_CA_PEM, esp_err_to_name(err));
        return false;
    }
    s_ca_pem = s_ca_buf;
    ESP_LOGI(TAG, "TLS: private CA from NVS");
#else
    s_ca_pem = NULL;
#endif
    return true;
}

void app_main(void)
{
    /* With CONFIG_NVS_ENCRYPTION, nvs_flash_init() reads (or on first boot
     * generates) the keys of the app's "nvs" partition itself. */
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase()); /* the app's "nvs" only; factory data is in "fctry" */
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);

    err = claim_port_idf_load_credentials(CONFIG_CLAIM_FACTORY_PARTITION, s_token, sizeof(s_token),
                                          s_secret, sizeof(s_secret));
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "no claim credentials in NVS partition \"%s\"%s (namespace \"%s\", key \"%s\"): %s;"
                      " provision the device (firmware/README.md)",
                 CONFIG_CLAIM_FACTORY_PARTITION, claim_port_idf_nvs_encrypted() ? " (encrypted)" : "",
                 CLAIM_NVS_NAMESPACE, CLAIM_NVS_KEY_TOKEN, esp_err_to_name(err));
        return;
    }
    ESP_LOGI(TAG, "claim credentials loaded (token: %u chars, secret: %s)", (unsigned)strlen(s_token),
             s_secret[0] != '\0' ? "set" : "none");
    if (!load_ca()) {
        return;
    }

    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    ESP_ERROR_CHECK(example_connect()); /* demo Wi-Fi/Ethernet from menuconfig */

    /* TLS (esp_http_client runs in this task) plus the status body need the stack; check with uxTaskGetStackHighWaterMark() when changing it. */
    if (xTaskCreate(claim_task, "claim", 10240, NULL, 5, NULL) != pdPASS) {
        ESP_LOGE(TAG, "could not start the claim task");
    }
}
