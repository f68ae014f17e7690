package auth

import (
	"context"
	"errors"
	"testing"
)

func TestGenerateAuthenticate(t *testing.T) {
	t.Parallel()
	token, key, err := Generate("checkout", []string{ScopeOrdersWrite, ScopeOrdersRead})
	if err != nil {
		t.Fatal(err)
	}
	revokedToken, revoked, err := Generate("old", []string{ScopeOrdersWrite})
	if err != nil {
		t.Fatal(err)
	}
	revoked.Revoked = true
	keys := NewKeys(func(context.Context) ([]Key, error) { return []Key{key, revoked}, nil })
	if _, err := keys.Authenticate(token); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("before refresh: err = %v, want ErrUnknownKey", err)
	}
	if err := keys.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := keys.Authenticate(token)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if got.ID != key.ID || !got.Has(ScopeOrdersRead) || got.Has(ScopeCatalogWrite) {
		t.Fatalf("got key %+v, want id %s with orders scopes only", got, key.ID)
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"revoked", revokedToken, ErrUnknownKey},
		{"wrong secret", token[:len(token)-4] + "AAAA", ErrUnknownKey},
		{"no prefix", "xx" + token[2:], ErrMalformedKey},
		{"empty", "", ErrMalformedKey},
		{"short id", "op_abc_" + token[16:], ErrMalformedKey},
	}
	for _, tt := range tests {
		if _, err := keys.Authenticate(tt.token); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestRefreshFailureKeepsLastGoodSet(t *testing.T) {
	t.Parallel()
	token, key, err := Generate("checkout", []string{ScopeOrdersWrite})
	if err != nil {
		t.Fatal(err)
	}
	fail := false
	keys := NewKeys(func(context.Context) ([]Key, error) {
		if fail {
			return nil, errors.New("db down")
		}
		return []Key{key}, nil
	})
	if err := keys.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	fail = true
	if err := keys.Refresh(t.Context()); err == nil {
		t.Fatal("refresh with failing loader: want error")
	}
	if _, err := keys.Authenticate(token); err != nil {
		t.Fatalf("after failed refresh: %v, want the key still valid", err)
	}
}

func TestValidateScopes(t *testing.T) {
	t.Parallel()
	if err := ValidateScopes([]string{"orders:write", "orders:delete"}); !errors.Is(err, ErrUnknownScope) {
		t.Fatalf("err = %v, want ErrUnknownScope", err)
	}
	if err := ValidateScopes(nil); !errors.Is(err, ErrUnknownScope) {
		t.Fatalf("no scopes: err = %v, want ErrUnknownScope", err)
	}
	if err := ValidateScopes(AllScopes); err != nil {
		t.Fatalf("all scopes: %v", err)
	}
}
