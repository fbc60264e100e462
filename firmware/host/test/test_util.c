/* test_util.c - 64-bit tick arithmetic, attempt budgets, the button GPIO check
 * for esp32 and esp32c3, and the PEM check. */
#include <string.h>

#include "check.h"
#include "claim/claim.h"

#define MAX_TICKS 0xfffffffeu /* portMAX_DELAY - 1 */

/* What FreeRTOS's pdMS_TO_TICKS does with a 32-bit TickType_t. */
static uint32_t pd_ms_to_ticks_32(uint32_t ms, uint32_t hz)
{
    return (uint32_t)(ms * hz) / 1000u;
}

static void test_ms_to_ticks(void)
{
    uint32_t twelve_h = 12u * 3600u * 1000u;
    CHECK_EQ_INT(claim_ms_to_ticks(0, 100, MAX_TICKS), 0);
    CHECK_EQ_INT(claim_ms_to_ticks(1, 100, MAX_TICKS), 1);   /* rounded up: never early */
    CHECK_EQ_INT(claim_ms_to_ticks(10, 100, MAX_TICKS), 1);
    CHECK_EQ_INT(claim_ms_to_ticks(11, 100, MAX_TICKS), 2);
    CHECK_EQ_INT(claim_ms_to_ticks(30000, 1000, MAX_TICKS), 30000);
    /* 12 h at 100 Hz: 4,320,000 ticks; the 32-bit macro wraps */
    CHECK_EQ_INT(claim_ms_to_ticks(twelve_h, 100, MAX_TICKS), 4320000);
    CHECK(pd_ms_to_ticks_32(twelve_h, 100) != 4320000u);
    /* 30 days at 1000 Hz still fits in 32-bit ticks; 60 days does not: capped */
    CHECK_EQ_INT(claim_ms_to_ticks(30ull * 86400000ull, 1000, MAX_TICKS), 2592000000u);
    CHECK_EQ_INT(claim_ms_to_ticks(60ull * 86400000ull, 1000, MAX_TICKS), MAX_TICKS);
    CHECK_EQ_INT(claim_ms_to_ticks(UINT64_MAX, 1000, MAX_TICKS), MAX_TICKS);
    CHECK_EQ_INT(claim_ms_to_ticks(5000, 0, MAX_TICKS), 0);
}

static void test_ms_left(void)
{
    CHECK_EQ_INT(claim_ms_left(1000, 900), 0);
    CHECK_EQ_INT(claim_ms_left(1000, 1000), 0);
    CHECK_EQ_INT(claim_ms_left(1000, 1250), 250);
    CHECK_EQ_INT(claim_ms_left(0, UINT64_MAX), 0xffffffffu);
}

static void test_share_keeps_attempt_within_budget(void)
{
    /* esp-mqtt applies network.timeout_ms to the TCP/TLS connect, again to the
     * CONNACK wait, and esp_mqtt_client_stop() may wait as long for its task:
     * with a third of what is left each, the worst case still fits. */
    static const uint32_t budgets[] = {1u, 499u, 1500u, 3000u, 10000u, 10001u, 60000u, 0xffffffffu};
    size_t i;
    for (i = 0; i < sizeof(budgets) / sizeof(budgets[0]); i++) {
        uint32_t t = claim_share_ms(budgets[i], 3, 500);
        uint64_t worst = 3ull * t;
        CHECK(t > 0u);
        if (budgets[i] >= 1500u) {
            CHECK(worst <= budgets[i]);
        }
        CHECK(t <= budgets[i]);
    }
    CHECK_EQ_INT(claim_share_ms(10000, 3, 500), 3333);
    CHECK_EQ_INT(claim_share_ms(900, 3, 500), 500);  /* floor: a connect needs some time */
    CHECK_EQ_INT(claim_share_ms(200, 3, 500), 200);  /* but never more than is left */
    CHECK_EQ_INT(claim_share_ms(9000, 0, 0), 9000);
    /* esp_http_client: connect/send, then headers, then body: two shares + a read */
    CHECK_EQ_INT(claim_share_ms(7000, 2, 500), 3500);
}

/* SOC_GPIO_VALID_GPIO_MASK and the SPI flash pins of two targets. */
#define ESP32_VALID (0xFFFFFFFFFFull & ~(0ull | (1ull << 20) | (1ull << 24) | (1ull << 28) | (1ull << 29) | (1ull << 30) | (1ull << 31)))
#define ESP32_FLASH (0x3Full << 6)     /* GPIO6..11 */
#define ESP32C3_VALID ((1ull << 22) - 1u)
#define ESP32C3_FLASH (0x3Full << 12)  /* GPIO12..17 */

