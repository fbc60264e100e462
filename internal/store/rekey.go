package store

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// RekeyResult is what Rekey did.
type RekeyResult struct {
	Resealed int         // claims sealed again with the current key
	Changed  int         // claims that changed meanwhile (sent, cancelled): nothing to do
	Unopened []uuid.UUID // claims that do not open with the keyring: left as they are
}

// rekeyPage is how many claims one round trip of Rekey reads and writes.
const rekeyPage = 500

// Rekey seals every stored token and secret that is not sealed with the
// current key in the current format again: values sealed with an older key
// of the keyring, without a key, in plain text, or in the v1 format (whose
// token and secret could be swapped). Afterwards the older keys can leave
// the keyring. It runs beside serving replicas: each row is rewritten only
// if it still holds what was read (a claim sent or cancelled meanwhile is
// left alone). A claim that does not open (tampered with, or sealed with a
// key that is not in the keyring) is reported in Unopened and left as it is;
// the others are done anyway.
func (s *Store) Rekey(ctx context.Context) (RekeyResult, error) {
	var res RekeyResult
	opener := s.sealer.WithLegacy()
	prefix := s.sealer.CurrentPrefix()
	after := uuid.Nil
	for {
		got, err := s.querySealed(ctx, "rekey", `SELECT id, token, secret FROM claims
			WHERE id > $3 AND ((token IS NOT NULL AND substring(token FROM 1 FOR $2) <> $1)
			                OR (secret IS NOT NULL AND substring(secret FROM 1 FOR $2) <> $1))
			ORDER BY id LIMIT $4`, prefix, len(prefix), after, rekeyPage)
		if err != nil {
			return res, err
		}
		if len(got) == 0 {
			return res, nil
		}
		b := &pgx.Batch{}
		for _, x := range got {
			after = x.id
			tok, sec, err := openLegacy(opener, x.id, x.token, x.secret)
			if err != nil {
				res.Unopened = append(res.Unopened, x.id)
				continue
			}
			var newTok, newSec []byte
			if tok != nil {
				newTok = s.sealer.Seal(tok, x.id[:], colToken)
			}
			if sec != nil {
				newSec = s.sealer.Seal(sec, x.id[:], colSecret)
			}
			b.Queue(`UPDATE claims SET token = $2, secret = $3
				WHERE id = $1 AND token IS NOT DISTINCT FROM $4 AND secret IS NOT DISTINCT FROM $5`,
				x.id, newTok, newSec, x.token, x.secret).Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() == 1 {
					res.Resealed++
				} else {
					res.Changed++
				}
				return nil
			})
		}
		if b.Len() > 0 {
			if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
				return res, dbErr("rekey", err)
			}
		}
	}
}

// openLegacy opens a row's values in any format the legacy view accepts;
// either may be nil (absent).
func openLegacy(opener interface {
	Open(sealed, owner []byte, column string) ([]byte, error)
}, id uuid.UUID, token, secret []byte) (tok, sec []byte, err error) {
	if token != nil {
		if tok, err = opener.Open(token, id[:], colToken); err != nil {
			return nil, nil, err
		}
		if tok == nil {
			tok = []byte{}
		}
	}
	if secret != nil {
		if sec, err = opener.Open(secret, id[:], colSecret); err != nil {
			return nil, nil, err
		}
		if sec == nil {
			sec = []byte{}
		}
	}
	if token == nil && secret == nil {
		return nil, nil, errors.New("nothing to open")
	}
	return tok, sec, nil
}
