/*
 * Claim client: on a trigger (first boot, or a GPIO button) ask claimsvc to
 * claim this device; fall back to ThingsBoard MQTT when the service cannot
 * take the claim (docs/design.md §7). The decision logic is claim_core, tested on the
 * host (firmware/host); this file only wires ESP-IDF to it.
 *
 * Start-up: NVS -> factory credentials -> netif/event loop -> network -> claim task.
 * The token and the secret are read from the factory NVS partition and are never
 * logged.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "driver/gpio.h"
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
#define STATE_KEY_DONE "done"

static char s_token[CLAIM_TOKEN_MAX + 1];
static char s_secret[CLAIM_SECRET_MAX + 1];

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

static claim_status_t run_claim(claim_once_t *once, uint32_t trigger)
{
    claim_port_t port;
    claim_config_t cfg;
    claim_result_t r;
    claim_status_t st;

    claim_port_idf_init(&port);
    fill_config(&cfg);
    st = claim_once_run(once, trigger, &cfg, &port, &r);
    ESP_LOGI(TAG, "claim %s via %s (service tries %" PRIu32 ", MQTT tries %" PRIu32
                  ", last HTTP status %d, %" PRIu32 " ms)",
             claim_status_str(st), claim_path_str(r.path), r.service_tries, r.mqtt_tries,
             r.last_http_status, r.elapsed_ms);
    return st;
}

#if CONFIG_CLAIM_TRIGGER_FIRST_BOOT
static bool already_claimed(void)
{
    nvs_handle_t h;
    uint8_t done = 0;
    if (nvs_open(STATE_NAMESPACE, NVS_READONLY, &h) != ESP_OK) {
        return false; /* namespace not created yet: never claimed */
    }
    if (nvs_get_u8(h, STATE_KEY_DONE, &done) != ESP_OK) {
        done = 0;
    }
    nvs_close(h);
    return done != 0;
}

static void remember_claimed(void)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(STATE_NAMESPACE, NVS_READWRITE, &h);
    if (err == ESP_OK) {
        err = nvs_set_u8(h, STATE_KEY_DONE, 1);
        if (err == ESP_OK) {
            err = nvs_commit(h);
        }
        nvs_close(h);
    }
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "could not remember the claim: %s", esp_err_to_name(err));
    }
}
#endif

static void claim_task(void *arg)
{
    claim_once_t once;
    (void)arg;
    claim_once_init(&once);

#if CONFIG_CLAIM_TRIGGER_FIRST_BOOT
    if (already_claimed()) {
        ESP_LOGI(TAG, "claimed on an earlier boot; nothing to do");
    } else if (run_claim(&once, 1u) == CLAIM_OK) {
        remember_claimed();
    }
    memset(s_token, 0, sizeof(s_token));
    memset(s_secret, 0, sizeof(s_secret));
    vTaskDelete(NULL);
#else
    const gpio_num_t pin = (gpio_num_t)CONFIG_CLAIM_BUTTON_GPIO;
    const gpio_config_t io = {
        .pin_bit_mask = 1ULL << CONFIG_CLAIM_BUTTON_GPIO,
        .mode = GPIO_MODE_INPUT,
        .pull_up_en = GPIO_PULLUP_ENABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    uint32_t presses = 0;
    int prev;
    ESP_ERROR_CHECK(gpio_config(&io));
    prev = gpio_get_level(pin);
    ESP_LOGI(TAG, "press the button on GPIO %d to ask for a claim", CONFIG_CLAIM_BUTTON_GPIO);
    for (;;) {
        int level = gpio_get_level(pin);
        if (prev == 1 && level == 0) {
            vTaskDelay(pdMS_TO_TICKS(30)); /* debounce */
            if (gpio_get_level(pin) == 0) {
                presses++;
                (void)run_claim(&once, presses); /* one claim per press */
            }
            level = gpio_get_level(pin); /* a new press needs a release first */
        }
        prev = level;
        vTaskDelay(pdMS_TO_TICKS(50));
    }
#endif
}

void app_main(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase()); /* the app's "nvs" only; factory data is in "fctry" */
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);

    err = claim_port_idf_load_credentials(CONFIG_CLAIM_FACTORY_PARTITION, s_token, sizeof(s_token),
                                          s_secret, sizeof(s_secret));
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "no claim credentials in NVS partition \"%s\" (namespace \"%s\", key \"%s\"): %s;"
                      " provision the device (firmware/README.md)",
                 CONFIG_CLAIM_FACTORY_PARTITION, CLAIM_NVS_NAMESPACE, CLAIM_NVS_KEY_TOKEN,
                 esp_err_to_name(err));
        return;
    }
    ESP_LOGI(TAG, "claim credentials loaded (token: %u chars, secret: %s)", (unsigned)strlen(s_token),
             s_secret[0] != '\0' ? "set" : "none");

    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    ESP_ERROR_CHECK(example_connect()); /* demo Wi-Fi/Ethernet from menuconfig */

    /* TLS needs the stack; check with uxTaskGetStackHighWaterMark() when changing it. */
    if (xTaskCreate(claim_task, "claim", 8192, NULL, 5, NULL) != pdPASS) {
        ESP_LOGE(TAG, "could not start the claim task");
    }
}
