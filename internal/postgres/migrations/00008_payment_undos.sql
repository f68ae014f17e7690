-- Payments undone because their order could not be stored (I8: no money moves for an order
-- that cannot be stored).

-- +goose Up
-- order-worker captured the order's payment, then Postgres refused the order itself for good (a
-- permanent error: a NUL in a text field, a value out of range, a violated constraint). The
-- capture is refunded in the same run, recorded here, and the record dead-lettered. A re-drive
-- of such a record finds this row and cancels the order as invalid instead of charging again.
CREATE TABLE payment_undos (
    order_id     uuid        PRIMARY KEY,
    event_id     uuid        NOT NULL,
    charge_id    text        NOT NULL,
    refund_id    text        NOT NULL,
    amount_minor bigint      NOT NULL CHECK (amount_minor > 0),
    currency     char(3)     NOT NULL,
    error_class  text        NOT NULL,
    error        text        NOT NULL,
    undone_at    timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE payment_undos;
