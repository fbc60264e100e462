#ifndef FREERTOS_MOCK_H
#define FREERTOS_MOCK_H
#include <stdint.h>
#include "idf_mock.h"
typedef uint32_t TickType_t;
typedef int BaseType_t;
#define configTICK_RATE_HZ 100
#define portMAX_DELAY ((TickType_t)0xffffffffUL)
#define pdFALSE 0
#define pdTRUE 1
#define pdPASS 1
#define BIT0 0x01u
#define BIT1 0x02u
#define BIT2 0x04u
#define BIT3 0x08u
#endif
