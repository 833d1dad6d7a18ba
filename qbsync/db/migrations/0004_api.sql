-- The integration API (services/api).

-- Records are listed in the order of their folded names by code point (str.casefold()
-- then code point, as Python compares them): the "C" collation compares the folded
-- column byte by byte, which for UTF-8 is code point order.
CREATE INDEX accounts_by_folded_name
    ON accounts (firm_id, (name_folded COLLATE "C"), (account_id COLLATE "C"));
CREATE INDEX customers_by_folded_name
    ON customers (realm_id, (name_folded COLLATE "C"), (customer_id COLLATE "C"));

-- Search (a substring of a name) and suggestions (similar names) use trigrams.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX accounts_name_trigrams ON accounts USING gin (name_folded gin_trgm_ops);
CREATE INDEX customers_name_trigrams ON customers USING gin (name_folded gin_trgm_ops);

-- Who did it: the token's user for what a person did through the API, 'sync' otherwise.
ALTER TABLE audit_log ADD COLUMN actor text NOT NULL DEFAULT 'sync';
CREATE INDEX audit_by_firm ON audit_log (firm_id, id);

-- The account's contacts as its latest event carried them (AccountEvent.account.contacts).
ALTER TABLE accounts ADD COLUMN contacts jsonb NOT NULL DEFAULT '[]';

-- A POST's Idempotency-Key and its first answer (status NULL while it is being served).
CREATE TABLE idempotency_keys (
    firm_id      text NOT NULL,
    key          text NOT NULL,
    fingerprint  text NOT NULL,
    status       integer,
    content_type text,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
