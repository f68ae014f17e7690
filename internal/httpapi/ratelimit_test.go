package httpapi

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestDenialsRefuseUntilTheWaitRedisGaveEnds(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	d := newDenials(c.now)
	if _, ok := d.refused("k1"); ok {
		t.Fatal("a key never refused is refused from memory")
	}
	d.refuse("k1", 300*time.Millisecond)
	if wait, ok := d.refused("k1"); !ok || wait != 300*time.Millisecond {
		t.Fatalf("right after the refusal: refused %v, wait %s; want true, 300ms", ok, wait)
	}
	if _, ok := d.refused("k2"); ok {
		t.Fatal("another key is refused by k1's denial")
	}
	c.advance(299 * time.Millisecond)
	if wait, ok := d.refused("k1"); !ok || wait != time.Millisecond {
		t.Fatalf("1ms before the wait ends: refused %v, wait %s; want true, 1ms", ok, wait)
	}
	c.advance(time.Millisecond)
	if _, ok := d.refused("k1"); ok {
		t.Fatal("refused from memory once the wait Redis gave has ended: Redis might allow it")
	}
	d.refuse("k1", 0)
	if _, ok := d.refused("k1"); ok {
		t.Fatal("a refusal without a wait is remembered")
	}
}

func TestDenialsStayBounded(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	d := newDenials(c.now)
	for i := range maxDenials {
		d.refuse(fmt.Sprint("old-", i), time.Second)
	}
	// Full of live denials: a new one is not remembered (its requests go to Redis), nothing grows.
	d.refuse("new", time.Second)
	if _, ok := d.refused("new"); ok || len(d.until) != maxDenials {
		t.Fatalf("full memory: new key remembered %v, %d entries; want false, %d", ok, len(d.until), maxDenials)
	}
	// Once they lapse, the next refusal sweeps them.
	c.advance(time.Second)
	d.refuse("new", time.Second)
	if _, ok := d.refused("new"); !ok || len(d.until) != 1 {
		t.Fatalf("after the old waits lapsed: new key remembered %v, %d entries; want true, 1", ok, len(d.until))
	}
}
