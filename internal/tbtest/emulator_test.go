package tbtest

import (
	"context"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/tbemu"
)

// TestEmulator runs the suite against tbemu with a clock the scenarios can move.
func TestEmulator(t *testing.T) {
	t.Parallel()
	clock := tbemu.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := tbemu.DefaultConfig()
	cfg.MQTTAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Demo = true
	cfg.Clock = clock
	emu, err := tbemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	Run(t, Target{
		RESTURL:      emu.HTTPURL(),
		MQTTAddr:     emu.MQTTAddr(),
		DemoData:     true,
		AdvanceClock: clock.Advance,
		Settle:       emu.Flush,
	})
}
