package tradeaccounts

import (
	"context"
	"errors"
	"testing"
)

func TestSetFollowsItsLoaderAndKeepsTheLastGoodSet(t *testing.T) {
	t.Parallel()
	ids, fail := []string{"garage-17", "fleet-2"}, false
	s := New(func(context.Context) ([]string, error) {
		if fail {
			return nil, errors.New("database down")
		}
		return ids, nil
	})
	if s.Trade("garage-17") || s.Len() != 0 {
		t.Fatal("a set never refreshed knows accounts")
	}
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !s.Trade("garage-17") || !s.Trade("fleet-2") || s.Trade("c-1001") || s.Len() != 2 {
		t.Fatalf("after the first load: garage-17 %v, fleet-2 %v, c-1001 %v, len %d", s.Trade("garage-17"), s.Trade("fleet-2"), s.Trade("c-1001"), s.Len())
	}
	ids = []string{"fleet-2"}
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.Trade("garage-17") || !s.Trade("fleet-2") {
		t.Fatal("a removed account is still a trade account after a refresh")
	}
	fail = true
	if err := s.Refresh(t.Context()); err == nil {
		t.Fatal("a failed load reported no error")
	}
	if !s.Trade("fleet-2") {
		t.Fatal("a failed refresh dropped the last good set")
	}
}
