package reconcile_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// BenchmarkReconcile200SKUs measures reconciliation over 200 SKUs with 2,000 orders in flight
// (holds in Redis and OrderPlaced records on the broker beyond order-worker's committed offsets):
// a comparison (check), a repair of 20 drifting SKUs (without the settle delay), and a full
// rebuild after Redis lost everything (journal read, 200 locked rebuilds, comparison after).
//
//	go test -run '^$' -bench Reconcile200SKUs -benchtime 20x ./internal/reconcile/
func BenchmarkReconcile200SKUs(b *testing.B) {
	onHand := map[string]int64{}
	var all []string
	for i := range 200 {
		sku := fmt.Sprintf("SKU-%04d", i)
		onHand[sku] = 1000
		all = append(all, sku)
	}
	bb := setup(b, onHand, 0)
	deadline := time.Now().Add(time.Hour)
	var recs []*kgo.Record
	for i := range 2000 {
		sku := all[i%len(all)]
		o := placedOrder{id: uuid.NewString(), lines: map[string]int{sku: 1}, deadline: deadline}
		if res, err := bb.store.Reserve(b.Context(), o.id, []redisstore.Line{{SKU: sku, Qty: 1}}, deadline); err != nil || !res.OK {
			b.Fatalf("reserve: %+v %v", res, err)
		}
		recs = append(recs, bb.orderRecord(b, event.TopicOrdersPlaced, o))
	}
	bb.produce(b, recs...)

	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			rep, err := bb.rec.Check(b.Context())
			if err != nil || !rep.Clean() {
				b.Fatalf("%+v %v", rep, err)
			}
		}
	})
	b.Run("repair-20-drifting", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			for _, sku := range all[:20] {
				if err := bb.rdb.HIncrBy(b.Context(), bb.prefix+"inv:{"+sku+"}", "atp", 3).Err(); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			res, err := bb.rec.Repair(b.Context())
			if err != nil || len(res.Repaired) != 20 || !res.After.Clean() {
				b.Fatalf("%+v %v", res, err)
			}
		}
	})
	b.Run("rebuild-after-flush", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			bb.flush(b)
			b.StartTimer()
			res, err := bb.rec.Repair(b.Context())
			if err != nil || len(res.Rebuilt) != 200 || res.Journal.Held != 2000 || !res.After.Clean() {
				b.Fatalf("rebuilt %d, journal %+v, %v", len(res.Rebuilt), res.Journal, err)
			}
		}
	})
}
