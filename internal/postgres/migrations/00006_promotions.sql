-- Promotions (flash sales) and the price every order line was sold at, with why.

-- +goose Up
-- A promotion prices a set of SKUs, or every SKU of a category, for a time window [starts_at,
-- ends_at) (start inclusive, end exclusive, to the millisecond): percent_off off the base price,
-- or a fixed price. stock_cap bounds the units sold at the promotional price per SKU (NULL: no
-- cap); after it, over_cap says whether the base price applies or the order is refused.
-- per_customer_limit bounds the promotional units of one customer per SKU (NULL: no limit).
-- ended_at is set when a merchandiser ends a promotion early; rows are never deleted (audit).
-- Times are timestamptz (stored UTC); time_zone is the IANA zone the promotion was planned in,
-- used only to show its times.
CREATE TABLE promotions (
    id                 text        PRIMARY KEY,
    name               text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind               text        NOT NULL CHECK (kind IN ('percent', 'fixed')),
    percent_off        int         CHECK (percent_off BETWEEN 1 AND 99),
    fixed_price_minor  bigint      CHECK (fixed_price_minor > 0),
    skus               text[]      NOT NULL DEFAULT '{}',
    category           text        NOT NULL DEFAULT '',
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    time_zone          text        NOT NULL DEFAULT 'UTC',
    stock_cap          bigint      CHECK (stock_cap > 0),
    over_cap           text        NOT NULL DEFAULT 'base' CHECK (over_cap IN ('base', 'refuse')),
    per_customer_limit bigint      CHECK (per_customer_limit > 0),
    ended_at           timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT promotions_window CHECK (ends_at > starts_at),
    CONSTRAINT promotions_price CHECK ((kind = 'percent') = (percent_off IS NOT NULL)
                                   AND (kind = 'fixed') = (fixed_price_minor IS NOT NULL)),
    CONSTRAINT promotions_scope CHECK ((cardinality(skus) > 0) <> (category <> ''))
);

CREATE INDEX promotions_live_idx ON promotions (ends_at) WHERE ended_at IS NULL;

-- The promotion an order line was sold under; NULL: the base price.
ALTER TABLE order_lines ADD COLUMN promotion_id text;
CREATE INDEX order_lines_promotion_idx ON order_lines (promotion_id) WHERE promotion_id IS NOT NULL;

-- +goose Down
DROP INDEX order_lines_promotion_idx;
ALTER TABLE order_lines DROP COLUMN promotion_id;
DROP TABLE promotions;
