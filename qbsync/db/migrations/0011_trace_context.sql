-- The trace context (a W3C traceparent) of the transaction that wrote an outbox row or
-- opened a sync run, so that the message the relay publishes later, and the run's steps in
-- whichever process claims them, continue that trace. NULL when tracing is off.
ALTER TABLE outbox ADD COLUMN traceparent text;
ALTER TABLE sync_runs ADD COLUMN traceparent text;
