-- The outbox keeps each message as the JSON its writer encoded, and the relay publishes
-- those bytes: no jsonb parsing when a row is written, no decoding and re-encoding when it
-- is published. Published rows are deleted, never marked, so `published_at` and the index
-- on unpublished rows only cost every insert an index entry.
DROP INDEX outbox_unpublished;
ALTER TABLE outbox DROP COLUMN published_at;
ALTER TABLE outbox ALTER COLUMN value TYPE text USING value::text;
