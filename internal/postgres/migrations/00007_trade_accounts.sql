-- Trade accounts: business customers (garages, fleets, resellers) whose orders travel on the
-- priority lane like express orders, whatever their shipping.

-- +goose Up
-- customer_id is the id the checkout sends as an order's customer_id (1 to 64 characters, as the
-- api accepts it). Removing an account deletes its row; orders placed meanwhile keep their lane.
CREATE TABLE trade_accounts (
    customer_id text        PRIMARY KEY CHECK (length(customer_id) BETWEEN 1 AND 64),
    name        text        NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE trade_accounts;
