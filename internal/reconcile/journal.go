package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// The journal of the holds Redis may have lost: every order the api accepted that order-worker
// has not finished with. An accepted order is on orders.placed or orders.placed.priority; the
// worker commits a record's offset only after the order is decided (and its hold ended), or after
// the record was forwarded to one of its retry topics or its dead-letter topic. So the undecided
// orders are exactly those at or beyond the group's committed offsets on the two source topics and
// on its retry topics, plus those in its dead-letter topic; the orders Postgres already decided
// are filtered out later, under the stock row lock.

// journalOrder is one order read from the journal.
type journalOrder struct {
	ID       string
	Customer string
	Lines    map[string]int64 // SKU -> units
	Promo    map[string]promoUnits
	Deadline time.Time
	Parked   bool // read from the dead-letter topic
}

// promoUnits are the units of one SKU of an order sold under a promotion: the api may split a
// line into a promotional and a base-price line of the same SKU, and the hold (one per order and
// SKU) counts the promotional ones against the promotion.
type promoUnits struct {
	ID    string
	Units int64
}

// journalStats say what was read.
type journalStats struct {
	Records    int // records read
	Orders     int // distinct orders
	DeadLetter int // of which only in the dead-letter topic
	Skipped    int // records that are not a valid OrderPlaced
}

// journalTopics are the topics to read for group: the sources and retry topics beyond the
// committed offsets, and the whole dead-letter topic.
func journalTopics(group string) (tail []string, dlq string) {
	tail = []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority}
	tiers := 0
	for _, g := range topology.Groups() {
		if g.Name == topology.GroupOrderWorker {
			tiers = len(g.RetryTiers)
		}
	}
	for i := range tiers {
		tail = append(tail, event.RetryTopic(group, i+1))
	}
	return tail, event.DeadLetterTopic(group)
}

// readJournal reads the journal of group from the brokers: kadm for the committed, start and end
// offsets, then a groupless consumer from those offsets to the ends seen at the start (records
// produced later belong to orders whose holds were taken after the loss).
func readJournal(ctx context.Context, brokers []string, clientID, group string, v *event.Validator) (map[string]*journalOrder, journalStats, error) {
	var st journalStats
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID(clientID))
	if err != nil {
		return nil, st, fmt.Errorf("journal admin client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	tail, dlq := journalTopics(group)
	all := append(slices.Clone(tail), dlq)

	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		// The group never committed (order-worker never ran): every retained order is in
		// flight, and the worker will start from the beginning too.
		committed, err = kadm.OffsetResponses{}, nil
	}
	if err != nil {
		return nil, st, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	starts, err := adm.ListStartOffsets(ctx, all...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, st, fmt.Errorf("start offsets of the journal: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, all...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, st, fmt.Errorf("end offsets of the journal: %w", err)
	}

	from := map[string]map[int32]kgo.Offset{}
	until := map[string]map[int32]int64{} // exclusive end per partition still to read
	ends.Each(func(e kadm.ListedOffset) {
		at := int64(0)
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok {
			at = s.Offset
		}
		if e.Topic != dlq {
			if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.Err == nil && c.At > at {
				at = c.At
			}
		}
		if at >= e.Offset {
			return
		}
		if from[e.Topic] == nil {
			from[e.Topic], until[e.Topic] = map[int32]kgo.Offset{}, map[int32]int64{}
		}
		from[e.Topic][e.Partition] = kgo.NewOffset().At(at)
		until[e.Topic][e.Partition] = e.Offset
	})
	orders := map[string]*journalOrder{}
	if len(from) == 0 {
		return orders, st, nil
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID(clientID),
		kgo.ConsumePartitions(from), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, st, fmt.Errorf("journal consumer: %w", err)
	}
	defer cl.Close()
	left := 0
	for _, ps := range until {
		left += len(ps)
	}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, st, fmt.Errorf("read the journal (%d partitions unfinished): %w", left, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return nil, st, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := until[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return // past the snapshot: not part of the journal
			}
			st.Records++
			if r.Offset == end-1 {
				delete(until[r.Topic], r.Partition)
				left--
			}
			if !addOrder(orders, r, r.Topic == dlq, v) {
				st.Skipped++
			}
		})
	}
	st.Orders = len(orders)
	for _, o := range orders {
		if o.Parked {
			st.DeadLetter++
		}
	}
	return orders, st, nil
}

// addOrder adds the order of an OrderPlaced record (or of a dead letter holding one). It reports
// false for a record that is not one: such a record never held anything the worker will end.
func addOrder(orders map[string]*journalOrder, r *kgo.Record, parked bool, v *event.Validator) bool {
	if parked {
		d, err := consumer.ParseDeadLetter(r)
		if err != nil {
			return false
		}
		r = &kgo.Record{Key: d.Key, Value: d.Value, Headers: d.Headers}
	}
	env, err := event.FromRecord(r)
	if err != nil || env.Type != event.TypeOrderPlaced {
		return false
	}
	p, err := event.Decode[event.OrderPlaced](v, env)
	if err != nil {
		return false
	}
	o, ok := orders[p.OrderID]
	if !ok {
		o = &journalOrder{ID: p.OrderID, Customer: p.CustomerID, Lines: map[string]int64{}, Deadline: p.HoldDeadline, Parked: parked}
		for _, l := range p.Lines {
			o.Lines[l.SKU] += int64(l.Quantity)
			if l.PromotionID == "" {
				continue
			}
			if o.Promo == nil {
				o.Promo = map[string]promoUnits{}
			}
			// One promotion per SKU and order (reserve.lua counts one); a line under another
			// one never happens and counts nothing.
			if pu, ok := o.Promo[l.SKU]; !ok || pu.ID == l.PromotionID {
				o.Promo[l.SKU] = promoUnits{ID: l.PromotionID, Units: pu.Units + int64(l.Quantity)}
			}
		}
		orders[p.OrderID] = o
		return true
	}
	// The same order again (a retry copy, or a re-publish with the same order id): one hold.
	o.Parked = o.Parked && parked
	return true
}
