-- Create in Liscio: the `account.create` commands sent for customers, so that whichever
-- pusher reads Liscio's `account.created` answer (it carries the command_id) links the new
-- account to the customer, and so that nothing links the customer elsewhere meanwhile.
CREATE TABLE liscio_creates (
    command_id  text PRIMARY KEY,
    firm_id     text NOT NULL,
    realm_id    text NOT NULL,
    customer_id text NOT NULL,
    actor       text NOT NULL,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    account_id  text,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- A customer waits for one account at a time.
CREATE UNIQUE INDEX one_liscio_create_per_customer ON liscio_creates (realm_id, customer_id)
    WHERE state = 'pending';
