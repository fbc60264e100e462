// Command flow is the README's API flow as an integrator writes it, on the
// Go clients generated from api/openapi.yaml: oapi-codegen's (package oapi)
// for the flow, ogen's (package ogen) to read the results back through a
// strict decoder. The generated packages are not in the repository: the test
// TestGeneratedClients (cmd/claimsvc) generates them next to this program in
// a temporary module and runs it against a real claimsvc.
//
// It claims a device and waits for the outcome (Prefer: wait), replays the
// claim (Idempotency-Key), reuses the key with another request (422), meets
// the hold rule (409), sends a batch as JSON and again as NDJSON (replays),
// and polls the batch's claims until they are delivered. Every step checks
// what the API promises; the first surprise ends it with exit status 1.
//
// Environment: CLAIMSVC_URL, CLAIMSVC_API_KEY.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/ogen-go/ogen/ogenerrors"

	"github.com/claimsvc/claimsvc/api/clienttest/oapi"
	"github.com/claimsvc/claimsvc/api/clienttest/ogen"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := run(ctx, os.Getenv("CLAIMSVC_URL"), os.Getenv("CLAIMSVC_API_KEY")); err != nil {
		fmt.Fprintln(os.Stderr, "flow:", err)
		os.Exit(1)
	}
}

func ptr[T any](v T) *T { return &v }

