-- Notifications (one e-mail per kind and subject, claimed before it is sent) and the sales
-- aggregates of the reports consumer group.

-- +goose Up
-- One row per e-mail that must go out exactly once: (kind, subject) is (order_confirmed, order
-- id), (order_shipped, order id), (daily_summary, 2025-03-01)... The notifier claims the row
-- (state sending, with a lease) before it talks to the SMTP server and marks it sent after the
-- server accepted the message. A redelivered or replayed event finds it sent and sends nothing.
-- A row left sending after its lease (a crash between send and mark) may be claimed again: that
-- is the one window in which a duplicate can go out (docs/notifications.md).
CREATE TABLE notifications (
    kind        text        NOT NULL,
    subject     text        NOT NULL,
    recipient   text        NOT NULL,
    message_id  text        NOT NULL,
    event_id    text        NOT NULL DEFAULT '',
    state       text        NOT NULL CHECK (state IN ('sending', 'sent', 'failed')),
    attempts    int         NOT NULL DEFAULT 1 CHECK (attempts > 0),
    -- claims taken over from a sending row whose lease had run out: possible duplicates
    resends     int         NOT NULL DEFAULT 0 CHECK (resends >= 0),
    lease_until timestamptz,
    last_error  text,
    claimed_at  timestamptz NOT NULL,
    sent_at     timestamptz,
    PRIMARY KEY (kind, subject),
    CONSTRAINT notifications_sent_has_time CHECK ((state = 'sent') = (sent_at IS NOT NULL))
);

-- Ops: what is stuck or failing.
CREATE INDEX notifications_unsent_idx ON notifications (claimed_at) WHERE state <> 'sent';

-- Sales figures per hour (of placed_at, UTC) along one dimension: dim 'hour' (key is the hour as
-- 2006-01-02T15:04:05Z), 'sku' (key is the SKU, category as it was when the event was applied)
-- or 'category'. Orders, units and revenue count confirmed orders; cancellations count
-- cancelled orders, per reason. Revenue is the sum of line totals (goods, without shipping) in
-- minor units of currency. Every event is applied once per (consumer group, event id) through
-- processed_events, in the same transaction as these upserts.
CREATE TABLE sales_aggregates (
    dim                        text        NOT NULL CHECK (dim IN ('hour', 'sku', 'category')),
    hour                       timestamptz NOT NULL CHECK (date_trunc('hour', hour) = hour),
    key                        text        NOT NULL,
    currency                   char(3)     NOT NULL,
    category                   text        NOT NULL DEFAULT '',
    orders                     bigint      NOT NULL DEFAULT 0,
    units                      bigint      NOT NULL DEFAULT 0,
    revenue_minor              bigint      NOT NULL DEFAULT 0,
    cancelled_orders           bigint      NOT NULL DEFAULT 0,
    cancelled_units            bigint      NOT NULL DEFAULT 0,
    cancelled_payment_declined bigint      NOT NULL DEFAULT 0,
    cancelled_out_of_stock     bigint      NOT NULL DEFAULT 0,
    cancelled_expired          bigint      NOT NULL DEFAULT 0,
    cancelled_invalid          bigint      NOT NULL DEFAULT 0,
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dim, hour, key, currency)
);

-- +goose Down
DROP TABLE sales_aggregates;
DROP TABLE notifications;
