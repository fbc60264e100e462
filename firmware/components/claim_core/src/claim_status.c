/*
 * claim_status.c - "claim again?": the newest claim's status from claimsvc
 * (GET /devices/claims?limit=1), a small bounded JSON reader for it, and the
 * decision table of claim/claim.h. No allocation, no recursion.
 */
#include <string.h>

#include "claim/claim.h"
#include "claim_internal.h"

#define JSON_MAX_DEPTH 32

static const struct {
    const char *name;
    claim_last_t last;
} known_statuses[] = {
    {"pending", CLAIM_LAST_PENDING},     {"delivered", CLAIM_LAST_DELIVERED},
    {"claimed", CLAIM_LAST_CLAIMED},     {"expired", CLAIM_LAST_EXPIRED},
    {"failed", CLAIM_LAST_FAILED},       {"rejected", CLAIM_LAST_REJECTED},
    {"cancelled", CLAIM_LAST_CANCELLED}, {"superseded", CLAIM_LAST_SUPERSEDED},
};

claim_last_t claim_last_from_str(const char *status)
{
    size_t i;
    if (status == NULL || status[0] == '\0') {
        return CLAIM_LAST_UNKNOWN;
    }
    for (i = 0; i < sizeof(known_statuses) / sizeof(known_statuses[0]); i++) {
        if (strcmp(status, known_statuses[i].name) == 0) {
            return known_statuses[i].last;
        }
    }
    return CLAIM_LAST_OTHER;
}

claim_next_t claim_decide(claim_last_t last, int fallback_claim)
{
    switch (last) {
    case CLAIM_LAST_NONE:
    case CLAIM_LAST_EXPIRED:
    case CLAIM_LAST_FAILED:
        return CLAIM_NEXT_CLAIM;
    case CLAIM_LAST_PENDING:
    case CLAIM_LAST_DELIVERED:
    case CLAIM_LAST_SUPERSEDED:
        return CLAIM_NEXT_WAIT;
    case CLAIM_LAST_CLAIMED:
        return CLAIM_NEXT_DONE;
    case CLAIM_LAST_REJECTED:
    case CLAIM_LAST_CANCELLED:
        return CLAIM_NEXT_STOP;
    case CLAIM_LAST_UNKNOWN:
    case CLAIM_LAST_OTHER:
        break;
    }
    return fallback_claim ? CLAIM_NEXT_CLAIM : CLAIM_NEXT_WAIT;
}

int claim_status_url_build(char *buf, size_t cap, const char *base)
{
    return claim_url_with_path(buf, cap, base, "/devices/claims?limit=1");
}

/* ---------------------------------------------------------------- JSON */

typedef struct {
    const char *p;
    const char *end;
} jcur_t;

static void j_ws(jcur_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static int j_peek(jcur_t *c)
{
    j_ws(c);
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Reads a string at c->p (which must be '"'). With out != NULL, decodes it into
 * out (cap bytes with the NUL); escapes beyond ASCII or a string that does not
 * fit make it fail. Returns 0 or -1. */
static int j_string(jcur_t *c, char *out, size_t cap)
{
    size_t n = 0;
    if (c->p >= c->end || *c->p != '"') {
        return -1;
    }
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        int v = -1;
        if (ch == '"') {
            if (out != NULL) {
                out[n] = '\0';
            }
            return 0;
        }
        if (ch < 0x20u) {
            return -1; /* raw control characters are not allowed in JSON strings */
        }
        if (ch == '\\') {
            if (c->p >= c->end) {
                return -1;
            }
            ch = (unsigned char)*c->p++;
            switch (ch) {
            case '"': case '\\': case '/': break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                int i;
                v = 0;
                if (c->end - c->p < 4) {
                    return -1;
                }
                for (i = 0; i < 4; i++) {
                    int h = hexval(c->p[i]);
                    if (h < 0) {
                        return -1;
                    }
                    v = v * 16 + h;
                }
                c->p += 4;
                if (out != NULL && (v == 0 || v >= 0x80)) {
                    return -1; /* a status is plain ASCII */
                }
                ch = (unsigned char)v;
                break;
            }
            default:
                return -1;
            }
        }
        if (out != NULL) {
            if (n + 1u >= cap) {
                return -1;
            }
            out[n++] = (char)ch;
        }
    }
    return -1; /* unterminated */
}

