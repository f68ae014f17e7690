package inventorysync_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
)

// BenchmarkApplyStockEvents measures how many warehouse stock events inventory-sync applies per
// second: batches of 500 records (90% adjustments, 10% snapshots, from 4 warehouses) through the
// whole handler, as the consumer calls it: decode and schema validation, one Postgres
// transaction, one Redis pipeline. "spread" spreads them over 1,000 SKUs, "hot" puts them all on
// 10 SKUs (a flash sale's restock). Building the records is part of the loop (about 1 µs each).
func BenchmarkApplyStockEvents(b *testing.B) {
	for _, bc := range []struct {
		name string
		skus int
	}{{"spread", 1000}, {"hot", 10}} {
		b.Run(bc.name, func(b *testing.B) {
			skus := make([]string, bc.skus)
			stock := map[string]int64{}
			for i := range skus {
				skus[i] = fmt.Sprintf("BEN-%05d", i)
				stock[skus[i]] = 0
			}
			s := setup(b, skus, stock)
			p, _ := s.processor(b, nil)
			rng := rand.New(rand.NewPCG(1, 2))
			seq := map[string]int64{}
			const batch = 500
			recs := make([]*kgo.Record, batch)
			events := 0
			for b.Loop() {
				for i := range recs {
					wh := fmt.Sprintf("WH-%d", i%4)
					seq[wh]++
					sku := skus[rng.IntN(len(skus))]
					id := fmt.Sprintf("%s-%d", wh, seq[wh])
					if rng.IntN(10) == 0 {
						recs[i] = record(b, levelMsg(id, wh, sku, seq[wh], int64(rng.IntN(500))))
					} else {
						recs[i] = record(b, adjustMsg(id, wh, sku, seq[wh], int64(rng.IntN(21)-5), event.ReasonCounted))
					}
				}
				for i, err := range p.Handle(b.Context(), recs) {
					if err != nil {
						b.Fatalf("record %d: %v", i, err)
					}
				}
				events += batch
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