static void test_gpio_check(void)
{
    /* esp32: BOOT is GPIO0; 6..11 are the flash; 20, 24, 28..31 do not exist; 34..39 are inputs */
    CHECK_EQ_INT(claim_gpio_check(0, ESP32_VALID, ESP32_FLASH), CLAIM_GPIO_OK);
    CHECK_EQ_INT(claim_gpio_check(6, ESP32_VALID, ESP32_FLASH), CLAIM_GPIO_RESERVED);
    CHECK_EQ_INT(claim_gpio_check(11, ESP32_VALID, ESP32_FLASH), CLAIM_GPIO_RESERVED);
    CHECK_EQ_INT(claim_gpio_check(20, ESP32_VALID, ESP32_FLASH), CLAIM_GPIO_NOT_A_PIN);
    CHECK_EQ_INT(claim_gpio_check(24, ESP32_VALID, ESP32_FLASH), CLAIM_GPIO_NOT_A_PIN);
    CHECK_EQ_INT(claim_gpio_check(39, ESP32_VALID, ESP32_FLASH), CLAIM_GPIO_OK);
    CHECK_EQ_INT(claim_gpio_check(40, ESP32_VALID, ESP32_FLASH), CLAIM_GPIO_NOT_A_PIN);
    /* esp32c3: BOOT is GPIO9; 12..17 are the flash; nothing above 21 */
    CHECK_EQ_INT(claim_gpio_check(9, ESP32C3_VALID, ESP32C3_FLASH), CLAIM_GPIO_OK);
    CHECK_EQ_INT(claim_gpio_check(0, ESP32C3_VALID, ESP32C3_FLASH), CLAIM_GPIO_OK);
    CHECK_EQ_INT(claim_gpio_check(12, ESP32C3_VALID, ESP32C3_FLASH), CLAIM_GPIO_RESERVED);
    CHECK_EQ_INT(claim_gpio_check(21, ESP32C3_VALID, ESP32C3_FLASH), CLAIM_GPIO_OK);
    CHECK_EQ_INT(claim_gpio_check(22, ESP32C3_VALID, ESP32C3_FLASH), CLAIM_GPIO_NOT_A_PIN);
    CHECK_EQ_INT(claim_gpio_check(39, ESP32C3_VALID, ESP32C3_FLASH), CLAIM_GPIO_NOT_A_PIN);
    /* anything else */
    CHECK_EQ_INT(claim_gpio_check(-1, ESP32_VALID, 0), CLAIM_GPIO_NOT_A_PIN);
    CHECK_EQ_INT(claim_gpio_check(64, ~0ull, 0), CLAIM_GPIO_NOT_A_PIN);
    CHECK_EQ_INT(claim_gpio_check(63, ~0ull, 0), CLAIM_GPIO_OK);
}

#define PEM_OK                                                          \
    "-----BEGIN CERTIFICATE-----\n"                                     \
    "MIIBszCCAVmgAwIBAgIUUjz0oZ6wXv0M2lXc8h5bq2pYl0MwCgYIKoZIzj0EAwIw\n" \
    "-----END CERTIFICATE-----\n"

static void test_pem_check(void)
{
    static const char ok[] = PEM_OK;
    static const char two[] = PEM_OK PEM_OK;
    static const char no_end[] = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUUjz0oZ6wXv0M\n";
    static const char key[] = "-----BEGIN PRIVATE KEY-----\nMIIBszCCAVmgAwIBAgIUUjz0oZ6wXv0M\n-----END PRIVATE KEY-----\n";
    static const char empty_body[] = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
    char nul_inside[sizeof(ok)];
    char no_nul[sizeof(ok) - 1];
    CHECK_EQ_INT(claim_pem_looks_valid(ok, strlen(ok)), 1);
    CHECK_EQ_INT(claim_pem_looks_valid(two, strlen(two)), 1);
    CHECK_EQ_INT(claim_pem_looks_valid(no_end, strlen(no_end)), 0);
    CHECK_EQ_INT(claim_pem_looks_valid(key, strlen(key)), 0);
    CHECK_EQ_INT(claim_pem_looks_valid(empty_body, strlen(empty_body)), 0);
    CHECK_EQ_INT(claim_pem_looks_valid("", 0), 0);
    CHECK_EQ_INT(claim_pem_looks_valid(NULL, 10), 0);
    memcpy(nul_inside, ok, sizeof(ok));
    nul_inside[40] = '\0';
    CHECK_EQ_INT(claim_pem_looks_valid(nul_inside, sizeof(ok) - 1u), 0);
    /* mbedTLS needs the terminating NUL: a PEM read without it is refused */
    memcpy(no_nul, ok, sizeof(no_nul));
    CHECK_EQ_INT(claim_pem_looks_valid(no_nul, sizeof(no_nul) - 1u), 0);
}

const test_case_t util_tests[] = {
    {"time: ms -> ticks in 64 bits, rounded up, capped", test_ms_to_ticks},
    {"time: ms left until a deadline", test_ms_left},
    {"time: shares keep a library's repeated timeouts within the attempt", test_share_keeps_attempt_within_budget},
    {"gpio: button pin check for esp32 and esp32c3", test_gpio_check},
    {"pem: private CA sanity check", test_pem_check},
    {NULL, NULL},
};
