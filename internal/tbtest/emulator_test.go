package tbtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/tbemu"
)

// TestEmulator runs the suite against tbemu with a clock the scenarios can move, a data directory
// (so the restart scenario can restart it), IP blocking and a device rate limit switched on, and a
// smaller claim cache so the cache scenario stays quick.
func TestEmulator(t *testing.T) {
	t.Parallel()
	clock := tbemu.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := tbemu.DefaultConfig()
	cfg.MQTTAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Demo = true
	cfg.Clock = clock
	cfg.DataDir = t.TempDir()
	cfg.CacheSize = 100
	cfg.IPLimitsEnabled = true
	cfg.DeviceRateLimit = "20:60"

	var mu sync.Mutex
	emu, err := tbemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	current := func() *tbemu.Emulator {
		mu.Lock()
		defer mu.Unlock()
		return emu
	}
	t.Cleanup(func() { _ = current().Close() })
	// Emulator-only hook: Close, then Start again on the same addresses and data directory.
	restart := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		c := cfg
		c.MQTTAddr, c.HTTPAddr = emu.MQTTAddr(), strings.TrimPrefix(emu.HTTPURL(), "http://")
		if err := emu.Close(); err != nil {
			return err
		}
		next, err := tbemu.Start(context.Background(), c)
		if err != nil {
			return fmt.Errorf("start again: %w", err)
		}
		emu = next
		return nil
	}
	Run(t, Target{
		RESTURL:         emu.HTTPURL(),
		MQTTAddr:        emu.MQTTAddr(),
		DemoData:        true,
		AdvanceClock:    clock.Advance,
		Settle:          func(ctx context.Context) error { return current().Flush(ctx) },
		QuietFor:        300 * time.Millisecond, // the emulator answers synchronously
		Restart:         restart,
		ClaimCacheSize:  cfg.CacheSize,
		IPLimits:        &IPLimits{MaxWrongCredentials: tbemu.DefaultMaxWrongCredentialsPerIP, BlockTimeout: tbemu.DefaultIPBlockTimeout},
		DeviceRateLimit: cfg.DeviceRateLimit,
	})
}
