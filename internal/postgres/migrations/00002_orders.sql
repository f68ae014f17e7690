-- Orders as written by order-worker and read by the api.

-- +goose Up
CREATE TABLE orders (
    id               uuid        PRIMARY KEY,
    status           text        NOT NULL
        CHECK (status IN ('pending', 'confirmed', 'shipped', 'cancelled')),
    cancel_reason    text
        CHECK (cancel_reason IN ('payment_declined', 'out_of_stock', 'expired', 'invalid')),
    customer_id      text        NOT NULL,
    email            text        NOT NULL,
    priority         text        NOT NULL CHECK (priority IN ('standard', 'express')),
    currency         char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    subtotal_minor   bigint      NOT NULL,
    shipping_minor   bigint      NOT NULL,
    total_minor      bigint      NOT NULL,
    shipping_address jsonb       NOT NULL,
    placed_at        timestamptz NOT NULL,
    hold_deadline    timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_cancel_reason_iff_cancelled
        CHECK ((status = 'cancelled') = (cancel_reason IS NOT NULL))
);

-- Sweeps for pending orders past their hold deadline.
CREATE INDEX orders_pending_deadline_idx ON orders (hold_deadline) WHERE status = 'pending';

CREATE TABLE order_lines (
    order_id         uuid   NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          int    NOT NULL,
    sku              text   NOT NULL,
    name             text   NOT NULL,
    quantity         int    NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- +goose Down
DROP TABLE order_lines;
DROP TABLE orders;
