package faulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/seal"
)

// TestSecretsAtRest posts claims through the whole service (both claim
// routes and the batch route) while the broker is unreachable, so tokens and
// secrets stay stored, then reads the tables directly: no token or secret is
// in them in clear (nor hex-encoded), nor in the logs. That holds with a data
// key and without one (the opt-out seals with a published key, so that no row,
// and no constraint violation's DETAIL, ever prints a token). Opening every
// stored value with the keyring gives back exactly what was posted: the check
// sees the values it looks for.
func TestSecretsAtRest(t *testing.T) {
	t.Parallel()
	for _, encrypted := range []bool{true, false} {
		t.Run(fmt.Sprintf("data key %t", encrypted), func(t *testing.T) {
			dbURL := pgtest.NewDatabase(t)
			env := baseEnv(dbURL, "tcp://"+freeAddr(t)) // nothing listens: claims stay pending
			var keys [][]byte
			if encrypted {
				key := make([]byte, 32)
				_, _ = rand.Read(key)
				env["CLAIMSVC_DATA_KEY"] = base64.StdEncoding.EncodeToString(key)
				keys = append(keys, key)
			} else {
				env["CLAIMSVC_DATA_KEY"], env["CLAIMSVC_INSECURE_NO_DATA_KEY"] = "", "true"
			}
			sealer, err := seal.New(keys)
			if err != nil {
				t.Fatal(err)
			}
			svc := startService(t, env)
			var plain []string
			post := func(path, token, body string, header map[string]string) {
				req, _ := http.NewRequest("POST", svc.url()+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+apiKey)
				for k, v := range header {
					req.Header.Set(k, v)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode/100 != 2 {
					t.Fatalf("%s: %d", path, res.StatusCode)
				}
			}
			for i := range 5 {
				tok, sec := fmt.Sprintf("ATREST_TOKEN_%d_PATHFORM", i), fmt.Sprintf("atrest-secret-%d-path", i)
				post("/devices/"+tok+"/claim", tok, `{"secretKey":"`+sec+`"}`, nil)
				tok2, sec2 := fmt.Sprintf("ATREST_TOKEN_%d_HEADER", i), fmt.Sprintf("atrest-secret-%d-header", i)
				post("/devices/claim", tok2, `{"secretKey":"`+sec2+`"}`, map[string]string{"X-Device-Token": tok2})
				plain = append(plain, tok, sec, tok2, sec2)
			}
			var items []string
			for i := range 3 {
				tok, sec := fmt.Sprintf("ATREST_TOKEN_%d_BATCH", i), fmt.Sprintf("atrest-secret-%d-batch", i)
				items = append(items, `{"token":"`+tok+`","secretKey":"`+sec+`"}`)
				plain = append(plain, tok, sec)
			}
			post("/claims:batch", "", "["+strings.Join(items, ",")+"]", nil)

			conn, err := pgx.Connect(t.Context(), dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var dump bytes.Buffer
			opened := map[string]bool{}
			for _, q := range []string{
				`SELECT id, token, secret, row_to_json(c)::text FROM claims c`,
				`SELECT claim_id, NULL::bytea, NULL::bytea, row_to_json(e)::text FROM claim_events e`,
				`SELECT claim_id, NULL::bytea, NULL::bytea, row_to_json(k)::text FROM idempotency_keys k`,
			} {
				rows, err := conn.Query(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var id uuid.UUID
					var tok, sec []byte
					var js string
					if err := rows.Scan(&id, &tok, &sec, &js); err != nil {
						t.Fatal(err)
					}
					dump.Write(tok)
					dump.Write(sec)
					dump.WriteString(js)
					for col, v := range map[string][]byte{"token": tok, "secret": sec} {
						if v == nil {
							continue
						}
						p, err := sealer.Open(v, id[:], col)
						if err != nil {
							t.Fatalf("claim %s: %s does not open with the service's keyring: %v", id, col, err)
						}
						opened[string(p)] = true
					}
				}
				rows.Close()
			}
			found, seen := 0, 0
			for _, p := range plain {
				if bytes.Contains(dump.Bytes(), []byte(p)) || bytes.Contains(dump.Bytes(), []byte(hex.EncodeToString([]byte(p)))) {
					found++
				}
				if opened[p] {
					seen++
				}
			}
			t.Logf("figures: encrypted=%t values=%d found_in_clear=%d opened_with_keyring=%d", encrypted, len(plain), found, seen)
			if found > 0 {
				t.Errorf("%d of %d tokens and secrets readable in the tables (encrypted=%t)", found, len(plain), encrypted)
			}
			if seen != len(plain) {
				t.Errorf("only %d of %d values were found by opening the stored ones: the check is blind", seen, len(plain))
			}
			svc.stop()
			if logs := svc.out.String(); strings.Contains(logs, "ATREST_TOKEN") || strings.Contains(logs, "atrest-secret") {
				t.Errorf("a token or secret reached the logs:\n%s", tail(logs, 2000))
			}
		})
	}
}
