-- Inventory sync: stock per warehouse, the per-event record of what each applied stock event
-- changed, shipments, and the warehouses that may sign webhook requests.
--
-- stock.on_hand is derived from the warehouses once a SKU has any warehouse_stock row:
--   stock.on_hand   = greatest(sum of warehouse_stock.on_hand, stock.allocated)
--   stock.shortfall = greatest(stock.allocated - sum of warehouse_stock.on_hand, 0)
-- so on_hand = sum + shortfall. The shortfall is the units confirmed orders were promised that
-- the warehouses no longer report (damage, a count): stock_no_oversell (allocated <= on_hand)
-- keeps holding, nothing more can be sold, and ops see the gap (orderpipe_inventory_shortfall_*).
-- Arriving units fill the shortfall before they become available again.

-- +goose Up
-- Warehouses that post to the webhook. A warehouse with a webhook_secret must sign its requests
-- (HMAC-SHA256, X-Orderpipe-Signature); one without may post unsigned. Kafka producers need no
-- row here.
CREATE TABLE warehouses (
    id             text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name           text        NOT NULL DEFAULT '',
    webhook_secret bytea       CHECK (webhook_secret IS NULL OR octet_length(webhook_secret) >= 16),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The last applied level of each warehouse and SKU, and the seq of the last event applied to it
-- (invariant I7: an event with a seq at or below last_seq changes nothing). SKU first: the sum
-- per SKU reads one index range.
CREATE TABLE warehouse_stock (
    sku          text        NOT NULL REFERENCES stock (sku),
    warehouse_id text        NOT NULL CHECK (warehouse_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    on_hand      bigint      NOT NULL CHECK (on_hand >= 0),
    last_seq     bigint      NOT NULL CHECK (last_seq >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, warehouse_id)
);

ALTER TABLE stock ADD COLUMN shortfall bigint NOT NULL DEFAULT 0 CHECK (shortfall >= 0);

-- One row per applied stock event, written in the transaction that applied it: what it changed.
-- A redelivered event (a crash between the commit and the Redis step) finds its row and sends
-- the same delta to Redis again, where the per-warehouse sequence marks make it count once.
-- Rows older than the topic retention are pruned by inventory-sync (INVENTORY_DELTA_RETENTION).
CREATE TABLE stock_deltas (
    warehouse_id  text        NOT NULL,
    sku           text        NOT NULL,
    seq           bigint      NOT NULL,
    event_id      text        NOT NULL,
    event_type    text        NOT NULL,
    delta_on_hand bigint      NOT NULL, -- change of stock.on_hand
    delta_atp     bigint      NOT NULL, -- change of stock.on_hand - stock.allocated: what Redis ATP moves by
    applied_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, sku, seq)
);
CREATE INDEX stock_deltas_applied_at_idx ON stock_deltas USING brin (applied_at);

-- Units shipped per allocation. stock.allocated is the sum over allocations of
-- quantity - shipped.
ALTER TABLE allocations ADD COLUMN shipped bigint NOT NULL DEFAULT 0;
ALTER TABLE allocations ADD CONSTRAINT allocations_shipped_within_quantity CHECK (shipped >= 0 AND shipped <= quantity);

-- When the last unit of a shipped order left a warehouse (OrderShipped carries it, so a
-- re-published event is identical).
ALTER TABLE orders ADD COLUMN shipped_at timestamptz;

-- Every applied shipment. matched units came off the order's allocation; the rest (an unknown or
-- cancelled order, or more units than allocated) only left the warehouse's on_hand.
CREATE TABLE shipments (
    warehouse_id text        NOT NULL,
    sku          text        NOT NULL,
    seq          bigint      NOT NULL,
    event_id     text        NOT NULL,
    order_id     uuid        NOT NULL,
    quantity     bigint      NOT NULL CHECK (quantity > 0),
    matched      bigint      NOT NULL CHECK (matched >= 0 AND matched <= quantity),
    occurred_at  timestamptz NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, sku, seq)
);
CREATE INDEX shipments_order_idx ON shipments (order_id);

-- +goose Down
DROP TABLE shipments;
ALTER TABLE orders DROP COLUMN shipped_at;
ALTER TABLE allocations DROP CONSTRAINT allocations_shipped_within_quantity;
ALTER TABLE allocations DROP COLUMN shipped;
DROP TABLE stock_deltas;
ALTER TABLE stock DROP COLUMN shortfall;
DROP TABLE warehouse_stock;
DROP TABLE warehouses;
