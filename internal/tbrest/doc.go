// Package tbrest is claimsvc's client for the parts of ThingsBoard's HTTP API that the `http` and
// `attribute` deliveries and the claim tracker need (docs/design.md §9).
//
// It talks to two surfaces of one ThingsBoard, both on its main HTTP port:
//
//   - the REST API, as a tenant administrator (docs/thingsboard.md §5): it finds a device by name
//     (GET /api/tenant/devices?deviceName=) or by id (GET /api/device/{id}) to see whether a
//     customer owns it; it writes and deletes the server-side claim data, the SERVER_SCOPE
//     attribute claimingData (docs/thingsboard.md §3.2); and GET /api/auth/user serves as a
//     readiness check;
//   - the HTTP device API, which needs no login: POST /api/v1/{token}/claim registers a claim in
//     the device's name (docs/thingsboard.md §1.3). It opens no device session (docs/thingsboard.md §9).
//
// # Authentication
//
// A Client authenticates with an API key, sent as "X-Authorization: ApiKey <key>" (ThingsBoard 4.3
// and later, docs/thingsboard.md §9), or with a user name and password: it logs in with
// POST /api/auth/login, sends "X-Authorization: Bearer <JWT>", refreshes the JWT with
// POST /api/auth/token shortly before the expiry written in it, and logs in again when the refresh
// fails or a call is answered 401. It logs in again at most once per call.
//
// # Limits and retries
//
// Each HTTP request is bounded by Config.Timeout, at most Config.MaxConcurrent are in flight, and
// answers are read up to 1 MiB. A request that got no answer (refused, timed out, cut) or a 5xx answer
// is retried up to Config.Retries times with exponential backoff and jitter; a 4xx answer never is.
// Everything stops when the caller's context ends. Redirects are never followed: ThingsBoard sends
// none, and following one could carry the X-Authorization header elsewhere.
//
// # Errors and secrets
//
// Failures are *Error values, with a Kind to decide on (IsUnreachable, IsUnauthorized,
// IsUnknownToken, errors.Is(err, ErrNotFound)). No error, log line or metric label carries a URL, a
// password, an API key, a JWT, a device token, a secret key or a body ThingsBoard answered with:
// net/http's errors quote the request URL, and the device API's URL holds the device token, so
// every transport error is stripped of it, and ThingsBoard's answer bodies (which may quote what was
// sent) are reduced to their numeric errorCode.
package tbrest
