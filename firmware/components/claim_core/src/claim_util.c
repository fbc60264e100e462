/*
 * claim_util.c - time budgets in 64-bit arithmetic, the button GPIO check and
 * a PEM sanity check. Pure functions, used by the ESP-IDF port.
 */
#include <string.h>

#include "claim/claim.h"

uint32_t claim_ms_left(uint64_t now_ms, uint64_t end_ms)
{
    uint64_t left;
    if (now_ms >= end_ms) {
        return 0;
    }
    left = end_ms - now_ms;
    return left > 0xffffffffu ? 0xffffffffu : (uint32_t)left;
}

uint32_t claim_ms_to_ticks(uint64_t ms, uint32_t tick_hz, uint32_t max_ticks)
{
    uint64_t ticks;
    if (ms == 0u || tick_hz == 0u) {
        return 0;
    }
    if (ms > (UINT64_MAX - 999u) / tick_hz) {
        return max_ticks;
    }
    ticks = (ms * tick_hz + 999u) / 1000u; /* round up: never wake early */
    return ticks > max_ticks ? max_ticks : (uint32_t)ticks;
}

uint32_t claim_share_ms(uint32_t left_ms, uint32_t uses, uint32_t min_ms)
{
    uint32_t share;
    if (uses == 0u) {
        uses = 1u;
    }
    share = left_ms / uses;
    if (share < min_ms) {
        share = min_ms < left_ms ? min_ms : left_ms;
    }
    return share;
}

claim_gpio_check_t claim_gpio_check(int pin, uint64_t valid_mask, uint64_t reserved_mask)
{
    uint64_t bit;
    if (pin < 0 || pin > 63) {
        return CLAIM_GPIO_NOT_A_PIN;
    }
    bit = (uint64_t)1u << (unsigned)pin;
    if ((valid_mask & bit) == 0u) {
        return CLAIM_GPIO_NOT_A_PIN;
    }
    if ((reserved_mask & bit) != 0u) {
        return CLAIM_GPIO_RESERVED;
    }
    return CLAIM_GPIO_OK;
}

static const char *find_in(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    size_t i;
    if (n > len) {
        return NULL;
    }
    for (i = 0; i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

int claim_pem_looks_valid(const char *pem, size_t len)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    const char *b, *e;
    if (pem == NULL || len == 0u || pem[len] != '\0' || memchr(pem, '\0', len) != NULL) {
        return 0;
    }
    b = find_in(pem, len, begin);
    if (b == NULL) {
        return 0;
    }
    e = find_in(b, len - (size_t)(b - pem), end);
    /* something (the base64 body) between the two markers */
    return e != NULL && (size_t)(e - b) > sizeof(begin) + 16u;
}
