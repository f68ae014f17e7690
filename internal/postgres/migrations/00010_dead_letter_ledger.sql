-- What happened to dead letters after they were written: which records of a dead-letter topic
-- orderctl re-drove (per record, so a filtered or limited re-drive never hides the records it did
-- not send), and which events each group already dead-lettered for a cause (so a replay of the
-- source topics does not dead-letter the same event again).

-- +goose Up
-- One row per dead-letter record re-driven by `orderctl dlq redrive`, written after the broker
-- acknowledged the re-driven copy. event_id is the record's ce_id ('' when it has none); the loop
-- guard counts re-drives per event id.
CREATE TABLE dead_letter_redrives (
    consumer_group text        NOT NULL,
    dlq_partition  int         NOT NULL,
    dlq_offset     bigint      NOT NULL,
    event_id       text        NOT NULL,
    redriven_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, dlq_partition, dlq_offset)
);
CREATE INDEX dead_letter_redrives_event ON dead_letter_redrives (consumer_group, event_id);

-- One row per (group, event id, cause) the consumer loop wrote to the group's dead-letter topic,
-- written after the broker acknowledged the dead letter. cause is the error class, the error text
-- and the record's redrive-count, so a re-drive that fails again is dead-lettered again.
CREATE TABLE dead_lettered_events (
    consumer_group   text        NOT NULL,
    event_id         text        NOT NULL,
    cause            text        NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id, cause)
);

-- +goose Down
DROP TABLE dead_lettered_events;
DROP TABLE dead_letter_redrives;