// step prints one line of what happened, for the test and for people.
func step(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func run(ctx context.Context, base, key string) error {
	withKey := oapi.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+key)
		return nil
	})
	c, err := oapi.NewClientWithResponses(base, withKey)
	if err != nil {
		return err
	}

	// 1. Claim, and wait up to 5 s for the outcome: an attribute claim for 7 days.
	body := oapi.CreateClaimJSONRequestBody{SecretKey: ptr("flow-secret"), DurationMs: ptr(int64(7 * 24 * 3600 * 1000)),
		Delivery: ptr(oapi.Attribute), DeviceName: ptr("DHT11 Demo Device")}
	params := &oapi.CreateClaimParams{XDeviceToken: "DHT11_DEMO_TOKEN", IdempotencyKey: ptr("flow-dht11-1"), Prefer: ptr("wait=5")}
	created, err := c.CreateClaimWithResponse(ctx, params, body)
	if err != nil {
		return err
	}
	if created.JSON200 == nil || created.JSON200.Status != oapi.StatusDelivered {
		return fmt.Errorf("claim: want 200 delivered, got %d %s", created.StatusCode(), created.Body)
	}
	first := created.JSON200
	h := created.Headers200
	if h == nil || h.Location == nil || *h.Location != "/claims/"+first.Id.String() || h.PreferenceApplied == nil || h.XRatelimitRemaining == nil {
		return fmt.Errorf("claim: headers %v", created.HTTPResponse.Header)
	}
	step("claim: %d %s %s (Preference-Applied %s, X-Ratelimit-Remaining %d)", created.StatusCode(), first.Status, first.Id,
		*h.PreferenceApplied, *h.XRatelimitRemaining)

	// 2. The same request with the same key: a replay of the same claim.
	replay, err := c.CreateClaimWithResponse(ctx, params, body)
	if err != nil {
		return err
	}
	if replay.JSON200 == nil || replay.JSON200.Id != first.Id || replay.Headers200 == nil || replay.Headers200.IdempotentReplayed == nil {
		return fmt.Errorf("replay: want 200 Idempotent-Replayed with claim %s, got %d %s", first.Id, replay.StatusCode(), replay.Body)
	}
	step("replay: %d Idempotent-Replayed=%s %s", replay.StatusCode(), *replay.Headers200.IdempotentReplayed, replay.JSON200.Id)

	// 3. The key again with another secret: refused, naming the claim the key made.
	other := body
	other.SecretKey = ptr("another-secret")
	reused, err := c.CreateClaimWithResponse(ctx, params, other)
	if err != nil {
		return err
	}
	if p := reused.ApplicationproblemJSON422; p == nil || p.Type != "urn:claimsvc:problem:idempotency-key-reused" ||
		p.OriginalClaimId == nil || *p.OriginalClaimId != first.Id {
		return fmt.Errorf("key reused: want 422 idempotency-key-reused naming %s, got %d %s", first.Id, reused.StatusCode(), reused.Body)
	}
	step("key reused: %d %s originalClaimId=%s", reused.StatusCode(), reused.ApplicationproblemJSON422.Type, *reused.ApplicationproblemJSON422.OriginalClaimId)

	// 4. A different device-side claim while the attribute claim is live: the hold rule.
	conflict, err := c.CreateClaimWithResponse(ctx, &oapi.CreateClaimParams{XDeviceToken: "DHT11_DEMO_TOKEN"}, oapi.CreateClaimJSONRequestBody{SecretKey: ptr("x")})
	if err != nil {
		return err
	}
	if p := conflict.ApplicationproblemJSON409; p == nil || p.BlockingClaimId == nil || *p.BlockingClaimId != first.Id {
		return fmt.Errorf("hold rule: want 409 naming %s, got %d %s", first.Id, conflict.StatusCode(), conflict.Body)
	}
	step("hold rule: %d blockingClaimId=%s", conflict.StatusCode(), *conflict.ApplicationproblemJSON409.BlockingClaimId)

	// 5. A batch (JSON), every item with its own key.
	items := oapi.CreateClaimBatchJSONRequestBody{
		{Token: "T1_TEST_TOKEN", SecretKey: ptr("t1-secret"), DeviceName: ptr("Thermostat T1"), IdempotencyKey: ptr("flow-t1")},
		{Token: "T2_TEST_TOKEN", SecretKey: ptr("t2-secret"), DeviceName: ptr("Thermostat T2"), IdempotencyKey: ptr("flow-t2")},
	}
	batch, err := c.CreateClaimBatchWithResponse(ctx, nil, items)
	if err != nil {
		return err
	}
	if batch.JSON200 == nil || batch.JSON200.Created != 2 || len(batch.JSON200.Results) != 2 {
		return fmt.Errorf("batch: want 2 created, got %d %s", batch.StatusCode(), batch.Body)
	}
	ids := make([]oapi.ClaimID, 0, 2)
	for _, r := range batch.JSON200.Results {
		if r.HttpStatus != http.StatusAccepted || r.Claim == nil {
			return fmt.Errorf("batch item %d: %d %+v", r.Index, r.HttpStatus, r.Problem)
		}
		ids = append(ids, r.Claim.Id)
	}
	step("batch: %d created=%d replayed=%d failed=%d", batch.StatusCode(), batch.JSON200.Created, batch.JSON200.Replayed, batch.JSON200.Failed)

	// 6. The same batch again, as NDJSON: every claim comes back as a replay.
	var nd bytes.Buffer
	for _, it := range items {
		line, err := json.Marshal(it)
		if err != nil {
			return err
		}
		nd.Write(append(line, '\n'))
	}
	again, err := c.CreateClaimBatchWithBodyWithResponse(ctx, nil, "application/x-ndjson", &nd)
	if err != nil {
		return err
	}
	if again.JSON200 == nil || again.JSON200.Replayed != 2 {
		return fmt.Errorf("batch again: want 2 replayed, got %d %s", again.StatusCode(), again.Body)
	}
	for i, r := range again.JSON200.Results {
		if r.HttpStatus != http.StatusOK || r.Replayed == nil || !*r.Replayed || r.Claim.Id != ids[i] {
			return fmt.Errorf("batch again, item %d: %+v", i, r)
		}
	}
	step("batch again (NDJSON): %d created=%d replayed=%d", again.StatusCode(), again.JSON200.Created, again.JSON200.Replayed)

	// 7. Wait for the batch's claims by polling them.
	for _, id := range ids {
		for {
			got, err := c.GetClaimWithResponse(ctx, id)
			if err != nil {
				return err
			}
			if got.JSON200 == nil {
				return fmt.Errorf("poll %s: %d %s", id, got.StatusCode(), got.Body)
			}
			if got.JSON200.Status != oapi.StatusPending {
				if got.JSON200.Status != oapi.StatusDelivered {
					return fmt.Errorf("poll %s: %s", id, got.JSON200.Status)
				}
				step("polled: %s %s", id, got.JSON200.Status)
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("poll %s: still pending: %w", id, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}

	// 8. The same claims through ogen's client, whose decoder checks every field.
	oc, err := ogen.NewClient(base, bearer(key))
	if err != nil {
		return err
	}
	for _, id := range append([]oapi.ClaimID{first.Id}, ids...) {
		res, err := oc.GetClaim(ctx, ogen.GetClaimParams{ID: id})
		if err != nil {
			return fmt.Errorf("ogen: get %s: %w", id, err)
		}
		got, ok := res.(*ogen.ClaimHeaders)
		if !ok || got.Response.ID != id {
			return fmt.Errorf("ogen: get %s: %T %+v", id, res, res)
		}
		step("ogen: %s %s", got.Response.ID, got.Response.Status)
	}
	res, err := oc.CreateClaim(ctx, ogen.NewOptClaimRequest(ogen.ClaimRequest{SecretKey: ogen.NewOptSecretKey("x")}),
		ogen.CreateClaimParams{XDeviceToken: "DHT11_DEMO_TOKEN"})
	if err != nil {
		return fmt.Errorf("ogen: hold rule: %w", err)
	}
	hc, ok := res.(*ogen.HoldConflictHeaders)
	if !ok || hc.Response.BlockingClaimId.Value != first.Id {
		return fmt.Errorf("ogen: hold rule: %T %+v", res, res)
	}
	step("ogen: hold rule %d %s", hc.Response.Status, hc.Response.Type)
	return nil
}

// bearer gives ogen's client the API key as a bearer token, and no X-Api-Key.
type bearer string

func (b bearer) Bearer(context.Context, ogen.OperationName) (ogen.Bearer, error) {
	return ogen.Bearer{Token: string(b)}, nil
}

func (bearer) ApiKey(context.Context, ogen.OperationName) (ogen.ApiKey, error) {
	return ogen.ApiKey{}, ogenerrors.ErrSkipClientSecurity
}
