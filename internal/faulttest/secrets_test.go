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

	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/pgtest"
)

// TestSecretsAtRest posts claims through the whole service (both claim
// routes and the batch route) while the broker is unreachable, so tokens and
// secrets stay stored, then reads the tables directly: with a data key, no
// token or secret is in them in clear (nor hex-encoded), nor in the logs.
// Without a key the same check finds them, which shows the check can see.
func TestSecretsAtRest(t *testing.T) {
	t.Parallel()
	for _, encrypted := range []bool{true, false} {
		t.Run(fmt.Sprintf("data key %t", encrypted), func(t *testing.T) {
			dbURL := pgtest.NewDatabase(t)
			env := baseEnv(dbURL, "tcp://"+freeAddr(t)) // nothing listens: claims stay pending
			if encrypted {
				key := make([]byte, 32)
				_, _ = rand.Read(key)
				env["CLAIMSVC_DATA_KEY"] = base64.StdEncoding.EncodeToString(key)
			}
			svc := startService(t, env)
			var plain []string
			post := func(path, token, body string, header map[string]string) {
				req, _ := http.NewRequest("POST", svc.url()+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
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
			for _, q := range []string{
				`SELECT coalesce(token, ''::bytea), coalesce(secret, ''::bytea), row_to_json(c)::text FROM claims c`,
				`SELECT ''::bytea, ''::bytea, row_to_json(e)::text FROM claim_events e`,
			} {
				rows, err := conn.Query(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var tok, sec []byte
					var js string
					if err := rows.Scan(&tok, &sec, &js); err != nil {
						t.Fatal(err)
					}
					dump.Write(tok)
					dump.Write(sec)
					dump.WriteString(js)
				}
				rows.Close()
			}
			found := 0
			for _, p := range plain {
				if bytes.Contains(dump.Bytes(), []byte(p)) || bytes.Contains(dump.Bytes(), []byte(hex.EncodeToString([]byte(p)))) {
					found++
				}
			}
			t.Logf("figures: encrypted=%t values=%d found_in_clear=%d", encrypted, len(plain), found)
			if encrypted && found > 0 {
				t.Errorf("%d of %d tokens and secrets readable in the tables despite the data key", found, len(plain))
			}
			if !encrypted && found != len(plain) {
				t.Errorf("without a data key only %d of %d values were found: the check is blind", found, len(plain))
			}
			svc.stop()
			if logs := svc.out.String(); strings.Contains(logs, "ATREST_TOKEN") || strings.Contains(logs, "atrest-secret") {
				t.Errorf("a token or secret reached the logs:\n%s", tail(logs, 2000))
			}
		})
	}
}
