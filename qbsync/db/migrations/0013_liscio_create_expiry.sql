-- A Create in Liscio that Liscio never answers must not hold its customer for ever: once
-- QBSYNC_LISCIO_CREATE_EXPIRY_HOURS have passed, asking again marks the command `expired`
-- and sends a new one, `{first command_id}.{attempt}`. An expired command's late answer is
-- still linked while the customer is not linked yet (the newer command is then failed, so
-- that its own answer is put up for attention): never two accounts linked to one customer.
ALTER TABLE liscio_creates DROP CONSTRAINT liscio_creates_state_check;
ALTER TABLE liscio_creates ADD CONSTRAINT liscio_creates_state_check
    CHECK (state IN ('pending', 'done', 'failed', 'expired'));
-- The first command of the customer's chain of retries (NULL for the first itself).
ALTER TABLE liscio_creates ADD COLUMN retry_of text;
ALTER TABLE liscio_creates ADD COLUMN attempt integer NOT NULL DEFAULT 1;
