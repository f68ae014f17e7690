-- Catalog, API keys and stock truth. Invariant I1 (no oversell) lives in stock_no_oversell.
-- Tables are created unqualified so the migration lands in the first schema of search_path.

-- +goose Up
CREATE TABLE products (
    sku         text        PRIMARY KEY CHECK (sku ~ '^[A-Z0-9][A-Z0-9-]{2,39}$'),
    name        text        NOT NULL,
    category    text        NOT NULL,
    brand       text        NOT NULL,
    price_minor bigint      NOT NULL CHECK (price_minor > 0),
    currency    char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX products_category_sku_idx ON products (category, sku);

CREATE TABLE api_keys (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    secret_hash bytea       NOT NULL,
    scopes      text[]      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE stock (
    sku        text        PRIMARY KEY REFERENCES products (sku),
    on_hand    bigint      NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    allocated  bigint      NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_no_oversell CHECK (allocated <= on_hand)
);

-- +goose Down
DROP TABLE stock;
DROP TABLE api_keys;
DROP TABLE products;