/* Skips one value of any kind (bounded nesting). Returns 0 or -1. */
static int j_skip(jcur_t *c)
{
    char stack[JSON_MAX_DEPTH];
    int depth = 0;
    int ch = j_peek(c);
    if (ch < 0) {
        return -1;
    }
    if (ch != '{' && ch != '[') {
        if (ch == '"') {
            return j_string(c, NULL, 0);
        }
        /* number, true, false, null: up to the next delimiter */
        if (!(ch == '-' || (ch >= '0' && ch <= '9') || ch == 't' || ch == 'f' || ch == 'n')) {
            return -1;
        }
        while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ' &&
               *c->p != '\t' && *c->p != '\n' && *c->p != '\r') {
            c->p++;
        }
        return 0;
    }
    /* containers: track brackets, skip strings (their contents may hold brackets) */
    while (c->p < c->end) {
        char b = *c->p;
        if (b == '"') {
            if (j_string(c, NULL, 0) != 0) {
                return -1;
            }
            continue;
        }
        if (b == '{' || b == '[') {
            if (depth >= JSON_MAX_DEPTH) {
                return -1;
            }
            stack[depth++] = b == '{' ? '}' : ']';
        } else if (b == '}' || b == ']') {
            if (depth == 0 || stack[depth - 1] != b) {
                return -1;
            }
            depth--;
            if (depth == 0) {
                c->p++;
                return 0;
            }
        }
        c->p++;
    }
    return -1;
}

/* In an object whose '{' is at c->p, finds member `key`; leaves c->p at its
 * value. Returns 1 found, 0 not found (object ended, c->p after '}'), -1 bad. */
static int j_find_member(jcur_t *c, const char *key)
{
    char name[16];
    if (j_peek(c) != '{') {
        return -1;
    }
    c->p++;
    if (j_peek(c) == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        int match;
        if (j_peek(c) != '"') {
            return -1;
        }
        /* a key longer than name[] cannot be the one we look for: skip it */
        {
            jcur_t save = *c;
            if (j_string(c, name, sizeof(name)) == 0) {
                match = strcmp(name, key) == 0;
            } else {
                *c = save;
                if (j_string(c, NULL, 0) != 0) {
                    return -1;
                }
                match = 0;
            }
        }
        if (j_peek(c) != ':') {
            return -1;
        }
        c->p++;
        if (match) {
            j_ws(c);
            return 1;
        }
        if (j_skip(c) != 0) {
            return -1;
        }
        switch (j_peek(c)) {
        case ',':
            c->p++;
            break;
        case '}':
            c->p++;
            return 0;
        default:
            return -1;
        }
    }
}

int claim_json_newest_status(const char *json, size_t len, char *status, size_t cap)
{
    jcur_t c;
    int r;
    if (status == NULL || cap == 0) {
        return -1;
    }
    status[0] = '\0';
    if (json == NULL) {
        return -1;
    }
    c.p = json;
    c.end = json + len;
    if (j_find_member(&c, "claims") != 1 || j_peek(&c) != '[') {
        return -1;
    }
    c.p++;
    r = j_peek(&c);
    if (r == ']') {
        return 0;
    }
    if (r != '{') {
        return -1;
    }
    if (j_find_member(&c, "status") != 1 || j_peek(&c) != '"') {
        return -1;
    }
    if (j_string(&c, status, cap) != 0) {
        status[0] = '\0';
        return -1;
    }
    return status[0] != '\0' ? 1 : -1;
}

/* ---------------------------------------------------------------- check */

