package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// maxDeviceLocks is the most per-device advisory locks one intake transaction
// takes. PostgreSQL's lock table is shared by the whole server and sized for
// about max_locks_per_transaction (64) locks per connection, so a transaction
// for more devices than this takes the intake lock exclusively instead: it
// then runs alone, and needs no per-device locks.
const maxDeviceLocks = 64

// intakeLock is the (int4, int4) advisory lock every intake transaction
// holds: shared when it locks its devices one by one, exclusive when it has
// too many devices for that. The two-integer key space is distinct from the
// bigint one that deviceLock uses.
var intakeLock = [2]int32{0x636c6169, 0x6d696e74} // "claimint"

// lockDevice takes one device's intake locks inside tx, in the same
// discipline as an intake transaction (the shared intake lock, then the
// device's), so that a rule check outside intake (a retry) cannot interleave
// with an intake batch, even one holding the intake lock exclusively.
func lockDevice(ctx context.Context, tx pgx.Tx, tokenHash []byte) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1::int4, $2::int4)`, intakeLock[0], intakeLock[1]); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", deviceLock(tokenHash))
	return err
}

// deviceClaims reads, for each device hash in $1, its newest pending and its
// newest delivered claim: what the hold rule weighs (claim.Blocking). $2 is a
// claim to leave out (a retried claim), or NULL. One scan of
// claims_by_device_status (migration 0008), newest first per device.
const deviceClaims = `SELECT * FROM (
		SELECT DISTINCT ON (token_hash, status) token_hash, fingerprint, ` + claimColumns + ` FROM claims
		WHERE token_hash = ANY($1::bytea[]) AND status IN ('pending', 'delivered') AND id IS DISTINCT FROM $2
		ORDER BY token_hash, status, created_at DESC, id DESC) d
	ORDER BY token_hash, created_at DESC, id DESC`

// scanDeviceClaims collects deviceClaims' rows into priors per device (newest
// first) and the claims themselves by id.
func scanDeviceClaims(rows pgx.Rows, devices map[string][]claim.Prior, seen map[uuid.UUID]claim.Claim) error {
	for rows.Next() {
		var hash, fp []byte
		c, err := scanClaim(rows, &hash, &fp)
		if err != nil {
			return err
		}
		seen[c.ID] = c
		devices[string(hash)] = append(devices[string(hash)], priorOf(c, hash, fp))
	}
	return rows.Err()
}

// priorOf is claim c as the intake rules weigh it.
func priorOf(c claim.Claim, hash, fp []byte) claim.Prior {
	return claim.Prior{ID: c.ID, Status: c.Status, Delivery: c.Delivery, DeliveredAt: c.DeliveredAt,
		ExpiresAt: c.ExpiresAt, TokenHash: hash, Fingerprint: fp}
}

// item is one claim request inside an intake transaction.
type item struct {
	in    claim.Incoming
	actor string           // who asked (claim.WithActor), recorded on the accepted event; "" for the API
	res   claim.ItemResult // set once the transaction committed
}

func newItem(req claim.Request) (*item, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	return &item{in: claim.NewIncoming(req, id)}, nil
}

// createMany stores items in one transaction, applying the intake rules
// (claim.DecideIntake) to each in order. A nil error means the transaction
// committed and each item's res holds its outcome; an error means nothing was
// stored.
func (s *Store) createMany(ctx context.Context, items []*item, hold time.Duration) error {
	for range 3 {
		err := s.createTx(ctx, items, hold)
		// A key seen free and taken meanwhile by a request for another
		// device (other device locks), or a deadlock: run it again.
		if isUniqueViolation(err, "idempotency_keys_pkey") || isRetryable(err) {
			continue
		}
		if errors.Is(err, errCommitUnknown) {
			return &claim.Error{Code: claim.CodeUnavailable, Err: err, Message: "the database connection failed while committing; " +
				"the claim may have been stored. Sending the same request again is safe: it is answered with the stored claim"}
		}
		return dbErr("create claims", err)
	}
	// Nothing was stored; the other request holds the key now, so a retry
	// is answered by it (or refused, if it was a different request).
	return &claim.Error{Code: claim.CodeUnavailable, Message: "a concurrent request used the same Idempotency-Key; nothing was stored, try again"}
}

// errCommitUnknown marks a connection failure after COMMIT was sent: the
// transaction may or may not have committed.
var errCommitUnknown = errors.New("outcome of COMMIT unknown")

// createTx runs one intake transaction in two round trips: BEGIN, the locks
// and the reads the rules need pipelined in the first; the inserts and COMMIT
// in the second (the NOTIFY follows on its own: groupcommit.go). Between
// them, claim.DecideIntake decides. A
// statement that fails makes PostgreSQL skip the rest of its pipeline (COMMIT
// included), and the transaction is rolled back.
func (s *Store) createTx(ctx context.Context, items []*item, hold time.Duration) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection left inside a transaction is closed by the pool on
	// release; ROLLBACK first so that it can be reused.
	defer func() {
		if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
			_, _ = conn.Exec(ctx, "ROLLBACK")
		}
		conn.Release()
	}()
	var locks []int64
	var hashes [][]byte
	var idemKeys []string
	seenHash := make(map[string]bool, len(items))
	for _, it := range items {
		it.res = claim.ItemResult{}
		if h := it.in.TokenHash; !seenHash[string(h)] {
			seenHash[string(h)] = true
			hashes = append(hashes, h)
			locks = append(locks, deviceLock(h))
		}
		if k := it.in.Req.IdempotencyKey; k != "" {
			idemKeys = append(idemKeys, k)
		}
	}

	// One round trip: the locks, then what the rules need to know.
	view := claim.IntakeView{Hold: hold, Keys: map[string]claim.Prior{}, Devices: make(map[string][]claim.Prior, len(hashes))}
	known := map[uuid.UUID]claim.Claim{} // stored claims that may answer a request
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if len(locks) > maxDeviceLocks {
		b.Queue(`SELECT pg_advisory_xact_lock($1::int4, $2::int4)`, intakeLock[0], intakeLock[1])
	} else {
		slices.Sort(locks) // one order for everyone: no deadlocks
		b.Queue(`SELECT pg_advisory_xact_lock_shared($1::int4, $2::int4)`, intakeLock[0], intakeLock[1])
		b.Queue(`SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, i) ORDER BY i`, locks)
	}
	b.Queue(`SELECT now()`).QueryRow(func(row pgx.Row) error { return row.Scan(&view.Now) })
	if len(idemKeys) > 0 {
		b.Queue(`SELECT k.key, k.token_hash, k.fingerprint, c.* FROM idempotency_keys k
			CROSS JOIN LATERAL (SELECT `+claimColumns+` FROM claims WHERE id = k.claim_id) c
			WHERE k.key = ANY($1::text[])`,
			idemKeys).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var key string
				var hash, fp []byte
				c, err := scanClaim(rows, &key, &hash, &fp)
				if err != nil {
					return err
				}
				view.Keys[key], known[c.ID] = priorOf(c, hash, fp), c
			}
			return rows.Err()
		})
	}
	b.Queue(deviceClaims, hashes, nil).Query(func(rows pgx.Rows) error {
		return scanDeviceClaims(rows, view.Devices, known)
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}

	in := make([]claim.Incoming, len(items))
	for i, it := range items {
		in[i] = it.in
	}
	verdicts := claim.DecideIntake(in, view)

	var ins inserts
	var keys idemKeyRows
	var sup supersessions
	var actorIDs []uuid.UUID
	var actors []string
	for i, v := range verdicts {
		if v.Kind == claim.Insert {
			ins.add(s, items[i].in)
			if a := items[i].actor; a != "" {
				actorIDs, actors = append(actorIDs, items[i].in.NewID), append(actors, a)
			}
			for _, old := range v.Supersede {
				sup.add(old, v.Claim)
			}
		}
		if v.RecordKey {
			keys.add(items[i].in, v.Claim)
		}
	}
	if ins.n() == 0 && len(keys.key) == 0 {
		if _, err := conn.Exec(ctx, "COMMIT"); err != nil { // nothing to store: only replays and refusals
			return err
		}
		return answer(items, verdicts, known, nil)
	}

	// One more round trip: the new claims, their audit events and keys, the wake-up.
	created := make(map[uuid.UUID]claim.Claim, ins.n())
	b = &pgx.Batch{}
	if ins.n() > 0 {
		b.Queue(`WITH c AS (
				INSERT INTO claims (id, token_hash, token_hint, token, secret, has_secret, duration_ms, fingerprint,
				                    delivery, device_name, next_attempt_at)
				SELECT id, h, hint, tok, sec, has, dur, fp, dlv, nullif(dev, ''), now()
				FROM unnest($1::uuid[], $2::bytea[], $3::text[], $4::bytea[], $5::bytea[], $6::boolean[], $7::bigint[],
				            $8::bytea[], $9::text[], $10::text[]) AS t(id, h, hint, tok, sec, has, dur, fp, dlv, dev)
				RETURNING `+claimColumns+`),
			e AS (INSERT INTO claim_events (claim_id, kind) SELECT id, 'accepted' FROM c)
			SELECT * FROM c`,
			ins.id, ins.hash, ins.hint, ins.token, ins.secret, ins.hasSecret, ins.duration, ins.fp, ins.delivery, ins.device,
		).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				c, err := scanClaim(rows)
				if err != nil {
					return err
				}
				created[c.ID] = c
			}
			return rows.Err()
		})
	}
	if len(actorIDs) > 0 { // requests of a person through the console: the accepted events say who
		b.Queue(`UPDATE claim_events e SET actor = a.actor FROM unnest($1::uuid[], $2::text[]) AS a(id, actor)
			WHERE e.claim_id = a.id AND e.kind = 'accepted'`, actorIDs, actors)
	}
	if len(sup.old) > 0 {
		// After the inserts, so that a claim replaced by a later request of
		// this group is replaced too.
		b.Queue(`WITH s AS (
				SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS s(old, new)),
			c AS (
				UPDATE claims SET status = 'superseded', token = NULL, secret = NULL, next_attempt_at = NULL,
				       lease_owner = NULL, updated_at = now()
				FROM s WHERE claims.id = s.old AND claims.status IN ('pending', 'delivered')
				RETURNING claims.id, s.new, claims.lease_until)
			INSERT INTO claim_events (claim_id, kind, detail)
			SELECT id, 'superseded', 'replaced by the newer attribute claim ' || new FROM c`, sup.old, sup.new)
	}
	if len(keys.key) > 0 {
		b.Queue(`INSERT INTO idempotency_keys (key, claim_id, token_hash, fingerprint)
			SELECT * FROM unnest($1::text[], $2::uuid[], $3::bytea[], $4::bytea[])`,
			keys.key, keys.claim, keys.hash, keys.fp)
	}
	if len(sup.old) > 0 {
		// A replaced claim that a dispatcher is sending right now delays its
		// replacement until that lease ends, so the newer claimingData is
		// written last.
		b.Queue(`UPDATE claims SET next_attempt_at = greatest(now(), l.until) FROM (
				SELECT s.new, max(c.lease_until) AS until FROM unnest($1::uuid[], $2::uuid[]) AS s(old, new)
				JOIN claims c ON c.id = s.old WHERE c.lease_until > now() GROUP BY s.new) l
			WHERE claims.id = l.new`, sup.old, sup.new)
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) && ctx.Err() == nil {
			return fmt.Errorf("%w: %w", errCommitUnknown, err)
		}
		return err // a key we saw free and taken meanwhile fails the insert: run again
	}
	if len(created) != ins.n() { // cannot happen: the INSERT either inserts every row or fails
		return fmt.Errorf("inserted %d claims of %d", len(created), ins.n())
	}
	if ins.n() > 0 {
		s.group.committed() // wake the dispatchers (see groupcommit.go)
	}
	if len(sup.old) > 0 {
		s.superseded(len(sup.old))
	}
	for _, id := range sup.old { // replaced by a later request of this group
		if c, ok := created[id]; ok {
			c.Status, c.NextAttemptAt = claim.StatusSuperseded, nil
			created[id] = c
		}
	}
	return answer(items, verdicts, known, created)
}

// answer turns the verdicts into each item's result, with the claims read
// (known) and inserted (created) by the transaction.
func answer(items []*item, verdicts []claim.Verdict, known, created map[uuid.UUID]claim.Claim) error {
	for i, v := range verdicts {
		res := &items[i].res
		switch v.Kind {
		case claim.Refuse:
			res.Err = v.Err
		case claim.Insert:
			res.Claim = created[v.Claim]
		case claim.Replay:
			c, ok := known[v.Claim]
			if !ok {
				c, ok = created[v.Claim]
			}
			if !ok {
				return fmt.Errorf("replay of claim %s that the transaction did not read", v.Claim)
			}
			res.Accepted = claim.Accepted{Claim: c, Replayed: true}
		}
	}
	return nil
}

// idemKeyRows holds the Idempotency-Keys a transaction records, column by
// column, for one INSERT … unnest.
type idemKeyRows struct {
	key   []string
	claim []uuid.UUID
	hash  [][]byte
	fp    [][]byte
}

// add records in's key as answered by claim id.
func (k *idemKeyRows) add(in claim.Incoming, id uuid.UUID) {
	k.key = append(k.key, in.Req.IdempotencyKey)
	k.claim = append(k.claim, id)
	k.hash = append(k.hash, in.TokenHash)
	k.fp = append(k.fp, in.Fingerprint)
}

// supersessions pairs each replaced claim with its replacement.
type supersessions struct {
	old, new []uuid.UUID
}

func (s *supersessions) add(old, new uuid.UUID) {
	s.old, s.new = append(s.old, old), append(s.new, new)
}

// inserts holds the new claims column by column, for one INSERT … unnest.
type inserts struct {
	id        []uuid.UUID
	hash      [][]byte
	hint      []string
	token     [][]byte
	secret    [][]byte
	hasSecret []bool
	duration  []*int64
	fp        [][]byte
	delivery  []string
	device    []string
}

func (ins *inserts) n() int { return len(ins.id) }

func (ins *inserts) add(s *Store, in claim.Incoming) {
	id := in.NewID
	var secret []byte
	if in.Req.SecretKey != nil {
		secret = s.sealSecret(id, *in.Req.SecretKey)
	}
	ins.id = append(ins.id, id)
	ins.hash = append(ins.hash, in.TokenHash)
	ins.hint = append(ins.hint, claim.Hint(string(in.Req.Token)))
	ins.token = append(ins.token, s.sealToken(id, in.Req.Token))
	ins.secret = append(ins.secret, secret)
	ins.hasSecret = append(ins.hasSecret, in.Req.SecretKey != nil)
	ins.duration = append(ins.duration, in.Req.DurationMs)
	ins.fp = append(ins.fp, in.Fingerprint)
	d := in.Req.Delivery
	if d == "" {
		d = claim.DeliveryMQTT
	}
	ins.delivery = append(ins.delivery, string(d))
	ins.device = append(ins.device, in.Req.DeviceName)
}

// CreateBatch stores reqs in one transaction, applying the rules of Create to
// each in order (a later request sees the claims earlier ones created). The
// results are in the order of reqs; a request that breaks a rule fails alone
// (its ItemResult.Err). An error means nothing was stored.
func (s *Store) CreateBatch(ctx context.Context, reqs []claim.Request, hold time.Duration) ([]claim.ItemResult, error) {
	items := make([]*item, len(reqs))
	for i, r := range reqs {
		it, err := newItem(r)
		if err != nil {
			return nil, err
		}
		it.actor = claim.ActorFrom(ctx)
		items[i] = it
	}
	if err := s.createMany(ctx, items, hold); err != nil {
		return nil, err
	}
	out := make([]claim.ItemResult, len(items))
	for i, it := range items {
		out[i] = it.res
	}
	return out, nil
}
