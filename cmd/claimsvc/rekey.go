package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/claimsvc/claimsvc/internal/config"
	"github.com/claimsvc/claimsvc/internal/seal"
)

// rekey seals every stored token and secret again with the keyring's first
// key (docs/security.md §5). It runs beside serving replicas.
func rekey(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	if len(cfg.DataKeys) == 0 {
		return errors.New("rekey needs a keyring: CLAIMSVC_DATA_KEYS (or _FILE) with the new key first and the old ones after it, " +
			"or CLAIMSVC_DATA_KEY to seal values stored without a key or in plain text")
	}
	sealer, err := seal.New(cfg.DataKeys)
	if err != nil {
		return err
	}
	cfg.Migrate = false
	st, err := openStore(ctx, cfg, log, sealer)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := st.Rekey(ctx)
	if err != nil {
		return err
	}
	log.Info("rekey finished", "resealed", res.Resealed, "changed_meanwhile", res.Changed, "not_opened", len(res.Unopened))
	fmt.Fprintf(stdout, "rekey: %d claims sealed again with the first key; %d changed meanwhile (nothing to do)\n", res.Resealed, res.Changed)
	if len(res.Unopened) > 0 {
		return fmt.Errorf("rekey: %d claims do not open with this keyring (tampered with, or sealed with a key that is not in it) "+
			"and were left as they are; every other claim was done: %v", len(res.Unopened), res.Unopened)
	}
	return nil
}
