package orderworker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/paysim"
)

// Express orders placed after a standard backlog overtake it: they are decided before most of
// the backlog, while the standard lane still moves.
func TestExpressOrdersOvertakeAStandardBacklog(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Latency: 2 * time.Millisecond, Seed: 17}, stockAll(2000))
	standard := s.PlaceMany(t, 1500, 32, func(i int) []byte { return orderJSON("tok_card_s"+fmt.Sprint(i), "standard", skus[i%len(skus)], 1) })
	express := s.PlaceMany(t, 60, 8, func(i int) []byte { return orderJSON("tok_card_e"+fmt.Sprint(i), "express", skus[i%len(skus)], 1) })
	all := map[string]bool{}
	for id := range standard {
		all[id] = true
	}
	for id := range express {
		all[id] = true
	}
	s.Worker(t, map[string]string{"ORDER_WORKER_BATCH_SIZE": "50", "ORDER_WORKER_MAX_STARVE": "300ms"})
	s.waitDecided(t, all, 90*time.Second)
	s.waitSettled(t, 30*time.Second)
	s.checkInvariants(t, all)
	// Rank every order by decision time: the last express order must come before most of the
	// standard backlog, which was placed earlier.
	var lastExpressRank, standardBefore int
	rows, err := s.Pool.Query(t.Context(), `SELECT priority FROM orders ORDER BY decided_at, id`)
	if err != nil {
		t.Fatal(err)
	}
	rank, seenExpress := 0, 0
	for rows.Next() {
		var prio string
		if err := rows.Scan(&prio); err != nil {
			t.Fatal(err)
		}
		rank++
		if prio == "express" {
			seenExpress++
			if seenExpress == len(express) {
				lastExpressRank = rank
				standardBefore = rank - seenExpress
			}
		}
	}
	rows.Close()
	t.Logf("the last of %d express orders was decision %d of %d; %d standard orders were decided before it", len(express), lastExpressRank, len(all), standardBefore)
	if standardBefore > len(standard)/2 {
		t.Fatalf("%d of %d standard orders were decided before the express orders finished; express did not overtake", standardBefore, len(standard))
	}

	// Now express orders keep arriving for 2 s: the standard lane must still move (it gets a
	// poll at least every ORDER_WORKER_MAX_STARVE).
	more := s.PlaceMany(t, 1000, 32, func(i int) []byte { return orderJSON("tok_card_t"+fmt.Sprint(i), "standard", skus[i%len(skus)], 1) })
	start := time.Now()
	stream := s.PlaceMany(t, 300, 1, func(i int) []byte {
		time.Sleep(5 * time.Millisecond) // a steady stream, never a gap long enough to drain it
		return orderJSON("tok_card_x"+fmt.Sprint(i), "express", skus[i%len(skus)], 1)
	})
	streamEnd := time.Now()
	var movedDuringStream int
	if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM orders WHERE priority = 'standard' AND decided_at BETWEEN $1 AND $2 AND id = ANY($3::uuid[])`,
		start, streamEnd, keys(more)).Scan(&movedDuringStream); err != nil {
		t.Fatal(err)
	}
	t.Logf("while %d express orders streamed in for %s, %d standard orders were decided", len(stream), streamEnd.Sub(start).Round(time.Millisecond), movedDuringStream)
	if streamEnd.Sub(start) < time.Second {
		t.Fatalf("the express stream lasted only %s; the test needs it longer than the starvation bound", streamEnd.Sub(start))
	}
	if movedDuringStream == 0 {
		t.Fatal("the standard lane starved while express orders kept arriving")
	}
	for id := range more {
		all[id] = true
	}
	for id := range stream {
		all[id] = true
	}
	s.waitDecided(t, all, 90*time.Second)
	s.waitSettled(t, 30*time.Second)
	s.checkInvariants(t, all)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
