// Package auth owns API keys: their format, how secrets are hashed, scopes, and the in-process
// cache the api checks on every request (no database query per request).
//
// A key looks like "op_<id>_<secret>": the id (12 hex characters) finds the record, the secret
// (32 random bytes, base64url) proves possession. Only SHA-256 of the secret is stored: secrets
// are long and random, so a slow password hash would add latency without adding safety.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/orderpipe/orderpipe/internal/refresh"
)

// Scopes a key can carry.
const (
	ScopeOrdersWrite    = "orders:write"
	ScopeOrdersRead     = "orders:read"
	ScopeCatalogWrite   = "catalog:write"
	ScopeInventoryWrite = "inventory:write"
	ScopeReportsRead    = "reports:read"
	ScopeAccountsWrite  = "accounts:write" // trade accounts: read and change
)

// AllScopes lists every scope, for validation and help texts.
var AllScopes = []string{ScopeOrdersWrite, ScopeOrdersRead, ScopeCatalogWrite, ScopeInventoryWrite, ScopeReportsRead, ScopeAccountsWrite}

// Errors of authentication.
var (
	ErrMalformedKey = errors.New("malformed API key")
	ErrUnknownKey   = errors.New("unknown or revoked API key")
	ErrUnknownScope = errors.New("unknown scope")
)

// Key is a stored API key (the secret itself is never stored).
type Key struct {
	ID         string
	Name       string
	SecretHash []byte
	Scopes     []string
	Revoked    bool
}

// Has reports whether the key carries scope.
func (k Key) Has(scope string) bool { return slices.Contains(k.Scopes, scope) }

// Generate makes a new key: the full token to hand to the client once, and the record to store.
func Generate(name string, scopes []string) (token string, k Key, err error) {
	if err := ValidateScopes(scopes); err != nil {
		return "", Key{}, err
	}
	idb := make([]byte, 6)
	secret := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return "", Key{}, fmt.Errorf("generate key id: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return "", Key{}, fmt.Errorf("generate key secret: %w", err)
	}
	id := hex.EncodeToString(idb)
	sec := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(sec))
	return "op_" + id + "_" + sec, Key{ID: id, Name: name, SecretHash: sum[:], Scopes: scopes}, nil
}

// ValidateScopes rejects unknown scope names.
func ValidateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return fmt.Errorf("no scopes given (known: %s): %w", strings.Join(AllScopes, ", "), ErrUnknownScope)
	}
	for _, s := range scopes {
		if !slices.Contains(AllScopes, s) {
			return fmt.Errorf("%q (known: %s): %w", s, strings.Join(AllScopes, ", "), ErrUnknownScope)
		}
	}
	return nil
}

// Parse splits a token into id and secret.
func Parse(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, "op_")
	if !ok {
		return "", "", ErrMalformedKey
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 12 || len(secret) < 16 {
		return "", "", ErrMalformedKey
	}
	return id, secret, nil
}

// Loader reads every key (revoked ones included, so the cache drops them).
type Loader func(ctx context.Context) ([]Key, error)

// Keys is the in-process key cache. Lookups never touch the database; Refresh replaces the
// whole set atomically.
type Keys struct {
	load Loader
	m    atomic.Pointer[map[string]Key]
}

// NewKeys makes an empty cache; call Refresh before serving.
func NewKeys(load Loader) *Keys {
	k := &Keys{load: load}
	empty := map[string]Key{}
	k.m.Store(&empty)
	return k
}

// Refresh reloads every key.
func (k *Keys) Refresh(ctx context.Context) error {
	keys, err := k.load(ctx)
	if err != nil {
		return fmt.Errorf("load api keys: %w", err)
	}
	m := make(map[string]Key, len(keys))
	for _, key := range keys {
		if !key.Revoked {
			m[key.ID] = key
		}
	}
	k.m.Store(&m)
	return nil
}

// Run refreshes the cache every interval until ctx ends. A failed refresh keeps the last good
// set (keys keep working through a database blip) and is reported to onErr.
func (k *Keys) Run(ctx context.Context, every time.Duration, onErr func(error)) error {
	return refresh.Every(ctx, every, k.Refresh, onErr)
}

// Authenticate checks a bearer token against the cache in constant time per key.
func (k *Keys) Authenticate(token string) (Key, error) {
	id, secret, err := Parse(token)
	if err != nil {
		return Key{}, err
	}
	key, ok := (*k.m.Load())[id]
	if !ok {
		return Key{}, ErrUnknownKey
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], key.SecretHash) != 1 {
		return Key{}, ErrUnknownKey
	}
	return key, nil
}
