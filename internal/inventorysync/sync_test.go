package inventorysync_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// truthEvent is one event of a warehouse's true history.
type truthEvent struct {
	msg
	wh, sku string
	seq     int64
	kind    string
	n       int64  // level, delta or shipped quantity
	order   string // shipments
}

// Snapshots, adjustments and shipments published with kcat, shuffled, duplicated and with stale
// sequence numbers mixed in, while two inventory-sync instances share the group (the second
// joins a third of the way, the first leaves at two thirds), end in exactly the state of
// applying every event once in order: per warehouse and SKU, in Postgres and in Redis ATP, with
// holds in flight untouched.
//
// "Shuffled": warehouses interleave at random, but each warehouse publishes its events of a SKU
// in its own order (Kafka keeps a key's order; a warehouse's producer writes in seq order),
// except WH-3, which publishes only snapshots and in random order: the highest seq must win.
// Duplicates are the same event again (same id and seq); stale events are other events with a
// seq at or below one already published for their warehouse and SKU.
func TestShuffledDuplicatedStaleEventsConvergeWithTwoInstances(t *testing.T) {
	t.Parallel()
	skus := []string{"BRK-PAD-1001", "FLT-OIL-2001", "BAT-5001"}
	s := setup(t, skus, map[string]int64{"BRK-PAD-1001": 20, "FLT-OIL-2001": 20, "BAT-5001": 0})
	ctx := t.Context()
	allocs := map[string]map[string]int64{} // order -> sku -> allocated units
	o1 := s.confirm(t, "BRK-PAD-1001", 3)
	o2 := s.confirm(t, "BRK-PAD-1001", 1, "FLT-OIL-2001", 2)
	o3 := s.confirm(t, "FLT-OIL-2001", 4)
	allocs[o1] = map[string]int64{"BRK-PAD-1001": 3}
	allocs[o2] = map[string]int64{"BRK-PAD-1001": 1, "FLT-OIL-2001": 2}
	allocs[o3] = map[string]int64{"FLT-OIL-2001": 4}
	// Holds in flight during the whole run: orders accepted and not decided yet.
	held := map[string]int64{"BRK-PAD-1001": 2, "FLT-OIL-2001": 5}
	if _, err := s.redis.Reserve(ctx, uuid.NewString(), []redisstore.Line{{SKU: "BRK-PAD-1001", Qty: 2}, {SKU: "FLT-OIL-2001", Qty: 5}}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(7, 11))
	var truth []truthEvent
	for _, wh := range []string{"WH-1", "WH-2"} {
		type plan struct {
			sku, kind string
			n         int64
			order     string
		}
		var p []plan
		for _, sku := range skus {
			p = append(p, plan{sku, postgres.StockKindLevel, int64(5 + rng.IntN(20)), ""})
		}
		for range 22 {
			sku := skus[rng.IntN(len(skus))]
			if rng.IntN(8) == 0 {
				p = append(p, plan{sku, postgres.StockKindLevel, int64(rng.IntN(25)), ""})
			} else {
				p = append(p, plan{sku, postgres.StockKindAdjusted, int64(rng.IntN(13) - 5), ""})
			}
		}
		ships := map[string][]plan{
			"WH-1": {{"BRK-PAD-1001", postgres.StockKindShipped, 3, o1}, {"FLT-OIL-2001", postgres.StockKindShipped, 2, o2}, {"BAT-5001", postgres.StockKindShipped, 1, uuid.NewString()}},
			"WH-2": {{"BRK-PAD-1001", postgres.StockKindShipped, 1, o2}, {"FLT-OIL-2001", postgres.StockKindShipped, 1, o3}},
		}[wh]
		for _, sp := range ships {
			at := len(skus) + rng.IntN(len(p)-len(skus)+1)
			p = append(p[:at], append([]plan{sp}, p[at:]...)...)
		}
		seq := int64(100)
		for i, e := range p {
			seq += 1 + int64(rng.IntN(3)) // a warehouse's seq grows across its SKUs, with gaps
			id := fmt.Sprintf("%s-%d", wh, seq)
			var m msg
			switch e.kind {
			case postgres.StockKindLevel:
				m = levelMsg(id, wh, e.sku, seq, e.n)
			case postgres.StockKindAdjusted:
				reason := map[bool]string{true: event.ReasonReceived, false: event.ReasonDamaged}[e.n >= 0]
				if i%5 == 0 {
					reason = event.ReasonCounted
				}
				m = adjustMsg(id, wh, e.sku, seq, e.n, reason)
			default:
				m = shipMsg(id, wh, e.sku, seq, e.order, e.n)
			}
			truth = append(truth, truthEvent{msg: m, wh: wh, sku: e.sku, seq: seq, kind: e.kind, n: e.n, order: e.order})
		}
	}
	// WH-3 reports only snapshots, which arrive in random order.
	wh3 := map[string][]truthEvent{}
	for i := range 10 {
		sku := skus[i%2]
		seq := int64(i + 1)
		n := int64(rng.IntN(30))
		wh3[sku] = append(wh3[sku], truthEvent{msg: levelMsg(fmt.Sprintf("WH-3-%d", seq), "WH-3", sku, seq, n), wh: "WH-3", sku: sku, seq: seq, kind: postgres.StockKindLevel, n: n})
	}

	// Publication lists per SKU: the warehouses' histories interleaved, with duplicates and stale
	// events mixed in.
	bySKU := map[string][]msg{}
	stale := 0
	for _, sku := range skus {
		queues := map[string][]truthEvent{}
		for _, e := range truth {
			if e.sku == sku {
				queues[e.wh] = append(queues[e.wh], e)
			}
		}
		shuffled := append([]truthEvent(nil), wh3[sku]...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		queues["WH-3"] = shuffled
		var sent []truthEvent
		for {
			var open []string
			for _, wh := range []string{"WH-1", "WH-2", "WH-3"} {
				if len(queues[wh]) > 0 {
					open = append(open, wh)
				}
			}
			if len(open) == 0 {
				break
			}
			wh := open[rng.IntN(len(open))]
			e := queues[wh][0]
			queues[wh] = queues[wh][1:]
			bySKU[sku] = append(bySKU[sku], e.msg)
			sent = append(sent, e)
			switch rng.IntN(5) {
			case 0: // the same event again
				bySKU[sku] = append(bySKU[sku], sent[rng.IntN(len(sent))].msg)
			case 1: // an event at or below an already published seq of its warehouse
				old := sent[rng.IntN(len(sent))]
				if old.wh == "WH-3" {
					continue
				}
				seq := old.seq - int64(rng.IntN(2))
				stale++
				bySKU[sku] = append(bySKU[sku], adjustMsg(fmt.Sprintf("stale-%d", stale), old.wh, sku, seq, 1000, event.ReasonReceived))
			}
		}
	}

	// The order of truth: each event once, in each warehouse's order; WH-3's latest snapshot wins.
	type key struct{ wh, sku string }
	level := map[key]int64{}
	last := map[key]int64{}
	shipped := map[string]map[string]int64{}
	apply := func(e truthEvent) {
		k := key{e.wh, e.sku}
		switch e.kind {
		case postgres.StockKindLevel:
			level[k] = e.n
		case postgres.StockKindAdjusted:
			level[k] = max(level[k]+e.n, 0)
		default:
			level[k] = max(level[k]-e.n, 0)
			if shipped[e.order] == nil {
				shipped[e.order] = map[string]int64{}
			}
			shipped[e.order][e.sku] += e.n
		}
		last[k] = e.seq
	}
	for _, e := range truth {
		apply(e)
	}
	for _, es := range wh3 {
		apply(es[len(es)-1])
	}
	wantStatus := map[string]string{}
	allocated := map[string]int64{}
	for o, lines := range allocs {
		done := true
		for sku, q := range lines {
			allocated[sku] += q - min(shipped[o][sku], q)
			done = done && shipped[o][sku] >= q
		}
		wantStatus[o] = map[bool]string{true: "shipped", false: "confirmed"}[done]
	}

	// Publish in three parts while instances come and go.
	part := func(i int) map[string][]msg {
		out := map[string][]msg{}
		for sku, ms := range bySKU {
			n := len(ms)
			out[sku] = ms[i*n/3 : (i+1)*n/3]
		}
		return out
	}
	first := s.sync(t, nil)
	s.kcatAll(t, part(0))
	s.sync(t, nil)
	s.kcatAll(t, part(1))
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	s.kcatAll(t, part(2))
	s.waitSettled(t, "inventory-sync", 60*time.Second)

	for _, sku := range skus {
		var sum int64
		for _, wh := range []string{"WH-1", "WH-2", "WH-3"} {
			sum += level[key{wh, sku}]
		}
		want := stockRow{OnHand: max(sum, allocated[sku]), Allocated: allocated[sku], Shortfall: max(allocated[sku]-sum, 0)}
		if got := s.stock(t, sku); got != want {
			t.Errorf("%s in Postgres: got %+v, want %+v", sku, got, want)
		}
		levels, err := s.inv.WarehouseLevels(ctx, sku)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range levels {
			k := key{l.WarehouseID, sku}
			if l.OnHand != level[k] || l.LastSeq != last[k] {
				t.Errorf("%s at %s: got on_hand %d last_seq %d, want %d and %d", sku, l.WarehouseID, l.OnHand, l.LastSeq, level[k], last[k])
			}
		}
		st, err := s.redis.Availability(ctx, sku)
		if err != nil {
			t.Fatal(err)
		}
		if wantATP := want.OnHand - want.Allocated - held[sku]; st.ATP != wantATP || st.Held != held[sku] {
			t.Errorf("%s in Redis: got atp %d held %d, want atp %d held %d (Postgres on_hand %d - allocated %d - held)", sku, st.ATP, st.Held, wantATP, held[sku], want.OnHand, want.Allocated)
		}
	}
	for o, want := range wantStatus {
		if got := s.orderStatus(t, o); got != want {
			t.Errorf("order %s: got %s, want %s", o, got, want)
		}
	}
	// One OrderShipped per shipped order (a re-publish is the same event).
	ids := map[string]map[string]bool{}
	for _, r := range s.records(t, event.TopicOrderEvents) {
		env, err := event.FromRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		if env.Type != event.TypeOrderShipped {
			t.Fatalf("orders.events has a %s", env.Type)
		}
		if ids[string(r.Key)] == nil {
			ids[string(r.Key)] = map[string]bool{}
		}
		ids[string(r.Key)][env.ID] = true
	}
	for o, st := range wantStatus {
		if want := map[bool]int{true: 1, false: 0}[st == "shipped"]; len(ids[o]) != want {
			t.Errorf("order %s (%s): %d distinct OrderShipped events, want %d", o, st, len(ids[o]), want)
		}
	}
	if n := len(s.records(t, event.DeadLetterTopic("inventory-sync"))); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	total := 0
	for _, ms := range bySKU {
		total += len(ms)
	}
	t.Logf("%d events published with kcat (%d stale), %d truth events", total, stale, len(truth)+10)
}
