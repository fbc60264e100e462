package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/store"
)

// BenchmarkCreate measures Create alone (no HTTP) at several concurrencies:
// go test -run '^$' -bench Create -benchtime 3000x ./internal/store
func BenchmarkCreate(b *testing.B) {
	for _, g := range []store.GroupCommit{{Committers: 1}, {Committers: 2}, {Committers: 4}} {
		for _, clients := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("committers=%d/clients=%d", g.Committers, clients), func(b *testing.B) {
				s, err := store.Open(b.Context(), pgtest.NewDatabase(b), 20, nil, store.WithGroupCommit(g))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if _, err := s.Migrate(b.Context()); err != nil {
					b.Fatal(err)
				}
				var next atomic.Int64
				b.ResetTimer()
				var wg sync.WaitGroup
				for range clients {
					wg.Go(func() {
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							if _, err := s.Create(b.Context(), req(fmt.Sprintf("BENCH_TOKEN_%08d", i), "s", 60000), hold); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
			})
		}
	}
}
