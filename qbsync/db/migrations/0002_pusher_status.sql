-- The status the pusher last applied for each account. The accounts table is shared with
-- the matcher, which may store a newer event first, so "did this account just leave
-- Prospect status?" must be answered from what the pusher itself has seen.
ALTER TABLE accounts ADD COLUMN pushed_status text;
ALTER TABLE accounts ADD COLUMN pushed_at timestamptz;
