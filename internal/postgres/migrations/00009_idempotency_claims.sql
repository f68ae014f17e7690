-- Durable Idempotency-Key claims: one order per key and API key, whatever Redis forgot.

-- +goose Up
-- order-worker claims the fingerprint an OrderPlaced carries (SHA-256 of the API key id and the
-- request's Idempotency-Key) before any money moves. The first order to claim it owns it; a
-- later order with the same fingerprint (the api lost its idempotency record in Redis and
-- accepted the retry as a new order) is cancelled as duplicate without a charge.
CREATE TABLE idempotency_claims (
    api_key_id  text        NOT NULL,
    fingerprint text        NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    order_id    uuid        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, fingerprint)
);

ALTER TABLE orders DROP CONSTRAINT orders_cancel_reason_check;
ALTER TABLE orders ADD CONSTRAINT orders_cancel_reason_check
    CHECK (cancel_reason IN ('payment_declined', 'out_of_stock', 'expired', 'invalid', 'duplicate'));

-- +goose Down
ALTER TABLE orders DROP CONSTRAINT orders_cancel_reason_check;
ALTER TABLE orders ADD CONSTRAINT orders_cancel_reason_check
    CHECK (cancel_reason IN ('payment_declined', 'out_of_stock', 'expired', 'invalid'));
DROP TABLE idempotency_claims;