claim_next_t claim_check(const claim_config_t *cfg, const claim_port_t *port, int fallback_claim,
                         claim_check_t *out)
{
    claim_check_t local;
    claim_check_t *r = out != NULL ? out : &local;
    char url[CLAIM_URL_MAX];
    char body[CLAIM_STATUS_BODY_MAX];
    char status[CLAIM_STATUS_STR_MAX];
    claim_header_t headers[1];
    claim_http_response_t resp;
    size_t body_len = 0;
    uint64_t start;
    uint32_t timeout;

    memset(r, 0, sizeof(*r));
    r->io = CLAIM_IO_OK;
    if (cfg == NULL || port == NULL || port->now_ms == NULL || port->http_get == NULL ||
        cfg->service_url == NULL || cfg->service_url[0] == '\0' || !claim_token_valid(cfg->token) ||
        claim_status_url_build(url, sizeof(url), cfg->service_url) < 0) {
        r->last = CLAIM_LAST_UNKNOWN;
        r->next = claim_decide(r->last, fallback_claim);
        if (port != NULL) {
            claim_say(port, CLAIM_LOG_INFO, "claim status: not asked (no service or no look-up); %s",
                      claim_next_str(r->next));
        }
        return r->next;
    }

    start = port->now_ms(port->ctx);
    timeout = cfg->http_timeout_ms;
    if (cfg->deadline_ms > 0u && cfg->deadline_ms < timeout) {
        timeout = cfg->deadline_ms;
    }
    if (timeout == 0u) {
        timeout = 1u;
    }
    headers[0].name = "X-Device-Token";
    headers[0].value = cfg->token;
    memset(&resp, 0, sizeof(resp));
    body[0] = '\0';
    r->asked = 1;
    r->io = port->http_get(port->ctx, url, headers, 1, body, sizeof(body), &body_len, timeout, &resp);
    if (body_len >= sizeof(body)) {
        body_len = sizeof(body) - 1u; /* a port must not claim more than it may store */
    }
    body[body_len] = '\0';
    r->http_status = r->io == CLAIM_IO_OK ? resp.status : 0;
    r->last = CLAIM_LAST_UNKNOWN;
    /* Only 200 tells: claimsvc answers a device without claims 200 with an
     * empty list, and 404 only for a route it does not have (a wrong base
     * path, a proxy): unknown, the old rule. */
    if (r->io == CLAIM_IO_OK && r->http_status == 200) {
        int found = claim_json_newest_status(body, body_len, status, sizeof(status));
        if (found == 0) {
            r->last = CLAIM_LAST_NONE;
        } else if (found == 1) {
            r->last = claim_last_from_str(status);
        }
    }
    memset(body, 0, sizeof(body)); /* the view holds no secret, but keep the stack clean */
    r->next = claim_decide(r->last, fallback_claim);
    r->elapsed_ms = claim_ms_left(start, port->now_ms(port->ctx));
    if (r->io != CLAIM_IO_OK) {
        claim_say(port, CLAIM_LOG_WARN, "claim status: service not answering (%s); %s",
                  claim_io_str(r->io), claim_next_str(r->next));
    } else {
        claim_say(port, CLAIM_LOG_INFO, "claim status: HTTP %d, newest claim %s; %s", r->http_status,
                  claim_last_str(r->last), claim_next_str(r->next));
    }
    return r->next;
}

const char *claim_last_str(claim_last_t last)
{
    size_t i;
    switch (last) {
    case CLAIM_LAST_UNKNOWN: return "unknown";
    case CLAIM_LAST_NONE: return "none";
    case CLAIM_LAST_OTHER: return "other";
    default: break;
    }
    for (i = 0; i < sizeof(known_statuses) / sizeof(known_statuses[0]); i++) {
        if (known_statuses[i].last == last) {
            return known_statuses[i].name;
        }
    }
    return "unknown";
}

const char *claim_next_str(claim_next_t next)
{
    switch (next) {
    case CLAIM_NEXT_CLAIM: return "claim";
    case CLAIM_NEXT_WAIT: return "wait";
    case CLAIM_NEXT_DONE: return "done";
    case CLAIM_NEXT_STOP: return "stop";
    }
    return "unknown";
}
