package warehouses

import (
	"context"
	"errors"
	"testing"
)

func TestRegistryFollowsItsLoaderAndKeepsTheLastGoodSet(t *testing.T) {
	t.Parallel()
	ws, fail := []Warehouse{{ID: "WH-BER-1", Secret: []byte("0123456789abcdef")}, {ID: "WH-OPEN"}}, false
	r := New(func(context.Context) ([]Warehouse, error) {
		if fail {
			return nil, errors.New("database down")
		}
		return ws, nil
	})
	if _, found := r.Secret("WH-BER-1"); found || r.Len() != 0 {
		t.Fatal("a registry never refreshed knows warehouses")
	}
	if err := r.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if sec, found := r.Secret("WH-BER-1"); !found || string(sec) != "0123456789abcdef" {
		t.Fatalf("WH-BER-1: got %q, %v; want its secret", sec, found)
	}
	if sec, found := r.Secret("WH-OPEN"); !found || sec != nil {
		t.Fatalf("WH-OPEN: got %q, %v; want found without a secret", sec, found)
	}
	if _, found := r.Secret("WH-FAKE"); found {
		t.Fatal("WH-FAKE is registered")
	}
	ws = ws[1:]
	if err := r.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, found := r.Secret("WH-BER-1"); found {
		t.Fatal("a removed warehouse is still registered after a refresh")
	}
	fail = true
	if err := r.Refresh(t.Context()); err == nil {
		t.Fatal("a failed load reported no error")
	}
	if _, found := r.Secret("WH-OPEN"); !found || r.Len() != 1 {
		t.Fatal("a failed refresh dropped the last good set")
	}
}
