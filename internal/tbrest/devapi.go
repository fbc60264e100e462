package tbrest

import (
	"context"
	"net/http"
	"net/url"
)

// ClaimAsDevice registers a claim as the device itself would, through the HTTP device API
// POST /api/v1/{token}/claim (docs/thingsboard.md §1.3), with payload as the body (e.g.
// {"secretKey":"…","durationMs":60000}; nil sends none, which ThingsBoard reads as the defaults).
// No login is needed, and the keep-alive connections are shared with the REST calls.
//
// nil means ThingsBoard queued the claim (200): it does not say whether the registration was
// stored (docs/thingsboard.md §3.1). A 401 is an error for which IsUnknownToken is true. No answer
// at all is KindUnreachable: ThingsBoard may have queued the claim, and sending it again is harmless
// because a registration never replaces one already cached. Any other answer is KindClient or
// KindServer; ThingsBoard's 500 body, which may quote the payload, is never kept.
func (c *Client) ClaimAsDevice(ctx context.Context, token string, payload []byte) error {
	if token == "" || token == "." || token == ".." {
		return invalid(OpDeviceClaim, "not a device token")
	}
	if payload == nil {
		payload = []byte{} // still sent as application/json, with no body
	}
	_, err := c.do(ctx, request{op: OpDeviceClaim, method: http.MethodPost,
		path: "/api/v1/" + url.PathEscape(token) + "/claim", body: payload, device: true,
		secrets: []string{token, url.PathEscape(token), string(payload)}})
	return err
}
