package store

import (
	"bytes"
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

// Result is the outcome of one request of a batch: the claim stored or
// replayed, or Err (a *claim.Error: conflict or Idempotency-Key reuse) for
// this request alone.
type Result struct {
	Created
	Err error
}

// item is one claim request inside an intake transaction.
type item struct {
	req  claim.Request
	hash []byte // token hash
	fp   []byte // fingerprint

	// Decided in the transaction; reset when it is run again.
	res      Result
	newID    uuid.UUID // this request inserts a claim with this id
	replayOf int       // ≥ 0: answered by the claim that items[replayOf] inserts
}

func newItem(req claim.Request) *item {
	return &item{req: req, hash: req.Token.Hash(), fp: req.Fingerprint(), replayOf: -1}
}

// ref is a claim that answers or blocks a later request of the same batch:
// either one already in the database or one this transaction inserts.
type ref struct {
	claim   claim.Claim // from the database (newItem < 0)
	newItem int         // index of the item that inserts it, or -1
	hash    []byte
	fp      []byte
	status  claim.Status
}

// createMany stores items in one transaction, applying docs/design.md §2's rules to
// each in order, as if they had arrived one after another: a later request
// sees the claims that earlier ones of the same batch created. A nil error
// means the transaction committed and each item's res holds its outcome; an
// error means nothing was stored.
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
// and the lookups pipelined in the first; the inserts, NOTIFY and COMMIT in
// the second. A statement that fails makes PostgreSQL skip the rest of its
// pipeline (COMMIT included), and the transaction is rolled back.
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
	var keys []int64
	var hashes [][]byte
	var idemKeys []string
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		it.res, it.newID, it.replayOf = Result{}, uuid.Nil, -1
		if !seen[string(it.hash)] {
			seen[string(it.hash)] = true
			hashes = append(hashes, it.hash)
			keys = append(keys, deviceLock(it.hash))
		}
		if it.req.IdempotencyKey != "" {
			idemKeys = append(idemKeys, it.req.IdempotencyKey)
		}
	}

	// One round trip: locks, then what the rules need to know.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if len(keys) > maxDeviceLocks {
		b.Queue(`SELECT pg_advisory_xact_lock($1::int4, $2::int4)`, intakeLock[0], intakeLock[1])
	} else {
		slices.Sort(keys) // one order for everyone: no deadlocks
		b.Queue(`SELECT pg_advisory_xact_lock_shared($1::int4, $2::int4)`, intakeLock[0], intakeLock[1])
		b.Queue(`SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, i) ORDER BY i`, keys)
	}
	known := map[string]ref{} // Idempotency-Key → its claim
	if len(idemKeys) > 0 {
		b.Queue(`SELECT k.key, k.token_hash, k.fingerprint, c.* FROM idempotency_keys k
			CROSS JOIN LATERAL (SELECT `+claimColumns+` FROM claims WHERE id = k.claim_id) c
			WHERE k.key = ANY($1::text[])`,
			idemKeys).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var key string
				r := ref{newItem: -1}
				c, err := scanClaim(rows, &key, &r.hash, &r.fp)
				if err != nil {
					return err
				}
				r.claim, r.status = c, c.Status
				known[key] = r
			}
			return rows.Err()
		})
	}
	latest := make(map[string]ref, len(hashes)) // device → its newest pending or held claim
	b.Queue(`SELECT t.h, c.* FROM unnest($1::bytea[]) AS t(h)
		CROSS JOIN LATERAL (
			SELECT fingerprint, `+claimColumns+` FROM claims
			WHERE token_hash = t.h
			  AND (status = 'pending' OR (status = 'delivered' AND delivered_at > now() - $2::interval))
			ORDER BY created_at DESC, id DESC LIMIT 1) c`, hashes, hold).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			r := ref{newItem: -1}
			c, err := scanClaim(rows, &r.hash, &r.fp)
			if err != nil {
				return err
			}
			r.claim, r.status = c, c.Status
			latest[string(r.hash)] = r
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}

	// The rules, request by request.
	var ins inserts
	var answered idemKeyRows // Idempotency-Keys answered in this transaction, new claim or replay
	for i, it := range items {
		key := it.req.IdempotencyKey
		if r, ok := known[key]; key != "" && ok {
			if !bytes.Equal(r.hash, it.hash) || !bytes.Equal(r.fp, it.fp) {
				it.res.Err = &claim.Error{Code: claim.CodeIdemReuse, Message: "this Idempotency-Key was already used with a different request"}
				continue
			}
			it.answer(r)
			continue
		}
		if r, ok := latest[string(it.hash)]; ok {
			if bytes.Equal(r.fp, it.fp) {
				it.answer(r)
				if key != "" { // the key now belongs to the replayed claim
					answered.add(key, r, items, it)
					known[key] = r
				}
				continue
			}
			if !it.req.Force {
				id := r.id(items)
				msg := "a different claim for this device is pending"
				if r.status == claim.StatusDelivered {
					msg = "a different claim for this device was delivered within the hold window; ThingsBoard would silently ignore a new one until it is used or expires"
				}
				it.res.Err = &claim.Error{Code: claim.CodeConflict, Message: msg + " (use ?force=true to send anyway)", Blocking: &id}
				continue
			}
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		it.newID = id
		ins.add(s, it)
		r := ref{newItem: i, hash: it.hash, fp: it.fp, status: claim.StatusPending}
		latest[string(it.hash)] = r
		if key != "" {
			answered.add(key, r, items, it)
			known[key] = r
		}
	}
	if ins.n() == 0 && len(answered.key) == 0 {
		_, err := conn.Exec(ctx, "COMMIT") // nothing to store: only replays and refusals
		return err
	}

	// One more round trip: the new claims, their audit events and keys, the wake-up.
	created := make(map[uuid.UUID]claim.Claim, ins.n())
	b = &pgx.Batch{}
	if ins.n() > 0 {
		b.Queue(`WITH c AS (
				INSERT INTO claims (id, token_hash, token_hint, token, secret, has_secret, duration_ms, fingerprint, next_attempt_at)
				SELECT id, h, hint, tok, sec, has, dur, fp, now()
				FROM unnest($1::uuid[], $2::bytea[], $3::text[], $4::bytea[], $5::bytea[], $6::boolean[], $7::bigint[],
				            $8::bytea[]) AS t(id, h, hint, tok, sec, has, dur, fp)
				RETURNING `+claimColumns+`),
			e AS (INSERT INTO claim_events (claim_id, kind) SELECT id, 'accepted' FROM c)
			SELECT * FROM c`,
			ins.id, ins.hash, ins.hint, ins.token, ins.secret, ins.hasSecret, ins.duration, ins.fp,
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
	if len(answered.key) > 0 {
		b.Queue(`INSERT INTO idempotency_keys (key, claim_id, token_hash, fingerprint)
			SELECT * FROM unnest($1::text[], $2::uuid[], $3::bytea[], $4::bytea[])`,
			answered.key, answered.claim, answered.hash, answered.fp)
	}
	if ins.n() > 0 {
		b.Queue(`SELECT pg_notify($1, '')`, NotifyChannel)
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
	for _, it := range items {
		switch {
		case it.newID != uuid.Nil:
			it.res.Claim = created[it.newID]
		case it.replayOf >= 0:
			it.res = Result{Created: Created{Claim: created[items[it.replayOf].newID], Replayed: true}}
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

// add records key as answered by r (a stored claim, or one this transaction
// inserts) for request it.
func (k *idemKeyRows) add(key string, r ref, items []*item, it *item) {
	k.key = append(k.key, key)
	k.claim = append(k.claim, r.id(items))
	k.hash = append(k.hash, it.hash)
	k.fp = append(k.fp, it.fp)
}

// answer makes r (an earlier claim) the replayed answer to it.
func (it *item) answer(r ref) {
	if r.newItem >= 0 {
		it.replayOf = r.newItem
		return
	}
	it.res = Result{Created: Created{Claim: r.claim, Replayed: true}}
}

// id is the claim's id, whether stored already or being inserted.
func (r ref) id(items []*item) uuid.UUID {
	if r.newItem >= 0 {
		return items[r.newItem].newID
	}
	return r.claim.ID
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
}

func (ins *inserts) n() int { return len(ins.id) }

func (ins *inserts) add(s *Store, it *item) {
	id := it.newID
	var secret []byte
	if it.req.SecretKey != nil {
		secret = s.sealer.Seal([]byte(*it.req.SecretKey), id[:])
	}
	ins.id = append(ins.id, id)
	ins.hash = append(ins.hash, it.hash)
	ins.hint = append(ins.hint, claim.Hint(string(it.req.Token)))
	ins.token = append(ins.token, s.sealer.Seal([]byte(it.req.Token), id[:]))
	ins.secret = append(ins.secret, secret)
	ins.hasSecret = append(ins.hasSecret, it.req.SecretKey != nil)
	ins.duration = append(ins.duration, it.req.DurationMs)
	ins.fp = append(ins.fp, it.fp)
}

// CreateBatch stores reqs in one transaction, applying the rules of Create to
// each in order (a later request sees the claims earlier ones created). The
// results are in the order of reqs; a request that breaks a rule fails alone
// (its Result.Err). An error means nothing was stored.
func (s *Store) CreateBatch(ctx context.Context, reqs []claim.Request, hold time.Duration) ([]Result, error) {
	items := make([]*item, len(reqs))
	for i, r := range reqs {
		items[i] = newItem(r)
	}
	if err := s.createMany(ctx, items, hold); err != nil {
		return nil, err
	}
	out := make([]Result, len(items))
	for i, it := range items {
		out[i] = it.res
	}
	return out, nil
}
