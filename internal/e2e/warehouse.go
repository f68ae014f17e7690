package e2e

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/loadgen"
)

// warehouseFeed plays a warehouse system beside the buyers, so inventory-sync has work to lose
// when it is killed mid-batch and I7 (stale events ignored) is exercised: for the scenario's
// least popular background SKUs it publishes, to inventory.stock, first a snapshot equal to the
// seeded stock (the SKU's first warehouse event replaces the level set by hand), then
// alternately "damaged -2" and "received +2" (so on_hand never rises above the seeded stock and
// the checker's sold <= stock-at-start stays a valid bound), and every tenth event a stale
// "received +50" carrying an old sequence number, which must change nothing.
type warehouseFeed struct {
	cl    *kgo.Client
	skus  []loadgen.Product
	seq   int64
	sent  int
	stale int
}

const feedWarehouse = "WH-E2E-1"

func newWarehouseFeed(brokers []string, s *loadgen.Scenario) (*warehouseFeed, error) {
	var tail []loadgen.Product
	prods := s.Products()
	for i := len(prods) - 1; i >= 0 && len(tail) < 8; i-- {
		if !prods[i].Hot && prods[i].Stock >= 10 {
			tail = append(tail, prods[i])
		}
	}
	if len(tail) == 0 {
		return nil, nil
	}
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: brokers, ClientID: "orderpipe-e2e-warehouse", ProduceTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	return &warehouseFeed{cl: cl, skus: tail, seq: time.Now().Unix() * 1000}, nil
}

func (w *warehouseFeed) publish(ctx context.Context, d event.StockData) error {
	h := d.Header()
	// A UUID, not "e2e-<warehouse>-<seq>-<n>": the input gate searches ce_id for card data, and
	// dashed digit groups like those looked like a card number about one time in three, which
	// dead-lettered the event (the smoke run then broke I7). README, "For warehouse integrators".
	env, err := event.NewStockEnvelope(event.ID(event.TypeStockLevel, fmt.Sprintf("e2e-%s-%d-%d", h.WarehouseID, h.Seq, w.sent)), "warehouse/"+h.WarehouseID, d)
	if err != nil {
		return err
	}
	if err := w.cl.ProduceSync(ctx, env.Record(event.TopicInventoryStock, []byte(h.SKU))).FirstErr(); err != nil {
		return fmt.Errorf("publish stock event: %w", err)
	}
	w.sent++
	return nil
}

// run publishes until ctx ends; it returns how many events (and how many stale ones) it sent.
func (w *warehouseFeed) run(ctx context.Context, every time.Duration) (sent, stale int, err error) {
	defer w.cl.Close()
	hdr := func(sku string) event.StockHeader {
		w.seq++
		return event.StockHeader{WarehouseID: feedWarehouse, SKU: sku, Seq: w.seq, OccurredAt: time.Now().UTC()}
	}
	for _, p := range w.skus {
		if err := w.publish(ctx, event.StockLevel{StockHeader: hdr(p.SKU), OnHand: p.Stock}); err != nil {
			return w.sent, w.stale, err
		}
	}
	oldSeq := w.seq
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return w.sent, w.stale, nil
		case <-t.C:
		}
		p := w.skus[(i/2)%len(w.skus)]
		var d event.StockData
		switch {
		case i%10 == 9:
			// A late, stale correction: older than what was applied for this warehouse and SKU.
			d = event.StockAdjusted{StockHeader: event.StockHeader{WarehouseID: feedWarehouse, SKU: p.SKU, Seq: oldSeq - int64(len(w.skus)) + 1, OccurredAt: time.Now().UTC()}, Delta: 50, Reason: "received"}
			w.stale++
		case i%2 == 0:
			d = event.StockAdjusted{StockHeader: hdr(p.SKU), Delta: -2, Reason: "damaged"}
		default:
			d = event.StockAdjusted{StockHeader: hdr(p.SKU), Delta: 2, Reason: "received"}
		}
		if err := w.publish(ctx, d); err != nil {
			if ctx.Err() != nil {
				return w.sent, w.stale, nil
			}
			return w.sent, w.stale, err
		}
	}
}
