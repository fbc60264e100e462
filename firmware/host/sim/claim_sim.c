/*
 * claim-sim - run the device's claim logic (claim_core) on Linux.
 *
 *   claim-sim --service URL --mqtt URI --token T --secret S --duration-ms D
 *             [--wait S] [--deadline-ms N] [--attempts N] [--http-timeout-ms N]
 *             [--mqtt-timeout-ms N] [--backoff-base-ms N] [--backoff-max-ms N]
 *             [--check [--done-before]] [--quiet] [--verbose]
 *
 * --check first asks claimsvc for the device's newest claim (GET
 * /devices/claims?limit=1) and claims only when claim_decide() says so, like
 * the device does at start-up; --done-before says a request was delivered on
 * an earlier boot (the device's "done" flag), which decides when claimsvc
 * cannot answer.
 *
 * The token and secret may come from CLAIM_SIM_TOKEN / CLAIM_SIM_SECRET instead
 * of the command line (so that they do not show in ps). Neither is ever printed.
 *
 * stdout: one line, e.g.
 *   result=ok path=service http_status=200 service_tries=1 mqtt_tries=0 rounds=1 elapsed_ms=42
 * stderr: claim_core's log lines (no secrets).
 *
 * Exit codes:
 *   0  claimed (path=service or path=mqtt; see stdout)
 *   1  internal error (library initialisation)
 *   2  usage error or invalid configuration (CLAIM_ERR_ARG)
 *   3  configuration error: claimsvc answered 400/413/415/422 (no fallback)
 *   4  token rejected: ThingsBoard MQTT refused the token (CONNACK 4/5)
 *   5  deadline passed before a success
 *   6  all attempts used before a success
 *   7  --check: not claimed, as decided (decision=wait|done|stop on stdout)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claim/claim.h"
#include "port_posix.h"

enum {
    EXIT_CLAIMED = 0,
    EXIT_INTERNAL = 1,
    EXIT_USAGE = 2,
    EXIT_CONFIG = 3,
    EXIT_TOKEN = 4,
    EXIT_DEADLINE = 5,
    EXIT_EXHAUSTED = 6,
    EXIT_NOT_CLAIMED = 7
};

static void usage(FILE *f)
{
    fputs("usage: claim-sim [--service URL] [--mqtt URI] [--token T] [--secret S]\n"
          "                 [--duration-ms D] [--wait S] [--deadline-ms N] [--attempts N]\n"
          "                 [--http-timeout-ms N] [--mqtt-timeout-ms N]\n"
          "                 [--backoff-base-ms N] [--backoff-max-ms N] [--check [--done-before]]\n"
          "                 [--quiet] [--verbose]\n"
          "token/secret default to $CLAIM_SIM_TOKEN / $CLAIM_SIM_SECRET.\n"
          "exit: 0 claimed, 2 usage, 3 config error, 4 token rejected, 5 deadline, 6 attempts used,\n"
          "      7 not claimed as decided by --check\n",
          f);
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long long v;
    if (s == NULL || *s == '\0' || *s == '-') {
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > 0xffffffffull) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int exit_code(claim_status_t st)
{
    switch (st) {
    case CLAIM_OK: return EXIT_CLAIMED;
    case CLAIM_ERR_ARG: return EXIT_USAGE;
    case CLAIM_ERR_CONFIG: return EXIT_CONFIG;
    case CLAIM_ERR_TOKEN: return EXIT_TOKEN;
    case CLAIM_ERR_DEADLINE: return EXIT_DEADLINE;
    case CLAIM_ERR_EXHAUSTED: return EXIT_EXHAUSTED;
    case CLAIM_ERR_DUPLICATE: return EXIT_INTERNAL;
    }
    return EXIT_INTERNAL;
}

int main(int argc, char **argv)
{
    claim_config_t cfg;
    claim_result_t res;
    claim_port_t port;
    posix_port_ctx_t pctx;
    claim_status_t st;
    claim_check_t chk;
    int check = 0, done_before = 0;
    int i;

    memset(&pctx, 0, sizeof(pctx));
    claim_config_defaults(&cfg);
    cfg.token = getenv("CLAIM_SIM_TOKEN");
    cfg.secret = getenv("CLAIM_SIM_SECRET");

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint32_t *num = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return EXIT_CLAIMED;
        } else if (strcmp(a, "--quiet") == 0) {
            pctx.quiet = 1;
            continue;
        } else if (strcmp(a, "--verbose") == 0) {
            pctx.verbose = 1;
            continue;
        } else if (strcmp(a, "--check") == 0) {
            check = 1;
            continue;
        } else if (strcmp(a, "--done-before") == 0) {
            done_before = 1;
            continue;
        } else if (v == NULL) {
            fprintf(stderr, "claim-sim: %s needs a value\n", a);
            usage(stderr);
            return EXIT_USAGE;
        } else if (strcmp(a, "--service") == 0) {
            cfg.service_url = v;
        } else if (strcmp(a, "--mqtt") == 0) {
            cfg.mqtt_uri = v;
        } else if (strcmp(a, "--token") == 0) {
            cfg.token = v;
        } else if (strcmp(a, "--secret") == 0) {
            cfg.secret = v;
        } else if (strcmp(a, "--duration-ms") == 0) {
            num = &cfg.duration_ms;
        } else if (strcmp(a, "--wait") == 0) {
            num = &cfg.prefer_wait_s;
        } else if (strcmp(a, "--deadline-ms") == 0) {
            num = &cfg.deadline_ms;
        } else if (strcmp(a, "--attempts") == 0) {
            num = &cfg.max_attempts;
        } else if (strcmp(a, "--http-timeout-ms") == 0) {
            num = &cfg.http_timeout_ms;
        } else if (strcmp(a, "--mqtt-timeout-ms") == 0) {
            num = &cfg.mqtt_timeout_ms;
        } else if (strcmp(a, "--backoff-base-ms") == 0) {
            num = &cfg.backoff_base_ms;
        } else if (strcmp(a, "--backoff-max-ms") == 0) {
            num = &cfg.backoff_max_ms;
        } else {
            fprintf(stderr, "claim-sim: unknown option %s\n", a); /* an option name, never a value */
            usage(stderr);
            return EXIT_USAGE;
        }
        if (num != NULL && parse_u32(v, num) != 0) {
            fprintf(stderr, "claim-sim: %s needs a non-negative integer\n", a);
            return EXIT_USAGE;
        }
        i++;
    }
    if (cfg.token == NULL || cfg.token[0] == '\0') {
        fputs("claim-sim: no token (--token or $CLAIM_SIM_TOKEN)\n", stderr);
        return EXIT_USAGE;
    }
    if ((cfg.service_url == NULL || cfg.service_url[0] == '\0') &&
        (cfg.mqtt_uri == NULL || cfg.mqtt_uri[0] == '\0')) {
        fputs("claim-sim: give --service, --mqtt or both\n", stderr);
        return EXIT_USAGE;
    }
    if (posix_port_init(&port, &pctx) != 0) {
        fputs("claim-sim: could not initialise libcurl/libmosquitto\n", stderr);
        return EXIT_INTERNAL;
    }

    memset(&chk, 0, sizeof(chk));
    chk.next = CLAIM_NEXT_CLAIM;
    if (check) {
        /* what the device does at start-up: fallback = no request delivered yet */
        (void)claim_check(&cfg, &port, !done_before, &chk);
    }
    if (chk.next != CLAIM_NEXT_CLAIM) {
        printf("result=not-claimed decision=%s last=%s status_http=%d\n", claim_next_str(chk.next),
               claim_last_str(chk.last), chk.http_status);
        fflush(stdout);
        posix_port_cleanup();
        return EXIT_NOT_CLAIMED;
    }
    st = claim_run(&cfg, &port, &res);
    printf("result=%s path=%s http_status=%d service_tries=%lu mqtt_tries=%lu rounds=%lu "
           "connack=%d elapsed_ms=%lu",
           claim_status_str(st), claim_path_str(res.path), res.last_http_status,
           (unsigned long)res.service_tries, (unsigned long)res.mqtt_tries,
           (unsigned long)res.rounds, res.last_connack_rc, (unsigned long)res.elapsed_ms);
    if (check) {
        printf(" decision=%s last=%s status_http=%d", claim_next_str(chk.next), claim_last_str(chk.last),
               chk.http_status);
    }
    printf("\n");
    fflush(stdout);
    posix_port_cleanup();
    return exit_code(st);
}
