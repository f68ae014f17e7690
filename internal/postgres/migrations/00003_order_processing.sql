-- Order processing by order-worker: processed events (idempotency), payments, allocations, and
-- orders whose records went to the dead-letter topic.

-- +goose Up
-- One row per (consumer group, event id), written in the same transaction as the event's effect:
-- a redelivered or replayed event finds its row and changes nothing (I3).
CREATE TABLE processed_events (
    consumer_group text        NOT NULL,
    event_id       uuid        NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);

-- When the order reached its terminal state; the outcome event carries this time, so a
-- re-published outcome is byte-identical.
ALTER TABLE orders ADD COLUMN decided_at timestamptz;

CREATE TABLE payments (
    order_id     uuid        PRIMARY KEY REFERENCES orders (id),
    provider_id  text,
    status       text        NOT NULL
        CHECK (status IN ('captured', 'declined', 'refund_pending', 'refunded', 'failed')),
    decline_code text,
    refund_id    text,
    amount_minor bigint      NOT NULL CHECK (amount_minor >= 0),
    currency     char(3)     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_refund_pending_idx ON payments (order_id) WHERE status = 'refund_pending';

-- Units of confirmed orders; stock.allocated is their running sum per SKU (minus shipments).
CREATE TABLE allocations (
    order_id uuid   NOT NULL REFERENCES orders (id),
    sku      text   NOT NULL REFERENCES stock (sku),
    quantity bigint NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);

-- Orders whose OrderPlaced record was dead-lettered: visible (API, metrics) until re-driven.
CREATE TABLE order_dead_letters (
    order_id         uuid        PRIMARY KEY,
    event_id         text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition int         NOT NULL,
    source_offset    bigint      NOT NULL,
    error_class      text        NOT NULL,
    error            text        NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE order_dead_letters;
DROP TABLE allocations;
DROP TABLE payments;
ALTER TABLE orders DROP COLUMN decided_at;
DROP TABLE processed_events;
